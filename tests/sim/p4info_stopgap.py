"""Stopgap P4Info for the packet tests while `compiler.p4.build_p4info` is not committed yet.

Only what TargetState reads (ids, names, widths, match kinds, scopes, sizes, profiles, counters,
registers); ids are the program's @id values. Tests prefer the front end's builder when present.
"""

from __future__ import annotations

from typing import Any

from compiler.p4 import ast
from compiler.proto import p4info

_KINDS = {"exact": 2, "lpm": 3, "ternary": 4, "range": 5, "optional": 6}
_SCOPES = {"TABLE_AND_DEFAULT": 0, "TABLE_ONLY": 1, "DEFAULT_ONLY": 2}


def p4info_for(program: ast.Program) -> Any:
    try:
        from compiler.p4 import build_p4info  # type: ignore[attr-defined]
    except ImportError:
        return _stopgap(program)
    return build_p4info(program)


def _stopgap(program: ast.Program) -> Any:
    info = p4info.P4Info()
    seen: set[int] = set()
    for inst in program.instantiated_controls():
        control = inst.control
        for action in control.actions:
            if action.id is None or action.id in seen:
                continue
            seen.add(action.id)
            a = info.actions.add()
            a.preamble.id, a.preamble.name = action.id, f"{inst.path}.{action.name}"
            for i, p in enumerate(action.control_plane_params, 1):
                a.params.add(id=i, name=p.name, bitwidth=ast.type_width(p.type))
        for table in control.tables:
            t = info.tables.add(size=table.size or 1024)
            t.preamble.id, t.preamble.name = table.id or 0, f"{inst.path}.{table.name}"
            for i, k in enumerate(table.match_keys, 1):
                t.match_fields.add(id=i, name=k.name, bitwidth=k.width, match_type=_KINDS[k.match_kind])
            for ref in table.actions:
                t.action_refs.add(id=control.action(ref.action).id or 0, scope=_SCOPES[ref.scope])
            if table.implementation:
                t.implementation_id = control.extern(table.implementation).id or 0
        for ext in control.externs:
            if isinstance(ext, ast.ActionProfileInstance):
                prof = info.action_profiles.add(
                    size=ext.size, with_selector=ext.with_selector, max_group_size=ext.max_group_size
                )
                prof.preamble.id, prof.preamble.name = ext.id or 0, f"{inst.path}.{ext.name}"
                prof.table_ids.extend(t.id or 0 for t in control.tables if t.implementation == ext.name)
            elif isinstance(ext, ast.CounterInstance):
                c = info.counters.add(size=ext.size)
                c.preamble.id, c.preamble.name = ext.id or 0, f"{inst.path}.{ext.name}"
            elif isinstance(ext, ast.RegisterInstance):
                r = info.registers.add(size=ext.size)
                r.preamble.id, r.preamble.name = ext.id or 0, f"{inst.path}.{ext.name}"
                r.type_spec.bitstring.bit.bitwidth = ext.element_width
    return info
