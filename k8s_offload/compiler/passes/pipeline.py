"""`PIPELINE`: every stage, pass and check of the compilation, in order (docs/passes.md).

Each step declares its tables of engine units (docs/engine.md) into one `Build`; a full compile
and a live cluster's changes run the same tables, so this list drives both. Optional passes are
named in `PassConfig.enabled` (`--passes`, `--no-opt`); the target profile and load-balancing
mode pick the rest (`--target-profile`, `--lb`). Hooks: with `PassConfig.check` (`--check-each`)
every check step runs on what changed, and `dump_after` (`--dump-after NAME`) names a step whose
output is printed after the run.

Levels: `policy` passes rewrite one rule set at a time (a table of the rule tuple); `entries`
passes rewrite the entries of one unit (a rule set's port entries) or are the algorithm of a
table (`lpm_compress`: the peer-class LPM table's ORTC).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from k8s_offload.compiler.bundle.model import Range, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import (
    PodIsolation,
    PolicyIR,
    Rule,
    RuleSet,
    check_policy_ir,
    map_rule_sets,
)
from k8s_offload.compiler.passes.drop_subsumed import drop_subsumed_rules
from k8s_offload.compiler.passes.merge_rules import merge_rules
from k8s_offload.compiler.passes.ortc import blocks
from k8s_offload.compiler.passes.range_encoding import PROFILES, expand_blocks, range_encoding

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Engine, Input, Node, Reads

LB_MODES = ("hash", "maglev")
N = TypeVar("N", bound="Node")


@dataclass
class Build:
    """What the steps declare their tables into: the engine, the constants of one compilation
    (schema, passes, node facts), and the tables by name."""

    engine: Engine
    schema: Schema
    config: PassConfig
    facts: NodeFacts | None
    t: dict[str, Node] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-compilation caches that do not change results (interned peer sets)."""
    step_tables: dict[str, list[str]] = field(default_factory=dict)
    step: str = ""

    def __post_init__(self) -> None:
        from k8s_offload.compiler.engine.core import Input

        self.one: Input = Input(self.engine, "one")
        """One key, (): the key source of tables of a single unit (node entries)."""
        self.one.set((), True)

    def add(self, node: N) -> N:
        self.t[node.name] = node
        self.step_tables.setdefault(self.step, []).append(node.name)
        return node

    def entry_passes(self, table: Node, name: str) -> None:
        """Tables applying the enabled `entries` passes of PIPELINE, in order, to each unit of
        `table` (entries of one rule set); the last feeds the bundle."""
        from k8s_offload.compiler.engine.core import Rule as Table

        last = table
        for step in PIPELINE:
            if step.rewrite is None or not step.applies(self.config):
                continue

            def rewrite(
                r: Reads, key: Any, src: Node = last, fn: Any = step.rewrite
            ) -> tuple[TableEntry, ...]:
                entries = fn(list(r(src, key)), self.config.profile)
                if self.config.check:
                    check_entries(entries, self.config.profile)
                return tuple(entries)

            last = self.add(Table(self.engine, f"{name}.{step.name}", rewrite, over=last))
        assert isinstance(last, Table)
        last.out = "entities"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    kind: str
    """"stage" (always runs), "pass" (optional, `--passes`), "check" (with `--check-each`)."""
    doc: str
    declare: Callable[[Build], None] | None = None
    applies: Callable[[PassConfig], bool] = lambda c: True
    rewrite: Callable[[list[TableEntry], str], list[TableEntry]] | None = None
    """`entries` passes: the rewrite of one unit's entries (applied by `Build.entry_passes`)."""
    rules: Callable[[tuple[Rule, ...]], tuple[Rule, ...]] | None = None
    """Policy passes: the rewrite of one rule set (the engine's table and `run_policy_passes`)."""

    def declarer(self) -> Callable[[Build], None] | None:
        """What declares the step's tables: its own `declare`, or a policy pass's rule-set table."""
        if self.declare is None and self.rules is not None:
            return _rule_pass(self.name, self.rules)
        return self.declare


def _declare_ir(b: Build) -> None:
    from k8s_offload.compiler.ir.build import declare_ir, declare_ir_inputs

    (declare_ir_inputs if b.cache.get("from_ir") else declare_ir)(b)


def _declare_node(b: Build) -> None:
    from k8s_offload.compiler.lower.node import declare_node

    declare_node(b)


def _declare_resolution(b: Build) -> None:
    from k8s_offload.compiler.passes.resolve_policy import declare_resolution

    declare_resolution(b)


def _rule_pass(name: str, fn: Callable[[tuple[Rule, ...]], tuple[Rule, ...]]) -> Callable[[Build], None]:
    """A policy pass as an on-demand table: rule tuple in, rule tuple out, each distinct rule set
    once (pods sharing a set share the result, so they still share one set id)."""

    def declare(b: Build) -> None:
        from k8s_offload.compiler.engine.core import Rule as Table

        interned: dict[Any, Any] = b.cache.setdefault("interned peer sets", {})

        def run(r: Reads, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
            out = tuple(
                x if x.peers is None else Rule(interned.setdefault(x.peers, x.peers), x.ports)
                for x in fn(rules)
            )
            if b.config.check:
                check_rules(out)
            return out

        b.add(Table(b.engine, name, run))

    return declare


def _declare_isolation(b: Build) -> None:
    """Per local pod and direction, its isolation after the enabled policy passes."""
    from k8s_offload.compiler.engine.core import Rule as Table

    chain = [
        b.t[s.name] for s in PIPELINE if s.kind == "pass" and s.name in POLICY_PASSES and s.applies(b.config)
    ]
    raw = b.t["isolation_unmerged"]

    def isolation(r: Reads, key: Any) -> PodIsolation | None:
        iso: PodIsolation | None = r(raw, key)
        if iso is None:
            return None
        rules = iso.rule_set.rules
        for table in chain:
            rules = r(table, rules)
        return PodIsolation(iso.pod, iso.direction, iso.addresses, RuleSet(rules), iso.policies, iso.sources)

    b.add(Table(b.engine, "isolation", isolation, over=raw))


def _declare_services(b: Build) -> None:
    from k8s_offload.compiler.lower.services import declare_services

    declare_services(b)


def _declare_policy(b: Build) -> None:
    from k8s_offload.compiler.lower.policy import declare_policy

    declare_policy(b)


def _declare_tier_resolution(b: Build) -> None:
    from k8s_offload.compiler.passes.resolve_tiers import declare_tier_resolution

    declare_tier_resolution(b)


def _declare_tiers(b: Build) -> None:
    from k8s_offload.compiler.lower.tiers import declare_tiers

    declare_tiers(b)


def check_rules(rules: tuple[Rule, ...]) -> None:
    """`check_policy_ir` on one rule set."""
    from k8s_offload.compiler.frontend.model import ObjectKey

    pod = ObjectKey("Pod", "", "(rule set)")
    check_policy_ir(PolicyIR((PodIsolation(pod, PolicyType.Egress, (), RuleSet(rules), ()),)))


def check_entries(entries: Sequence[TableEntry], profile: str, final: bool = False) -> None:
    """Keys unique per table (with priority); at the end, every range expressible on the profile."""
    seen: set[tuple[str, object, int]] = set()
    for e in entries:
        if e.is_default:
            continue
        key = (e.table, e.match, e.priority)
        if key in seen:
            raise ValueError(f"{e.table}: two entries with the key {e.match}")
        seen.add(key)
        if final and profile == "dpdk":
            for _, m in e.match:
                if isinstance(m, Range) and len(blocks(m.low, m.high, 16)) != 1:
                    raise ValueError(f"{e.table}: range {m.low}..{m.high} is not one value/mask for dpdk")


def _enabled(name: str) -> Callable[[PassConfig], bool]:
    return lambda c: name in c.enabled


PIPELINE: tuple[Step, ...] = (
    Step(
        "ir",
        "stage",
        "Kubernetes objects to the cluster IR (pods, Services, frontends, backend sets)",
        _declare_ir,
    ),
    Step("check_ir", "check", "IR invariants (always on a one-shot compile)"),
    Step(
        "resolve_policy", "stage", "NetworkPolicy to rules per local pod and direction", _declare_resolution
    ),
    Step(
        "merge_rules",
        "pass",
        "merge rules with equal peers or equal ports",
        None,
        _enabled("merge_rules"),
        rules=merge_rules,
    ),
    Step(
        "drop_subsumed",
        "pass",
        "drop rules inside another rule of the same set",
        None,
        _enabled("drop_subsumed"),
        rules=drop_subsumed_rules,
    ),
    Step("isolation", "stage", "each local pod's rule sets after the policy passes", _declare_isolation),
    Step("check_policy_ir", "check", "rule sets sorted, unique, canonical"),
    Step(
        "resolve_tiers",
        "stage",
        "cluster policy tiers to ordered rules per local pod and direction",
        _declare_tier_resolution,
    ),
    Step(
        "drop_shadowed",
        "pass",
        "drop tier rules inside an earlier rule of the same tier (inside resolve_tiers)",
        None,
        _enabled("drop_shadowed"),
    ),
    Step("lower_node", "stage", "node facts and local pods: port classes, steering, routes", _declare_node),
    Step("lower_services", "stage", "frontends, groups, members, NAT, affinity", _declare_services),
    Step("lower_policy", "stage", "set ids, pod, peer-class, peer-rule, port entries", _declare_policy),
    Step(
        "lower_tiers",
        "stage",
        "tier set ids, pod, peer-class, peer-rule, port, decision entries",
        _declare_tiers,
    ),
    Step(
        "lpm_compress",
        "pass",
        "ORTC on the peer-class LPM tables (inside lower_policy)",
        None,
        _enabled("lpm_compress"),
    ),
    Step(
        "exact_hosts",
        "pass",
        "peer classes of /32 and /31 (IPv6 /128, /127) networks in exact tables (inside lower_policy)",
        None,
        _enabled("exact_hosts"),
    ),
    Step(
        "range_encoding",
        "pass",
        "dpdk: port ranges as nested value/mask blocks",
        None,
        lambda c: "range_encoding" in c.enabled and c.profile == "dpdk",
        range_encoding,
    ),
    Step(
        "expand_blocks",
        "stage",
        "dpdk: every remaining range as its aligned blocks",
        None,
        lambda c: c.profile == "dpdk",
        lambda es, _p: expand_blocks(es),
    ),
    Step("check_entries", "check", "keys unique per table; dpdk ranges one value/mask each"),
    Step("capacity", "stage", "selector limits of the profile, then P4Info table sizes"),
)
STEP_NAMES = tuple(s.name for s in PIPELINE)
PASS_NAMES = tuple(s.name for s in PIPELINE if s.kind == "pass")
POLICY_PASSES = tuple(s.name for s in PIPELINE if s.rules is not None)


@dataclass(frozen=True, slots=True)
class PassConfig:
    enabled: frozenset[str] = frozenset(PASS_NAMES)
    profile: str = "bmv2"
    check: bool = False
    """Run every check step on what changed (`--check-each`; tests always turn it on)."""
    lb: str = "hash"
    """Service backend selection: "hash" (the selector's hash over one member per backend) or
    "maglev" (a Maglev lookup table of slot members per backend set; k8s_offload/compiler/lower/ecmp.py)."""
    dump_after: str | None = None
    dumps: list[str] = field(default_factory=list)
    """Filled with a text dump of the step's output when `dump_after` names it."""

    def __post_init__(self) -> None:
        unknown = sorted(self.enabled - set(PASS_NAMES))
        if unknown:
            raise ValueError(f"unknown pass(es) {', '.join(unknown)}; known: {', '.join(PASS_NAMES)}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown target profile {self.profile}; known: {', '.join(PROFILES)}")
        if self.lb not in LB_MODES:
            raise ValueError(f"unknown load-balancing mode {self.lb}; known: {', '.join(LB_MODES)}")
        if self.dump_after is not None and self.dump_after not in STEP_NAMES:
            raise ValueError(f"unknown step {self.dump_after}; known: {', '.join(STEP_NAMES)}")

    @classmethod
    def parse(
        cls,
        passes: str | None,
        no_opt: bool,
        profile: str,
        dump_after: str | None = None,
        lb: str = "hash",
        check: bool = False,
    ) -> PassConfig:
        if no_opt:
            enabled: frozenset[str] = frozenset()
        elif passes is None:
            enabled = frozenset(PASS_NAMES)
        else:
            enabled = frozenset(p.strip() for p in passes.split(",") if p.strip())
        return cls(enabled, profile, check=check, dump_after=dump_after, lb=lb)


NO_OPT = PassConfig(frozenset())


def list_pipeline(config: PassConfig | None = None) -> str:
    """PIPELINE as `offload-compile --list-passes` prints it: one step a line, in order, marked
    when the configuration leaves it out."""
    config = config or PassConfig()
    lines = []
    for s in PIPELINE:
        on = s.applies(config) and (s.kind != "check" or config.check or s.name == "check_ir")
        lines.append(f"{s.name:<16} {s.kind:<6} {'on ' if on else 'off'} {s.doc}")
    return "\n".join(lines) + "\n"


def run_policy_passes(pir: PolicyIR, config: PassConfig) -> PolicyIR:
    """The enabled policy passes of PIPELINE, in order, on a whole policy IR (text fixtures,
    tools): the same rewrites the engine's rule-set tables run, each distinct set once."""
    for step in PIPELINE:
        if step.rules is not None and step.applies(config):
            pir = map_rule_sets(pir, step.rules)
            if config.check:
                check_policy_ir(pir)
    return pir
