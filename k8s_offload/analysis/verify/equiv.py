"""Exact equivalence of two bundles, stage by stage, and of a bundle's policy stages with intent.

`verify(a, b, schema)` does not care how the bundles were made (passes on or off, another
compiler version, a hand edit): every table outside the policy stages must map every key to the
same outcome in both; the policy stages must give every (pod, peer, protocol, port) the same
verdict. Both are decided on BDDs, so "equal" is a proof over the whole key space, not a sample;
"different" comes with a concrete key and, where a packet can carry it, an interpreter replay.

Keys that no packet can produce are left out (the "care" set): a port other than 0 with a
protocol whose ports the parser does not read, and a peer of the other address family than the
pod (an IPv4 packet carries two IPv4-mapped addresses, an IPv6 packet none).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from k8s_offload.analysis.verify.bdd import BDDNode, Space, short
from k8s_offload.analysis.verify.policy import (
    DIRECTIONS,
    Direction,
    PolicyFunction,
    address_text,
    care_for_pod,
    compose_policy,
    intended,
    policy_fields,
    ports_care,
)
from k8s_offload.analysis.verify.replay import Replayer
from k8s_offload.analysis.verify.tables import (
    Ambiguous,
    Profiles,
    TableFunction,
    concrete_outcome,
    describe_entry,
    describe_outcome,
    encode_table,
    entries_by_table,
)
from k8s_offload.compiler.bundle.model import Bundle, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import format_value
from k8s_offload.compiler.ir.rules import PolicyIR
from k8s_offload.compiler.ir.tiers import PodTiers

POLICY_TABLES = (
    "pod",
    "peer_host",
    "peer_class",
    "peer_rules",
    "port_rules",
    "tier_pod",
    "tier_peer_host",
    "tier_peer_class",
    "tier_peer_rules",
    "tier_port_rules",
    "admin",
    "baseline",
)
"""Per direction: the tables compared only composed (`compose_policy`), not one by one: their
internal numbering (set ids, peer classes, rule bits) may differ between equal bundles."""
WIDTHS = {"src_addr": 128, "dst_addr": 128, "l4_proto": 8, "dport": 16}


@dataclass(slots=True)
class Counterexample:
    fields: dict[str, int]
    outcome_a: str
    outcome_b: str
    replay: str = ""
    confirmed: bool | None = None  # None: not replayed

    def fields_text(self, widths: Mapping[str, int]) -> str:
        return " ".join(f"{k}={format_value(k, widths.get(k, 0), v)}" for k, v in self.fields.items())


@dataclass(slots=True)
class StageResult:
    stage: str
    equal: bool
    detail: str
    counterexample: Counterexample | None = None


@dataclass(slots=True)
class Report:
    labels: tuple[str, str]
    stages: list[StageResult] = field(default_factory=list)
    ambiguities: list[tuple[str, Ambiguous]] = field(default_factory=list)
    ambiguity_text: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bdd_nodes: int = 0
    widths: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.ambiguities and all(s.equal for s in self.stages)

    def failures(self) -> list[StageResult]:
        return [s for s in self.stages if not s.equal]


def make_space(schema: Schema) -> Space:
    fields: list[tuple[str, int]] = []
    for info in schema.tables():
        fields.extend((f.name, f.bitwidth) for f in info.fields)
    return Space(fields)


def _is_policy_table(alias: str) -> bool:
    return any(alias == f"{d.prefix}_{t}" for d in DIRECTIONS for t in POLICY_TABLES)


def _table_care(space: Space, fn: TableFunction) -> BDDNode:
    if "l4_proto" in fn.fields and "dport" in fn.fields:
        return ports_care(space)
    return space.true


class Verifier:
    """Holds the BDD space (shared by every check so node sharing spans bundles) and replays."""

    def __init__(self, schema: Schema, *, replay: bool = True) -> None:
        self.schema = schema
        self.space = make_space(schema)
        self.replay = replay

    # -- bundle vs bundle --------------------------------------------------------------------
    def compare(self, a: Bundle, b: Bundle, labels: tuple[str, str] = ("A", "B")) -> Report:
        start = time.perf_counter()
        schema, space = self.schema, self.space
        report = Report(labels, widths=dict(space.widths))
        prof = (Profiles(schema, a), Profiles(schema, b))
        by_table = (entries_by_table(a), entries_by_table(b))
        replayer = Replayer(schema, a, b) if self.replay else None
        for info in schema.tables():
            if _is_policy_table(info.alias):
                continue
            fa, fb = (
                encode_table(space, schema, prof[i], info.name, by_table[i].get(info.name, []))
                for i in range(2)
            )
            for label, fn in zip(labels, (fa, fb), strict=True):
                report.ambiguities.extend((label, amb) for amb in fn.ambiguities)
            report.stages.append(self._compare_table(info.name, fa, fb, by_table, prof, replayer))
        for d in DIRECTIONS:
            pa, tables_a = compose_policy(space, schema, a, d, prof[0])
            pb, tables_b = compose_policy(space, schema, b, d, prof[1])
            for label, fns in zip(labels, (tables_a, tables_b), strict=True):
                report.ambiguities.extend((label, amb) for fn in fns for amb in fn.ambiguities)
            report.stages.append(self._compare_policy(d, pa, pb, replayer, (a, b)))
        self._describe_ambiguities(report)
        report.seconds = time.perf_counter() - start
        report.bdd_nodes = space.count_nodes()
        return report

    def _describe_ambiguities(self, report: Report) -> None:
        for label, amb in report.ambiguities:
            key = " ".join(f"{k}={format_value(k, report.widths.get(k, 0), v)}" for k, v in amb.key.items())
            report.ambiguity_text.append(f"  AMBIGUOUS in {label}: {amb}, both match {key}:")
            report.ambiguity_text.append(f"    [{describe_entry(self.schema, amb.first)}]")
            report.ambiguity_text.append(f"    [{describe_entry(self.schema, amb.second)}]")

    def _compare_table(
        self,
        table: str,
        fa: TableFunction,
        fb: TableFunction,
        by_table: tuple[Mapping[str, list[TableEntry]], ...],
        prof: tuple[Profiles, Profiles],
        replayer: Replayer | None,
    ) -> StageResult:
        space = self.space
        care = _table_care(space, fa)
        outcomes = set(fa.outcomes) | set(fb.outcomes)
        detail = f"{fa.entries} vs {fb.entries} entries, {len(outcomes)} outcomes"
        for o in sorted(outcomes, key=repr):
            ua: BDDNode = fa.outcomes.get(o, space.false)
            ub: BDDNode = fb.outcomes.get(o, space.false)
            if ua == ub:
                continue
            diff = space.xor(ua, ub) & care
            if diff == space.false:
                continue
            key = space.pick(diff, fa.fields) or {}
            shown = []
            for i in range(2):
                outcome, entry = concrete_outcome(
                    self.schema,
                    prof[i],
                    table,
                    by_table[i].get(table, []),
                    key,
                )
                text = describe_outcome(outcome)
                shown.append(
                    f"{text} by [{describe_entry(self.schema, entry)}]" if entry else f"{text} (miss)"
                )
            cex = Counterexample(key, shown[0], shown[1])
            if replayer is not None:
                r = replayer.table(table, key)
                cex.replay = r.text
                cex.confirmed = None if r.text.startswith("not replayed") else r.confirmed
            return StageResult(fa.table, False, detail, cex)
        return StageResult(fa.table, True, detail)

    def _avoid(self, d: Direction, bundles: tuple[Bundle, ...]) -> BDDNode:
        """Keys whose replay other stages would disturb: a peer that is a Service frontend (DNAT
        rewrites it, or svc_options rejects or drops it) and, for ingress, a peer that is itself
        egress-isolated."""
        space, schema = self.space, self.schema
        u = space.false
        for bundle in bundles:
            by_table = entries_by_table(bundle)
            for t in ("svc_frontend", "svc_frontend_internal", "svc_options"):
                try:
                    name = schema.table(t).name
                except ValueError:
                    continue
                for e in by_table.get(name, []):
                    if not e.is_default:
                        key = {short(n): getattr(m, "value", 0) for n, m in e.match}
                        u |= (
                            space.exact(d.peer_field if d.name == "egress" else "dst_addr", key["dst_addr"])
                            & space.exact("l4_proto", key["l4_proto"])
                            & space.exact("dport", key["dport"])
                        )
            if d.name == "ingress":
                for t in ("eg_pod", "eg_tier_pod"):
                    if not schema.has_table(t):
                        continue
                    for e in by_table.get(schema.table(t).name, []):
                        if not e.is_default:
                            u |= space.exact("src_addr", getattr(e.match[0][1], "value", 0))
        return u

    def _compare_policy(
        self,
        d: Direction,
        pa: PolicyFunction,
        pb: PolicyFunction,
        replayer: Replayer | None,
        bundles: tuple[Bundle, ...],
    ) -> StageResult:
        space = self.space
        pods = sorted(set(pa.pods) | set(pb.pods))
        ports = ports_care(space)
        seen: dict[tuple[object, object, bool], bool] = {}
        stage = f"{d.name} policy"
        for pod in pods:
            key_a, key_b = pa.pods.get(pod), pb.pods.get(pod)
            memo = (key_a, key_b, pod >> 32 == 0xFFFF)
            if seen.get(memo):
                continue
            ua = pa.allowed(pod)
            ub = pb.allowed(pod)
            ua = space.true if ua is None else ua
            ub = space.true if ub is None else ub
            diff = space.xor(ua, ub) & care_for_pod(space, d, pod, ports) if ua != ub else space.false
            seen[memo] = True
            if diff == space.false:
                continue
            preferred = diff & ~self._avoid(d, bundles)
            values = space.pick(preferred if preferred != space.false else diff, policy_fields(d)[1:]) or {}
            values[d.pod_field] = pod
            allowed_a = space.let(ua, values) == space.true
            cex = Counterexample(
                {k: values[k] for k in ("src_addr", "dst_addr", "l4_proto", "dport")},
                "allowed" if allowed_a else "denied",
                "denied" if allowed_a else "allowed",
            )
            if replayer is not None:
                verdicts, text = replayer.policy_verdicts(d, values)
                cex.replay = text
                cex.confirmed = verdicts == [allowed_a, not allowed_a] if verdicts else None
            return StageResult(stage, False, f"{len(pods)} isolated pod addresses", cex)
        return StageResult(stage, True, f"{len(pa.pods)} vs {len(pb.pods)} isolated pod addresses")

    # -- bundle vs intent --------------------------------------------------------------------
    def semantics(
        self,
        bundle: Bundle,
        policy: PolicyIR,
        pod_names: Mapping[int, str] | None = None,
        tiers: Sequence[PodTiers] = (),
    ) -> Report:
        """For each local pod and direction: the compiled policy stages allow exactly what the
        resolved rules allow, NetworkPolicy and the cluster policy tiers in the API's order
        (`intended`). Outcome A is the intent, B the compiled bundle."""
        start = time.perf_counter()
        space, schema = self.space, self.schema
        report = Report(("policy rules", "compiled"), widths=dict(space.widths))
        replayer = Replayer(schema, bundle) if self.replay else None
        ports = ports_care(space)
        for d in DIRECTIONS:
            compiled, fns = compose_policy(space, schema, bundle, d)
            report.ambiguities.extend(("compiled", amb) for fn in fns for amb in fn.ambiguities)
            intent = intended(space, policy, d, tiers)
            pods = sorted(set(intent) | set(compiled.pods))
            result = StageResult(f"{d.name} policy", True, f"{len(pods)} pod addresses")
            for pod in pods:
                want = intent[pod][1] if pod in intent else space.true
                got = compiled.allowed(pod)
                got = space.true if got is None else got
                if want == got:
                    continue
                diff = space.xor(want, got) & care_for_pod(space, d, pod, ports)
                if diff == space.false:
                    continue
                preferred = diff & ~self._avoid(d, (bundle,))
                values = (
                    space.pick(preferred if preferred != space.false else diff, policy_fields(d)[1:]) or {}
                )
                values[d.pod_field] = pod
                allowed = space.let(got, values) == space.true
                name = intent[pod][0] if pod in intent else (pod_names or {}).get(pod, address_text(pod))
                cex = Counterexample(
                    {k: values[k] for k in ("src_addr", "dst_addr", "l4_proto", "dport")},
                    f"{'denied' if allowed else 'allowed'} for {name}",
                    "allowed" if allowed else "denied",
                )
                if replayer is not None:
                    verdicts, text = replayer.policy_verdicts(d, values)
                    cex.replay = text
                    cex.confirmed = verdicts == [allowed] if verdicts else None
                result = StageResult(result.stage, False, result.detail, cex)
                break
            report.stages.append(result)
        self._describe_ambiguities(report)
        report.seconds = time.perf_counter() - start
        report.bdd_nodes = space.count_nodes()
        return report


def verify(a: Bundle, b: Bundle, schema: Schema, *, replay: bool = True) -> Report:
    """Prove `a` and `b` equivalent stage by stage, or return the first difference per stage."""
    return Verifier(schema, replay=replay).compare(a, b)


def check_semantics(
    bundle: Bundle, policy: PolicyIR, schema: Schema, *, replay: bool = True, tiers: Sequence[PodTiers] = ()
) -> Report:
    return Verifier(schema, replay=replay).semantics(bundle, policy, tiers=tiers)


def render_report(report: Report, title: str) -> str:
    lines = [f"{title}: {report.labels[0]} vs {report.labels[1]}"]
    width = max((len(s.stage) for s in report.stages), default=10)
    for s in report.stages:
        lines.append(f"  {s.stage:<{width}}  {'equal' if s.equal else 'DIFFERENT'}  ({s.detail})")
        c = s.counterexample
        if c is not None:
            lines.append(f"    counterexample: {c.fields_text(report.widths | WIDTHS)}")
            lines.append(f"      {report.labels[0]}: {c.outcome_a}")
            lines.append(f"      {report.labels[1]}: {c.outcome_b}")
            status = {True: "confirmed", False: "NOT confirmed", None: "not replayed"}[c.confirmed]
            lines.append(f"    interpreter: {status}: {c.replay}")
    lines.extend(report.ambiguity_text)
    return "\n".join(lines) + "\n"
