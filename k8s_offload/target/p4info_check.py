"""Does a pushed P4Info describe the program this target runs?

The embedded target runs one P4 program (`k8s_offload.p4.load_program()`), whose P4Info is the
committed contract. A SetForwardingPipelineConfig whose P4Info disagrees with it (a table of
2^40 entries, a bit<10000> key, an action the program lacks) cannot be realized: the state would
be sized and checked by one description while packets run another, so it is refused with
INVALID_ARGUMENT naming the first objects that differ (issue 17.5). Documentation, annotations
and `pkg_info` may differ; ids, names, widths, match kinds, sizes and action sets may not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["p4info_mismatches"]

SHOWN = 5


def _tables(info: Any) -> dict[str, dict[str, Any]]:
    names = {a.preamble.id: a.preamble.name for a in info.actions}
    return {
        t.preamble.name: {
            "id": t.preamble.id,
            "match fields": [(m.id, m.name, m.bitwidth, m.match_type) for m in t.match_fields],
            "actions": sorted((names.get(a.id, a.id), a.scope) for a in t.action_refs),
            "size": t.size,
            "implementation": t.implementation_id,
            "const default": t.const_default_action_id,
            "const entries": t.is_const_table,
            "direct resources": list(t.direct_resource_ids),
        }
        for t in info.tables
    }


def _facts(info: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """What must agree: kind -> object name -> field -> value."""
    return {
        "table": _tables(info),
        "action": {
            a.preamble.name: {"id": a.preamble.id, "params": [(p.id, p.name, p.bitwidth) for p in a.params]}
            for a in info.actions
        },
        "action profile": {
            p.preamble.name: {
                "id": p.preamble.id,
                "tables": list(p.table_ids),
                "selector": p.with_selector,
                "size": p.size,
                "max group size": p.max_group_size,
            }
            for p in info.action_profiles
        },
        "counter": {
            c.preamble.name: {"id": c.preamble.id, "unit": c.spec.unit, "size": c.size} for c in info.counters
        },
        "direct counter": {
            c.preamble.name: {"id": c.preamble.id, "unit": c.spec.unit, "table": c.direct_table_id}
            for c in info.direct_counters
        },
        "meter": {
            m.preamble.name: {"id": m.preamble.id, "unit": m.spec.unit, "size": m.size} for m in info.meters
        },
        "direct meter": {
            m.preamble.name: {"id": m.preamble.id, "unit": m.spec.unit, "table": m.direct_table_id}
            for m in info.direct_meters
        },
        "register": {
            r.preamble.name: {"id": r.preamble.id, "size": r.size, "type": str(r.type_spec).strip()}
            for r in info.registers
        },
        "controller header": {
            h.preamble.name: {
                "id": h.preamble.id,
                "metadata": [(m.id, m.name, m.bitwidth) for m in h.metadata],
            }
            for h in info.controller_packet_metadata
        },
        "value set": {v.preamble.name: {"id": v.preamble.id, "size": v.size} for v in info.value_sets},
        "digest": {d.preamble.name: {"id": d.preamble.id} for d in info.digests},
        "extern": {e.extern_type_name: {"instances": len(e.instances)} for e in info.externs},
    }


def p4info_mismatches(program: Any, given: Any) -> list[str]:
    """Every object of `given` that differs from the program's P4Info, missing or extra."""
    out: list[str] = []
    want, got = _facts(program), _facts(given)
    for kind, objects in want.items():
        theirs = got[kind]
        out += [f"{kind} {n} is missing" for n in sorted(objects.keys() - theirs.keys())]
        out += [f"{kind} {n} is not in the program" for n in sorted(theirs.keys() - objects.keys())]
        for name in sorted(objects.keys() & theirs.keys()):
            out += [
                f"{kind} {name}: {field} {_short(theirs[name][field])} where the program has {_short(value)}"
                for field, value in objects[name].items()
                if theirs[name][field] != value
            ]
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def describe(mismatches: Iterable[str]) -> str:
    """One line: the first few differences and how many more."""
    items = list(mismatches)
    head = "; ".join(items[:SHOWN])
    more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"the P4Info does not match the program this target runs: {head}{more}"
