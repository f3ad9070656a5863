"""The lowering's result (`Lowered`), its order and capacity checks, and `lower(ir)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from k8s_offload.compiler.bundle.model import Bundle, TableEntry, match_values
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS
from k8s_offload.compiler.ir.model import ClusterIR, Diagnostic
from k8s_offload.compiler.ir.rules import PolicyIR
from k8s_offload.compiler.passes.pipeline import PassConfig


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
    """`check_capacity` on counts (a compilation keeps them up to date)."""
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
    """The lowering units (docs/engine.md) run once on an IR built elsewhere; `config` picks the
    passes and target profile (None: every pass, bmv2). The cyclic GC is paused as in loading
    (frontend/gc_pause.py)."""
    from k8s_offload.compiler.compilation import Compilation

    c = Compilation(schema, None if ir.node is DEFAULT_NODE_FACTS else ir.node, config, track=False, ir=ir)
    c.run()
    out = Lowered(c.bundle(), c.lowering_diagnostics(), c.policy())
    c.release()
    return out
