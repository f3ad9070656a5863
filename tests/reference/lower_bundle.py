"""The whole lowering: IR in, one ordered, capacity-checked bundle out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from k8s_offload import gcpause
from k8s_offload.compiler.bundle.model import Bundle, TableEntry, match_values
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.ir.model import ClusterIR, Diagnostic
from k8s_offload.compiler.ir.rules import PolicyIR, check_policy_ir
from tests.reference.lower_node import lower_node
from tests.reference.lower_policy import lower_policies
from tests.reference.lower_services import lower_services
from tests.reference.passes_pipeline import PassConfig, run_entry_passes, run_policy_passes
from tests.reference.passes_resolve_policy import resolve_unmerged


class CapacityError(BundleError):
    """The cluster needs more entries than the program's tables or profiles hold."""


@dataclass(frozen=True, slots=True)
class Lowered:
    bundle: Bundle
    diagnostics: tuple[Diagnostic, ...]
    policy: PolicyIR


def entry_sort_key(
    schema: Schema, order: dict[str, int], e: TableEntry
) -> tuple[int, bool, tuple[tuple[int, ...], ...]]:
    """Entries grouped by table in pipeline order, defaults last, then by key value."""
    info = schema.table(e.table)
    key = tuple((info.field(name).id, *match_values(m)) for name, m in e.match)
    return (order[e.table], e.is_default, key)


def check_capacity(schema: Schema, bundle: Bundle) -> None:
    """P4Info sizes are the contract: overflow names the table, the need and the capacity."""
    check_counts(schema, bundle.counts())


def check_counts(schema: Schema, counts: Mapping[str, int]) -> None:
    """`check_capacity` on counts kept up to date elsewhere (the incremental compiler's)."""
    problems: list[str] = []
    for table, count in sorted(counts.items()):
        if table.endswith(" (members)"):
            prof = schema.profile(table.removesuffix(" (members)"))
            if count > prof.size:
                problems.append(f"action profile {prof.alias}: needs {count} members, holds {prof.size}")
            continue
        if table.endswith(" (groups)"):
            continue
        info = schema.table(table)
        if count > info.size:
            problems.append(f"table {info.alias}: needs {count} entries, holds {info.size}")
    if problems:
        raise CapacityError("; ".join(problems))


def lower(ir: ClusterIR, schema: Schema, config: PassConfig | None = None) -> Lowered:
    """`config` picks the optimization passes and target profile (k8s_offload/compiler/passes/pipeline.py);
    None runs every pass for bmv2. The cyclic GC is paused as in loading (k8s_offload/gcpause.py):
    the lowering builds hundreds of thousands of acyclic entries, and rescanning them cost more
    than half its time at size M (docs/benchmarks.md)."""
    with gcpause.paused():
        return _lower(ir, schema, config or PassConfig())


def _lower(ir: ClusterIR, schema: Schema, config: PassConfig) -> Lowered:
    entries = lower_node(ir, schema)
    svc = lower_services(ir, schema, config)
    entries.extend(svc.entries)
    policy = run_policy_passes(resolve_unmerged(ir), config)
    check_policy_ir(policy)
    entries.extend(lower_policies(schema, policy).entries)
    entries = run_entry_passes(entries, config)
    order = {name: i for i, name in enumerate(schema.table_order)}
    entries.sort(key=lambda e: entry_sort_key(schema, order, e))
    bundle = Bundle(
        members=tuple(sorted(svc.members, key=lambda m: m.member_id)),
        groups=tuple(sorted(svc.groups, key=lambda g: g.group_id)),
        entries=tuple(entries),
    )
    check_capacity(schema, bundle)
    return Lowered(bundle, tuple(sorted(svc.diagnostics)), policy)
