"""The optimization passes: one ordered list, each pass a pure function in its own module.

Passes work at two levels (docs/passes.md):
- `policy`: PolicyIR -> PolicyIR, between NetworkPolicy resolution and lowering;
- `entries`: table entries -> table entries, after lowering, before capacity checks.
A `PassConfig` says which passes run and for which target profile; the profile's mandatory
lowering (dpdk: ranges as value/mask blocks) is not a pass and always runs. With `check`, each
pass's verifier runs after it (tests always turn it on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from k8s_offload.compiler.bundle.model import Range, TableEntry
from k8s_offload.compiler.ir.rules import PolicyIR, check_policy_ir
from tests.reference.passes_drop_subsumed import drop_subsumed
from tests.reference.passes_exact_hosts import exact_hosts
from tests.reference.passes_lpm_compress import is_class_table, lpm_compress
from tests.reference.passes_merge_rules import merge_policy_rules
from tests.reference.passes_ortc import blocks
from tests.reference.passes_range_encoding import PROFILES, expand_blocks, is_port_table, range_encoding

LB_MODES = ("hash", "maglev")


def _check_entries(entries: list[TableEntry], profile: str, final: bool = False) -> None:
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


@dataclass(frozen=True, slots=True)
class Pass:
    name: str
    level: str  # "policy" or "entries"
    run: Callable[..., object]
    doc: str


PASSES: tuple[Pass, ...] = (
    Pass("merge_rules", "policy", merge_policy_rules, "merge rules with equal peers or equal ports"),
    Pass("drop_subsumed", "policy", drop_subsumed, "drop rules inside another rule of the same set"),
    # Before lpm_compress here (the engine's PIPELINE lists it after, and does both inside the
    # peer-class table): ORTC needs to know which addresses the host table answers.
    Pass("exact_hosts", "entries", lambda es, _p: exact_hosts(es), "peer-class hosts in exact tables"),
    Pass("lpm_compress", "entries", lambda es, _p: lpm_compress(es), "ORTC on the peer-class LPM tables"),
    Pass("range_encoding", "entries", range_encoding, "dpdk: port ranges as nested value/mask blocks"),
)
PASS_NAMES = tuple(p.name for p in PASSES)


@dataclass(frozen=True, slots=True)
class PassConfig:
    enabled: frozenset[str] = frozenset(PASS_NAMES)
    profile: str = "bmv2"
    check: bool = False
    lb: str = "hash"
    """Service backend selection: "hash" (the selector's hash over one member per backend) or
    "maglev" (a Maglev lookup table of slot members per backend set; k8s_offload/compiler/lower/ecmp.py)."""
    dump_after: str | None = None
    dumps: list[str] = field(default_factory=list)
    """Filled with a text dump of the pass's output when `dump_after` names it."""

    def __post_init__(self) -> None:
        unknown = sorted(self.enabled - set(PASS_NAMES))
        if unknown:
            raise ValueError(f"unknown pass(es) {', '.join(unknown)}; known: {', '.join(PASS_NAMES)}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown target profile {self.profile}; known: {', '.join(PROFILES)}")
        if self.lb not in LB_MODES:
            raise ValueError(f"unknown load-balancing mode {self.lb}; known: {', '.join(LB_MODES)}")

    @classmethod
    def parse(
        cls, passes: str | None, no_opt: bool, profile: str, dump_after: str | None = None, lb: str = "hash"
    ) -> PassConfig:
        if no_opt:
            enabled: frozenset[str] = frozenset()
        elif passes is None:
            enabled = frozenset(PASS_NAMES)
        else:
            enabled = frozenset(p.strip() for p in passes.split(",") if p.strip())
        return cls(enabled, profile, dump_after=dump_after, lb=lb)


NO_OPT = PassConfig(frozenset())


def run_policy_passes(pir: PolicyIR, config: PassConfig) -> PolicyIR:
    for p in PASSES:
        if p.level == "policy" and p.name in config.enabled:
            pir = p.run(pir)  # type: ignore[assignment]
            if config.check:
                check_policy_ir(pir)
            if config.dump_after == p.name:
                from k8s_offload.compiler.ir.dump_rules import dump_rules

                config.dumps.append(dump_rules(pir))
    return pir


def run_entry_passes(entries: Sequence[TableEntry], config: PassConfig) -> list[TableEntry]:
    out = list(entries)
    for p in PASSES:
        if p.level == "entries" and p.name in config.enabled:
            out = p.run(out, config.profile)  # type: ignore[assignment]
            if config.check:
                _check_entries(out, config.profile)
            if config.dump_after == p.name:
                config.dumps.append(
                    "".join(
                        f"{e}\n"
                        for e in out
                        if is_class_table(e.table) or is_port_table(e.table) or e.table.endswith("_peer_host")
                    )
                )
    if config.profile == "dpdk":
        out = expand_blocks(out)
    if config.check:
        _check_entries(out, config.profile, final=True)
    return out
