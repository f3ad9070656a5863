"""One compilation: the PIPELINE's tables in one engine (docs/engine.md), fed objects, giving a
bundle and its changes.

`Compilation(schema, facts, passes)` tracks reads and takes changes (`load`, `apply`: what a live
cluster's loader uses); `track=False` runs the same tables once without recording anything (a
one-shot compile: `compile_objects`, `build_ir`, `lower`). After every successful run the bundle
equals a fresh compile of the same objects (tests/compiler/incremental compares them), and
`apply` returns only the entities that appeared or vanished since the last successful run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from k8s_offload import gcpause
from k8s_offload.compiler.bundle.model import Bundle, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.engine.core import Engine, Index, Node, Stats
from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import ObjectKey, by_key
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.ir.build import KINDS, ir_inputs
from k8s_offload.compiler.ir.check import check_ir
from k8s_offload.compiler.ir.model import ClusterIR, Diagnostic
from k8s_offload.compiler.ir.rules import PodIsolation, PolicyIR, check_policy_ir
from k8s_offload.compiler.ir.tiers import PodTiers, tier_lines
from k8s_offload.compiler.lower.bundle import check_counts, sort_entries
from k8s_offload.compiler.lower.services import check_selector
from k8s_offload.compiler.passes.pipeline import PIPELINE, POLICY_PASSES, Build, PassConfig, check_entries

Entity = TableEntry | ProfileMember | ProfileGroup


@dataclass(frozen=True, slots=True)
class Change:
    """One object created or updated (`obj` set) or deleted (`obj` None)."""

    key: ObjectKey
    obj: KubeObject | None


@dataclass
class Delta:
    """Bundle entities that appeared and disappeared (an updated entity is both)."""

    added: list[Entity] = field(default_factory=list)
    removed: list[Entity] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.added) + len(self.removed)


def count_key(e: Entity) -> str:
    """What an entity counts against: its table, or its action profile's members or groups."""
    if isinstance(e, ProfileMember):
        return f"{e.profile} (members)"
    if isinstance(e, ProfileGroup):
        return f"{e.profile} (groups)"
    return "" if e.is_default else e.table


class Compilation:
    def __init__(
        self,
        schema: Schema,
        facts: NodeFacts | None = None,
        passes: PassConfig | None = None,
        *,
        track: bool = True,
        ir: ClusterIR | None = None,
        until: str | None = None,
    ) -> None:
        """`passes`: passes, target profile, load-balancing mode and hooks (None: every pass,
        bmv2, hash); `ir`: start from this IR instead of objects; `until`: declare the PIPELINE
        only up to this step (e.g. "ir")."""
        self.schema = schema
        self.facts = facts
        self.config = passes or PassConfig()
        self.track = track
        self.from_ir = ir
        self.until = until
        self.counts: Counter[str] = Counter()
        """Entities per table (and per action profile's members and groups) of the bundle."""
        self._baseline: set[Entity] | None = None
        """After a rebuild: the bundle of the last successful run, which the next delta is
        against (otherwise the entities collection's pending change says it)."""
        self._declare()
        if ir is not None:
            ir_inputs(self.b, ir)

    def _declare(self) -> None:
        self.engine = Engine(self.track)
        b = self.b = Build(self.engine, self.schema, self.config, self.facts)
        b.cache["from_ir"] = self.from_ir is not None
        self._hooks: dict[int, list[str]] = {}
        for step in PIPELINE:
            b.step = step.name
            declare = step.declarer()
            if declare is not None and step.applies(self.config):
                declare(b)
            self._hooks.setdefault(len(self.engine.nodes) - 1, []).append(step.name)
            if step.name == self.until:
                break
        self.engine.after_table = self._after_table
        self._broken = False
        self._ir: ClusterIR | None = None

    # ---- changes ----------------------------------------------------------------------------

    def load(self, objects: Iterable[KubeObject]) -> Delta:
        """Replace every object (the first list, a relist after 410 Gone)."""
        new = {obj.key: obj for obj in objects}
        changes = [Change(k, None) for k in self.objects() if k not in new]
        changes += [Change(k, o) for k, o in new.items()]
        return self.apply(changes)

    def apply(self, changes: Iterable[Change]) -> Delta:
        """Apply object changes and run; raises ManifestErrors/BundleError as a full compile of
        the same objects would. After an error the next successful run's delta is against the
        last good bundle."""
        if self._broken:
            self._rebuild()
        t = self.b.t
        for c in changes:
            t[c.key.kind].set(c.key, c.obj)  # type: ignore[attr-defined]
        return self.run()

    def fill(self, objects: Iterable[KubeObject]) -> None:
        """The objects of a one-shot compilation, set at once."""
        by_kind: dict[str, list[tuple[ObjectKey, KubeObject]]] = {kind: [] for kind in KINDS}
        for obj in objects:
            by_kind[obj.key.kind].append((obj.key, obj))
        for kind, items in by_kind.items():
            self.b.t[kind].fill(items)  # type: ignore[attr-defined]

    def objects(self) -> Iterator[ObjectKey]:
        for kind in KINDS:
            node = self.b.t.get(kind)
            if node is not None:
                yield from node.keys()  # type: ignore[misc]

    def object_values(self) -> Iterator[KubeObject]:
        for kind in KINDS:
            node = self.b.t.get(kind)
            if node is not None:
                yield from node.values.values()  # type: ignore[attr-defined]

    def successor(self, facts: NodeFacts | None) -> Compilation:
        """The same objects under new node facts: the next run's delta is against this one's last
        good bundle (everything is recomputed)."""
        new = Compilation(self.schema, facts, self.config, track=self.track)
        for obj in self.object_values():
            new.b.t[obj.key.kind].set(obj.key, obj)  # type: ignore[attr-defined]
        new.counts, new._baseline = self.counts, self.committed()
        return new

    def committed(self) -> set[Entity]:
        """The bundle of the last successful run: what `apply`'s deltas are against."""
        if self._baseline is not None:
            return set(self._baseline)
        c = self.engine.collections.get("entities")
        if c is None:
            return set()
        out = {e for e in c.counts if c.delta.get(e, 0) <= 0}
        out.update(e for e, d in c.delta.items() if d < 0)
        return out

    def _rebuild(self) -> None:
        """A unit raised: start over from the objects (the delta stays against `committed()`)."""
        objects = list(self.object_values())
        baseline = self.committed()
        self._declare()
        self._baseline = baseline
        for obj in objects:
            self.b.t[obj.key.kind].set(obj.key, obj)  # type: ignore[attr-defined]

    # ---- running ----------------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """What the last run re-ran and cut off, per table."""
        return self.engine.stats

    def run(self) -> Delta:
        self._ir = None
        self.config.dumps.clear()
        try:
            with gcpause.paused():
                self.engine.run()
        except BaseException:
            if self.track:
                self._broken = True
            raise
        c = self.engine.collections
        errors = sorted(c["errors"].items(), key=lambda kv: kv[0]) if "errors" in c else []
        if errors:
            raise ManifestErrors(err for _, err in errors)
        entities = self.engine.collection("entities")
        if not self.track:
            delta = Delta(list(entities.items()), [])
            counts: Counter[str] = Counter(count_key(e) for e in delta.added)
        else:
            added, removed = entities.pending()
            if self._baseline is not None:  # everything recomputed: diff against the last good bundle
                now, before = entities.counts, self._baseline
                added = [e for e in now if e not in before]
                removed = [e for e in before if e not in now]
            delta = Delta(added, removed)
            counts = Counter(self.counts)
            for e in removed:
                counts[count_key(e)] -= 1
            for e in added:
                counts[count_key(e)] += 1
        self._check_lowering(counts)
        if self.config.check and self.until is None:
            check_entries(
                [e for e in entities.items() if isinstance(e, TableEntry)], self.config.profile, final=True
            )
        if self.config.dump_after is not None:
            self.config.dumps.append(self.dump(self.config.dump_after))
        if self.track:
            entities.clear()
            self._baseline = None
            self.counts = Counter({k: n for k, n in counts.items() if n})
        return delta

    def _check_lowering(self, counts: Counter[str]) -> None:
        """Selector limits of the profile, a pod's rule bits, then the P4Info capacities (the
        order a full lowering meets them in)."""
        if self.until is not None:
            return
        check_selector(self.schema, self.config.profile, counts)
        c = self.engine.collections
        if "lower_errors" in c:
            found = sorted(c["lower_errors"].items(), key=lambda kv: kv[0])
            if found:
                raise BundleError(found[0][1])
        check_counts(self.schema, {k: n for k, n in counts.items() if k and n})

    def _after_table(self, node: Node) -> None:
        for step in self._hooks.get(node.level, ()):
            if step == "check_ir" and (not self.track or self.config.check) and self.from_ir is None:
                errors = self.engine.collections.get("errors")
                if errors is None or not any(True for _ in errors.items()):  # else ManifestErrors follow
                    check_ir(self.ir())
            elif step == "check_policy_ir" and self.config.check:
                table = self.b.t["isolation"]
                stats = self.engine.stats
                keys = stats.ran_keys("isolation") if self.track and stats.complete else list(table.keys())
                for key in keys:
                    iso = table.get(key)
                    if iso is not None:
                        check_policy_ir(PolicyIR((iso,)))

    # ---- results ----------------------------------------------------------------------------

    def bundle(self) -> Bundle:
        """The current bundle: members and groups by id, entries by table in pipeline order,
        defaults last, then by key value."""
        items = self.engine.collection("entities").items()
        members: list[ProfileMember] = []
        groups: list[ProfileGroup] = []
        entries: list[TableEntry] = []
        for e in items:
            kind = type(e)
            if kind is TableEntry:
                entries.append(e)
            elif kind is ProfileMember:
                members.append(e)
            else:
                groups.append(e)
        entries = sort_entries(self.schema, entries)
        members.sort(key=attrgetter("member_id"))
        groups.sort(key=attrgetter("group_id"))
        return Bundle(tuple(members), tuple(groups), tuple(entries))

    def _values(self, name: str) -> Iterable[Any]:
        node = self.b.t.get(name)
        if node is None:
            return ()
        return (v for v in node.values.values() if v is not None)  # type: ignore[attr-defined]

    def _group(self, name: str, group: str) -> Iterable[Any]:
        node = self.b.t.get(name)
        found = node.get(group) if node is not None else None
        return found.values() if found else ()

    def _keys(self, name: str) -> list[ObjectKey]:
        node = self.b.t.get(name)
        return list(node.keys()) if isinstance(node, Index) else []

    def ir(self) -> ClusterIR:
        """The cluster IR of the current objects (as `build_ir` gives it)."""
        if self.from_ir is not None:
            return self.from_ir
        if self._ir is None:
            c = self.engine.collections
            notes = c["ir_diagnostics"].items() if "ir_diagnostics" in c else ()
            self._ir = ClusterIR(
                node=self.facts or DEFAULT_NODE_FACTS,
                namespaces=tuple(sorted(self._values("namespace_ir"), key=lambda n: n.key)),
                pods=tuple(sorted(self._values("pod_ir"), key=by_key)),
                services=tuple(sorted(self._values("service_ir"), key=by_key)),
                frontends=tuple(sorted(self._values("frontend_ir"), key=lambda f: f.sort_key)),
                backend_sets=tuple(sorted(self._values("backend_set_ir"), key=lambda s: s.key)),
                network_policies=tuple(sorted(self._values("policy_ir"), key=by_key)),
                diagnostics=tuple(sorted(set(notes))),
                cluster_policies=tuple(sorted(self._group("tier_policies", "all"), key=by_key)),
                nodes=tuple(sorted(self._group("tier_nodes", "all"), key=by_key)),
                host_network_pods=tuple(sorted(self._keys("host_network_pods"))),
            )
        return self._ir

    def policy(self, table: str = "isolation") -> PolicyIR:
        """Per local pod and direction, its rule set after the policy passes (`table`:
        "isolation_unmerged" before them)."""
        isolations: list[PodIsolation] = list(self._values(table))
        isolations.sort(key=lambda iso: (iso.direction.value, iso.pod))
        return PolicyIR(tuple(isolations))

    def tiers(self) -> tuple[PodTiers, ...]:
        """Per local pod and direction, its cluster policy tier rules."""
        found: list[PodTiers] = list(self._values("tier_isolation"))
        return tuple(sorted(found, key=lambda pt: (pt.direction.value, pt.pod)))

    def diagnostics(self) -> tuple[Diagnostic, ...]:
        c = self.engine.collections
        found = set(self.ir().diagnostics)
        if "diagnostics" in c:
            found |= set(c["diagnostics"].items())
        return tuple(sorted(found))

    def release(self) -> None:
        """Done with this compilation: free the engine's state now (`Engine.release`)."""
        self.engine.release()
        self.b.t.clear()
        self.b.cache.clear()

    def lowering_diagnostics(self) -> tuple[Diagnostic, ...]:
        c = self.engine.collections
        return tuple(sorted(set(c["diagnostics"].items()))) if "diagnostics" in c else ()

    def dump(self, step: str) -> str:
        """The output of one PIPELINE step as text (`--dump-after`)."""
        from k8s_offload.compiler.ir.dump import dump
        from k8s_offload.compiler.ir.dump_rules import dump_rules

        if step in ("ir", "check_ir"):
            return dump(self.ir())
        if step == "resolve_policy":
            return dump_rules(self.policy("isolation_unmerged"))
        if step in POLICY_PASSES:
            return dump_rules(self._policy_after(step))
        if step in ("isolation", "check_policy_ir"):
            return dump_rules(self.policy())
        if step == "resolve_tiers":
            return "".join(f"{line}\n" for pt in self.tiers() for line in tier_lines(pt))
        wanted = _DUMPED.get(step, ("",))
        return "".join(
            f"{e}\n"
            for e in self.bundle().entries
            if any(e.table.rsplit(".", 1)[-1].endswith(suffix) for suffix in wanted)
        )

    def _policy_after(self, step: str) -> PolicyIR:
        """The policy IR after one policy pass (the passes before it applied too)."""
        chain = []
        for s in PIPELINE:
            if s.name in POLICY_PASSES and s.name in self.b.t:
                chain.append(self.b.t[s.name])
            if s.name == step:
                break
        out = []
        for iso in self.policy("isolation_unmerged").isolations:
            rules = iso.rule_set.rules
            for table in chain:
                rules = table.get(rules)
            out.append(
                PodIsolation(iso.pod, iso.direction, iso.addresses, type(iso.rule_set)(rules), iso.policies)
            )
        return PolicyIR(tuple(out))


_DUMPED = {
    "lower_node": ("port_class", "neigh_steer", "fwd", "nat_source"),
    "lower_services": (
        "svc_frontend",
        "svc_frontend_internal",
        "svc_options",
        "aff_backend",
    ),
    "lower_policy": ("_pod", "_peer_host", "_peer_class", "_peer_rules", "_port_rules"),
    "lower_tiers": (
        "_tier_pod",
        "_tier_peer_host",
        "_tier_peer_class",
        "_tier_peer_rules",
        "_tier_port_rules",
        "_admin",
        "_baseline",
    ),
    "lpm_compress": ("_peer_class",),
    "exact_hosts": ("_peer_host", "_peer_class"),
    "range_encoding": ("_port_rules",),
    "expand_blocks": ("_port_rules",),
}
"""The tables an entries step writes, by name suffix (what `dump` prints after it)."""


def compile_objects(
    objects: Iterable[KubeObject], facts: NodeFacts | None, schema: Schema, passes: PassConfig | None = None
) -> Compilation:
    """A one-shot compile (no reads recorded); raises as `Compilation.run` does."""
    c = Compilation(schema, facts, passes, track=False)
    c.fill(objects)
    c.run()
    return c
