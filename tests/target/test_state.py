"""Write validation of TargetState: each rejection with the canonical code the P4Runtime spec names.

Section names refer to the P4Runtime Specification v1.x (docs/v1/P4Runtime-Spec.adoc).
"""

from __future__ import annotations

from typing import Any

import pytest

from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.target import P4RuntimeError, TargetState

from .fixtures import (
    A_DEF,
    A_SET,
    A_TBL,
    A_TWO,
    COUNTER,
    PROFILE,
    REGISTER,
    T_EXACT,
    T_KEYLESS,
    T_LPM,
    T_SEL,
    T_TERN,
    action,
    build_p4info,
    entry,
    exact,
    update,
)


@pytest.fixture
def state() -> TargetState:
    return TargetState(build_p4info())


def rejects(state: TargetState, code: int, upd: Any, text: str = "") -> P4RuntimeError:
    with pytest.raises(P4RuntimeError) as info:
        state.apply(upd)
    assert info.value.code == code, info.value
    assert text in info.value.message
    return info.value


def ins(te: Any) -> Any:
    return update("INSERT", table_entry=te)


def lpm(fid: int, value: bytes, plen: int) -> Any:
    fm = p4runtime.FieldMatch(field_id=fid)
    fm.lpm.value, fm.lpm.prefix_len = value, plen
    return fm


def ternary(fid: int, value: bytes, mask: bytes) -> Any:
    fm = p4runtime.FieldMatch(field_id=fid)
    fm.ternary.value, fm.ternary.mask = value, mask
    return fm


def rng(fid: int, low: bytes, high: bytes) -> Any:
    fm = p4runtime.FieldMatch(field_id=fid)
    fm.range.low, fm.range.high = low, high
    return fm


EXACT_KEY = [exact(1, b"\x01"), exact(2, b"\x08\x00")]


def test_insert_read_back_canonical(state: TargetState) -> None:
    """Bytestrings: canonical and full-width padded forms both accepted; reads return canonical."""
    state.apply(
        ins(entry(T_EXACT, [exact(1, b"\x00\x01"), exact(2, b"\x08\x00")], action(A_SET, b"\x00\x05")))
    )
    [read] = state.read(p4runtime.Entity(table_entry=p4runtime.TableEntry(table_id=T_EXACT)))
    assert read.table_entry.match[0].exact.value == b"\x01"
    assert read.table_entry.action.action.params[0].value == b"\x05"
    assert state.tables[T_EXACT].engine.lookup((1, 0x800)) is not None


def test_unknown_ids_are_not_found(state: TargetState) -> None:
    """Unknown table, match field, action and profile ids: NOT_FOUND."""
    rejects(state, code_pb2.NOT_FOUND, ins(entry(0x02000099, EXACT_KEY, action(A_SET, b"\x01"))), "table")
    rejects(
        state, code_pb2.NOT_FOUND, ins(entry(T_EXACT, [*EXACT_KEY, exact(9, b"\x01")], action(A_DEF))), "9"
    )
    rejects(state, code_pb2.NOT_FOUND, ins(entry(T_EXACT, EXACT_KEY, action(0x01000099))), "action")
    member = p4runtime.ActionProfileMember(action_profile_id=0x11000099, member_id=1)
    rejects(state, code_pb2.NOT_FOUND, update("INSERT", action_profile_member=member), "profile")


def test_bytestring_width(state: TargetState) -> None:
    """Bytestrings: a value beyond bit<W>, or an empty string -> OUT_OF_RANGE; zero padding beyond
    the width is accepted (the receiver limits the value, not the length)."""
    oor = code_pb2.OUT_OF_RANGE
    rejects(
        state, oor, ins(entry(T_EXACT, [exact(1, b"\x02\x00"), exact(2, b"\x01")], action(A_DEF))), "bit<9>"
    )
    rejects(state, oor, ins(entry(T_EXACT, [exact(1, b""), exact(2, b"\x01")], action(A_DEF))), "empty")
    rejects(state, oor, ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x02\x00"))), "param 'port'")
    state.apply(ins(entry(T_EXACT, [exact(1, b"\x00\x00\x01"), exact(2, b"\x01")], action(A_SET, b"\x05"))))
    [read] = state.read(p4runtime.Entity(table_entry=p4runtime.TableEntry(table_id=T_EXACT)))
    assert read.table_entry.match[0].exact.value == b"\x01"


def test_missing_exact_field(state: TargetState) -> None:
    """Match Format: exact fields have no don't care and can never be omitted."""
    rejects(
        state, code_pb2.INVALID_ARGUMENT, ins(entry(T_EXACT, [exact(1, b"\x01")], action(A_SET, b"\x01")))
    )


def test_lpm_rules(state: TargetState) -> None:
    """Match Format, LPM: prefix_len in range, /0 omitted, no bits set beyond the prefix."""
    inv = code_pb2.INVALID_ARGUMENT
    key = [exact(1, b"\x01")]
    rejects(state, inv, ins(entry(T_LPM, [*key, lpm(2, b"\x0a", 33)], action(A_SET, b"\x01"))), "prefix_len")
    rejects(state, inv, ins(entry(T_LPM, [*key, lpm(2, b"\x00", 0)], action(A_SET, b"\x01"))), "omitted")
    rejects(
        state, inv, ins(entry(T_LPM, [*key, lpm(2, b"\x0a\x00\x00\x01", 8)], action(A_SET, b"\x01"))), "/8"
    )
    state.apply(ins(entry(T_LPM, [*key, lpm(2, b"\x0a\x00\x00\x00", 8)], action(A_SET, b"\x01"))))


def test_ternary_range_optional_rules(state: TargetState) -> None:
    """Match Format: ternary value within mask, mask 0 omitted; range low <= high, full range omitted."""
    inv = code_pb2.INVALID_ARGUMENT
    key = [exact(1, b"\x01")]
    act = action(A_SET, b"\x01")
    rejects(state, inv, ins(entry(T_TERN, [*key, ternary(2, b"\x0f", b"\x0e")], act, 1)), "outside the mask")
    rejects(state, inv, ins(entry(T_TERN, [*key, ternary(2, b"\x00", b"\x00")], act, 1)), "mask 0")
    rejects(state, inv, ins(entry(T_TERN, [*key, rng(3, b"\x05", b"\x04")], act, 1)), "low 5 > high 4")
    rejects(state, inv, ins(entry(T_TERN, [*key, rng(3, b"\x00", b"\xff\xff")], act, 1)), "full range")
    state.apply(ins(entry(T_TERN, [*key, rng(3, b"\x00", b"\xff\xfe")], act, 1)))


def test_priority_rules(state: TargetState) -> None:
    """TableEntry: priority > 0 iff the key has a ternary, range or optional field."""
    inv = code_pb2.INVALID_ARGUMENT
    rejects(state, inv, ins(entry(T_TERN, [exact(1, b"\x01")], action(A_SET, b"\x01"), 0)), "priority")
    rejects(state, inv, ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x01"), 3)), "priority")


def test_action_set_scope_and_params(state: TargetState) -> None:
    """Action Specification: action in the table's set (INVALID_ARGUMENT), scope (PERMISSION_DENIED),
    every parameter present exactly once (INVALID_ARGUMENT)."""
    inv = code_pb2.INVALID_ARGUMENT
    rejects(state, code_pb2.PERMISSION_DENIED, ins(entry(T_EXACT, EXACT_KEY, action(A_DEF))), "@defaultonly")
    rejects(state, inv, ins(entry(T_EXACT, EXACT_KEY, action(A_TWO, b"\x01"))), "missing params ['b']")
    rejects(
        state, inv, ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x01", b"\x02"))), "no parameter with id 2"
    )
    rejects(state, inv, ins(entry(T_SEL, [exact(1, b"\x01")], action(A_TBL))), "indirect")
    default = entry(T_EXACT, [], action(A_TBL), is_default_action=True)
    rejects(state, code_pb2.PERMISSION_DENIED, update("MODIFY", table_entry=default), "@tableonly")
    # The selector table's action set excludes A_DEF:
    member = p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=1)
    member.action.action_id = A_DEF
    rejects(state, inv, update("INSERT", action_profile_member=member), "not in its action set")


def test_duplicates_missing_and_full(state: TargetState) -> None:
    """INSERT of an existing entry: ALREADY_EXISTS; MODIFY/DELETE of a missing one: NOT_FOUND;
    table at its size: RESOURCE_EXHAUSTED."""
    state.apply(ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x01"))))
    rejects(state, code_pb2.ALREADY_EXISTS, ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x02"))))
    other = [exact(1, b"\x02"), exact(2, b"\x01")]
    rejects(
        state, code_pb2.NOT_FOUND, update("MODIFY", table_entry=entry(T_EXACT, other, action(A_SET, b"\x01")))
    )
    rejects(state, code_pb2.NOT_FOUND, update("DELETE", table_entry=entry(T_EXACT, other)))
    state.apply(ins(entry(T_EXACT, other, action(A_SET, b"\x01"))))
    third = [exact(1, b"\x03"), exact(2, b"\x01")]
    rejects(state, code_pb2.RESOURCE_EXHAUSTED, ins(entry(T_EXACT, third, action(A_SET, b"\x01"))), "full")
    state.apply(update("DELETE", table_entry=entry(T_EXACT, other, action(0x0100FFFF))))  # action ignored
    state.apply(ins(entry(T_EXACT, third, action(A_SET, b"\x01"))))


def test_default_entry(state: TargetState) -> None:
    """Default Entry: only MODIFY, empty match; unset action resets to the program's default."""
    inv = code_pb2.INVALID_ARGUMENT
    rejects(state, inv, ins(entry(T_EXACT, [], action(A_DEF), is_default_action=True)), "only MODIFY")
    rejects(
        state,
        inv,
        update("MODIFY", table_entry=entry(T_EXACT, EXACT_KEY, action(A_DEF), is_default_action=True)),
    )
    state.apply(
        update("MODIFY", table_entry=entry(T_EXACT, [], action(A_SET, b"\x07"), is_default_action=True))
    )
    assert state.tables[T_EXACT].default == (A_SET, (7,))
    state.apply(update("MODIFY", table_entry=entry(T_EXACT, [], is_default_action=True)))
    assert state.tables[T_EXACT].default == (A_DEF, ())
    rejects(state, inv, ins(entry(T_KEYLESS, [], action(A_SET, b"\x01"))), "keyless")


def member(mid: int, port: int = 1) -> Any:
    m = p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=mid)
    m.action.action_id = A_SET
    m.action.params.add(param_id=1, value=bytes([port]))
    return update("INSERT", action_profile_member=m)


def group(kind: str, gid: int, members: list[int], max_size: int = 4) -> Any:
    g = p4runtime.ActionProfileGroup(action_profile_id=PROFILE, group_id=gid, max_size=max_size)
    for mid in members:
        g.members.add(member_id=mid, weight=1)
    return update(kind, action_profile_group=g)


def test_profiles(state: TargetState) -> None:
    """ActionProfileMember & ActionProfileGroup: Member Programming, Group Programming, max_size rules."""
    for mid in (1, 2, 3, 4, 5):
        state.apply(member(mid))
    rejects(state, code_pb2.ALREADY_EXISTS, member(1))
    rejects(state, code_pb2.NOT_FOUND, group("INSERT", 1, [1, 9]), "member 9")
    rejects(state, code_pb2.INVALID_ARGUMENT, group("INSERT", 1, [1, 1]), "twice")
    rejects(state, code_pb2.INVALID_ARGUMENT, group("INSERT", 1, [1], max_size=5), "max_group_size")
    rejects(state, code_pb2.RESOURCE_EXHAUSTED, group("INSERT", 1, [1, 2, 3], max_size=2), "max_size 2")
    state.apply(group("INSERT", 1, [3, 1, 2]))
    assert [m.id for m in state.profiles[PROFILE].groups[1].ordered] == [1, 2, 3]  # handle order
    rejects(state, code_pb2.INVALID_ARGUMENT, group("MODIFY", 1, [1], max_size=3), "cannot change")
    rejects(
        state,
        code_pb2.FAILED_PRECONDITION,
        update("DELETE", action_profile_member=member(1).entity.action_profile_member),
        "group",
    )
    te = entry(T_SEL, [exact(1, b"\x01")])
    te.action.action_profile_group_id = 1
    state.apply(ins(te))
    te2 = entry(T_SEL, [exact(1, b"\x02")])
    te2.action.action_profile_member_id = 5
    state.apply(ins(te2))
    te3 = entry(T_SEL, [exact(1, b"\x03")])
    te3.action.action_profile_group_id = 7
    rejects(state, code_pb2.NOT_FOUND, ins(te3), "group 7")
    rejects(state, code_pb2.FAILED_PRECONDITION, group("DELETE", 1, []), "table entry")
    m5 = member(5).entity.action_profile_member
    rejects(state, code_pb2.FAILED_PRECONDITION, update("DELETE", action_profile_member=m5), "table entry")
    direct = entry(T_EXACT, EXACT_KEY)
    direct.action.action_profile_member_id = 5
    rejects(state, code_pb2.INVALID_ARGUMENT, ins(direct), "direct")
    state.apply(member(6))
    rejects(state, code_pb2.RESOURCE_EXHAUSTED, member(7), "full")


def test_member_handles_reuse_lowest_free(state: TargetState) -> None:
    """bmv2 allocates the lowest free handle: a re-inserted member sorts where the freed one was."""
    for mid in (10, 20, 30):
        state.apply(member(mid))
    state.apply(update("DELETE", action_profile_member=member(10).entity.action_profile_member))
    state.apply(member(40))
    state.apply(group("INSERT", 1, [30, 20, 40]))
    assert [m.id for m in state.profiles[PROFILE].groups[1].ordered] == [40, 20, 30]


def test_counters_and_registers(state: TargetState) -> None:
    """CounterEntry/RegisterEntry: MODIFY only (INVALID_ARGUMENT otherwise), index range OUT_OF_RANGE."""
    ce = p4runtime.CounterEntry(counter_id=COUNTER)
    ce.index.index = 2
    ce.data.packet_count, ce.data.byte_count = 5, 500
    state.apply(update("MODIFY", counter_entry=ce))
    rejects(state, code_pb2.INVALID_ARGUMENT, update("INSERT", counter_entry=ce), "only MODIFY")
    ce.index.index = 4
    rejects(state, code_pb2.OUT_OF_RANGE, update("MODIFY", counter_entry=ce), "index 4")
    reads = state.read(p4runtime.Entity(counter_entry=p4runtime.CounterEntry(counter_id=COUNTER)))
    assert [(e.counter_entry.index.index, e.counter_entry.data.packet_count) for e in reads] == [
        (0, 0), (1, 0), (2, 5), (3, 0)
    ]  # fmt: skip
    re = p4runtime.RegisterEntry(register_id=REGISTER)
    re.index.index = 3
    re.data.bitstring = b"\x01\x00\x00\x00\x00"
    rejects(state, code_pb2.OUT_OF_RANGE, update("MODIFY", register_entry=re), "register")
    re.data.bitstring = b"\x12\x34"
    state.apply(update("MODIFY", register_entry=re))
    assert state.registers[REGISTER][3] == 0x1234


def test_wildcard_reads(state: TargetState) -> None:
    """Wildcard Reads: table_id 0 reads every table; a filter with a match reads one entry."""
    state.apply(ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x01"))))
    state.apply(ins(entry(T_LPM, [exact(1, b"\x01")], action(A_SET, b"\x02"))))
    everything = state.read(p4runtime.Entity(table_entry=p4runtime.TableEntry()))
    assert sorted(e.table_entry.table_id for e in everything) == [T_EXACT, T_LPM]
    one = state.read(p4runtime.Entity(table_entry=entry(T_EXACT, EXACT_KEY)))
    assert len(one) == 1 and one[0].table_entry.action.action.action_id == A_SET
    default = state.read(p4runtime.Entity(table_entry=entry(T_EXACT, [], is_default_action=True)))
    assert default[0].table_entry.action.action.action_id == A_DEF
    state.apply(member(1))
    assert len(state.read(p4runtime.Entity(action_profile_member=p4runtime.ActionProfileMember()))) == 1


def test_write_continues_on_error(state: TargetState) -> None:
    """Batches: each update stands alone (CONTINUE_ON_ERROR); errors are reported per update."""
    results = state.write([ins(entry(T_EXACT, EXACT_KEY, action(A_SET, b"\x01")))] * 2)
    assert results[0] is None and results[1] is not None and results[1].code == code_pb2.ALREADY_EXISTS
