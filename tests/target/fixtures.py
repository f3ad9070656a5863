"""A small hand-written P4Info exercising every match kind, action scope and profile rule."""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt.proto import p4info, p4runtime

T_EXACT, T_LPM, T_TERN, T_SEL, T_KEYLESS = 0x02000001, 0x02000002, 0x02000003, 0x02000004, 0x02000005
A_SET, A_DEF, A_TBL, A_TWO = 0x01000001, 0x01000002, 0x01000003, 0x01000004
PROFILE, COUNTER, REGISTER = 0x11000001, 0x12000001, 0x16000001


def build_p4info() -> Any:
    info = p4info.P4Info()
    for aid, name, params in (
        (A_SET, "set", [(1, "port", 9)]),
        (A_DEF, "def", []),
        (A_TBL, "tbl", []),
        (A_TWO, "two", [(1, "a", 16), (2, "b", 32)]),
    ):
        action = info.actions.add()
        action.preamble.id, action.preamble.name = aid, name
        for pid, pname, width in params:
            action.params.add(id=pid, name=pname, bitwidth=width)

    def table(tid: int, name: str, keys: list[tuple[int, str, int, int]], size: int) -> Any:
        t = info.tables.add()
        t.preamble.id, t.preamble.name, t.size = tid, name, size
        for fid, fname, width, kind in keys:
            t.match_fields.add(id=fid, name=fname, bitwidth=width, match_type=kind)
        t.action_refs.add(id=A_SET)
        t.action_refs.add(id=A_DEF, scope=p4info.ActionRef.DEFAULT_ONLY)
        t.action_refs.add(id=A_TBL, scope=p4info.ActionRef.TABLE_ONLY)
        t.action_refs.add(id=A_TWO)
        t.initial_default_action.action_id = A_DEF
        return t

    mf = p4info.MatchField
    table(T_EXACT, "c.t_exact", [(1, "port", 9, mf.EXACT), (2, "proto", 16, mf.EXACT)], 2)
    table(T_LPM, "c.t_lpm", [(1, "vrf", 8, mf.EXACT), (2, "addr", 32, mf.LPM)], 100)
    table(
        T_TERN,
        "c.t_tern",
        [
            (1, "set", 8, mf.EXACT),
            (2, "bits", 16, mf.TERNARY),
            (3, "port", 16, mf.RANGE),
            (4, "opt", 8, mf.OPTIONAL),
        ],
        100,
    )
    sel = table(T_SEL, "c.t_sel", [(1, "fe", 24, mf.EXACT)], 100)
    sel.implementation_id = PROFILE
    del sel.action_refs[1:3]
    table(T_KEYLESS, "c.t_keyless", [], 1)
    prof = info.action_profiles.add(table_ids=[T_SEL], with_selector=True, size=6, max_group_size=4)
    prof.preamble.id, prof.preamble.name = PROFILE, "c.sel"
    counter = info.counters.add(size=4)
    counter.preamble.id, counter.preamble.name = COUNTER, "c.cnt"
    counter.spec.unit = p4info.CounterSpec.BOTH
    reg = info.registers.add(size=8)
    reg.preamble.id, reg.preamble.name = REGISTER, "c.reg"
    reg.type_spec.bitstring.bit.bitwidth = 32
    return info


def update(kind: str, **entity: Any) -> Any:
    return p4runtime.Update(type=getattr(p4runtime.Update, kind), entity=p4runtime.Entity(**entity))


def exact(fid: int, value: bytes) -> Any:
    fm = p4runtime.FieldMatch(field_id=fid)
    fm.exact.value = value
    return fm


def action(aid: int, *params: bytes) -> Any:
    ta = p4runtime.TableAction()
    ta.action.action_id = aid
    for i, value in enumerate(params, 1):
        ta.action.params.add(param_id=i, value=value)
    return ta


def entry(table_id: int, matches: list[Any], act: Any | None = None, priority: int = 0, **kw: Any) -> Any:
    te = p4runtime.TableEntry(table_id=table_id, match=matches, priority=priority, **kw)
    if act is not None:
        te.action.CopyFrom(act)
    return te
