"""TargetState transactions: rollback returns exactly the state at begin(), handles included.

Random batches over every entity kind (entries, members, groups, defaults, counters, registers),
many of them failing, are applied inside a transaction and rolled back; the fingerprint, which
holds the read-back entities and also the bmv2 handles, group member order, reference counts and
the allocators' free lists, must equal the one before. A committed transaction equals the same
updates applied without one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.p4rt.proto import p4runtime
from k8s_offload.target import P4RuntimeError, TargetState

from .fixtures import (
    A_SET,
    A_TWO,
    COUNTER,
    PROFILE,
    REGISTER,
    T_EXACT,
    T_SEL,
    T_TERN,
    action,
    build_p4info,
    entry,
    exact,
    update,
)

KINDS = ("INSERT", "MODIFY", "DELETE")


def _ternary(fid: int, value: int, mask: int) -> Any:
    fm = p4runtime.FieldMatch(field_id=fid)
    fm.ternary.value, fm.ternary.mask = value.to_bytes(2, "big"), mask.to_bytes(2, "big")
    return fm


@st.composite
def updates(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(KINDS))
    what = draw(
        st.sampled_from(("exact", "tern", "member", "group", "sel", "default", "counter", "register"))
    )
    port = bytes([draw(st.integers(1, 3))])
    if what == "exact":
        te = entry(T_EXACT, [exact(1, port), exact(2, b"\x08\x00")], action(A_SET, port))
        return update(kind, table_entry=te)
    if what == "tern":
        m = [exact(1, b"\x01"), _ternary(2, draw(st.integers(0, 3)), 3)]
        te = entry(T_TERN, m, action(A_SET, port), priority=draw(st.integers(1, 2)))
        return update(kind, table_entry=te)
    if what == "member":
        mem = p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=draw(st.integers(1, 4)))
        mem.action.action_id = A_SET
        mem.action.params.add(param_id=1, value=port)
        return update(kind, action_profile_member=mem)
    if what == "group":
        grp = p4runtime.ActionProfileGroup(action_profile_id=PROFILE, group_id=draw(st.integers(1, 2)))
        grp.max_size = 4
        for mid in draw(st.lists(st.integers(1, 4), max_size=3, unique=True)):
            grp.members.add(member_id=mid, weight=1)
        return update(kind, action_profile_group=grp)
    if what == "sel":
        te = entry(T_SEL, [exact(1, port)])
        if draw(st.booleans()):
            te.action.action_profile_group_id = draw(st.integers(1, 2))
        else:
            te.action.action_profile_member_id = draw(st.integers(1, 4))
        return update(kind, table_entry=te)
    if what == "default":
        te = p4runtime.TableEntry(table_id=T_EXACT, is_default_action=True)
        if draw(st.booleans()):
            te.action.CopyFrom(action(A_TWO, b"\x01", port))
        return update("MODIFY", table_entry=te)
    if what == "counter":
        ce = p4runtime.CounterEntry(counter_id=COUNTER)
        if draw(st.booleans()):
            ce.index.index = draw(st.integers(0, 3))
        ce.data.packet_count, ce.data.byte_count = draw(st.integers(1, 9)), 64
        return update("MODIFY", counter_entry=ce)
    re = p4runtime.RegisterEntry(register_id=REGISTER)
    re.index.index = draw(st.integers(0, 7))
    re.data.bitstring = port
    return update("MODIFY", register_entry=re)


def _apply(state: TargetState, batch: list[Any]) -> None:
    for upd in batch:
        with contextlib.suppress(P4RuntimeError):
            state.apply(upd)


def fingerprint(state: TargetState) -> Any:
    """Everything observable, by reads or by packets (handles decide bmv2's orders)."""
    reads = []
    for kind in ("table_entry", "action_profile_member", "action_profile_group", "counter_entry"):
        filt = p4runtime.Entity()
        getattr(filt, kind).SetInParent()
        reads += [e.SerializeToString(deterministic=True) for e in state.read(filt)]
    tables = {
        tid: (
            t.default,
            sorted(
                (e.key, e.priority, e.handle, e.action_id, e.args, e.member_id, e.group_id)
                for e in t.engine.entries()
            ),
            t.handles._next,
            sorted(t.handles._freed),
        )
        for tid, t in state.tables.items()
    }
    profiles = {
        pid: (
            sorted(
                (m.id, m.handle, m.action_id, m.args, sorted(m.groups), m.table_refs)
                for m in p.members.values()
            ),
            sorted(
                (g.id, g.max_size, g.member_ids, [m.id for m in g.ordered], g.table_refs)
                for g in p.groups.values()
            ),
            p._handles._next,
            sorted(p._handles._freed),
        )
        for pid, p in state.profiles.items()
    }
    return reads, tables, profiles, state.registers, state.counters


@settings(max_examples=150, deadline=None)
@given(before=st.lists(updates(), max_size=25), batch=st.lists(updates(), min_size=1, max_size=25))
def test_rollback_restores_everything(before: list[Any], batch: list[Any]) -> None:
    state = TargetState(build_p4info())
    _apply(state, before)
    want = fingerprint(state)
    state.begin()
    _apply(state, batch)
    state.rollback()
    assert fingerprint(state) == want


@settings(max_examples=60, deadline=None)
@given(before=st.lists(updates(), max_size=20), batch=st.lists(updates(), max_size=20))
def test_commit_equals_plain_writes(before: list[Any], batch: list[Any]) -> None:
    plain, txn = TargetState(build_p4info()), TargetState(build_p4info())
    _apply(plain, before + batch)
    _apply(txn, before)
    txn.begin()
    _apply(txn, batch)
    txn.commit()
    assert fingerprint(txn) == fingerprint(plain)


def test_member_handles_after_rollback_follow_bmv2_order() -> None:
    """A member deleted and restored keeps its handle even when a lower one is free."""
    state = TargetState(build_p4info())
    for mid in (1, 2, 3):
        mem = p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=mid)
        mem.action.action_id = A_SET
        mem.action.params.add(param_id=1, value=b"\x01")
        state.apply(update("INSERT", action_profile_member=mem))
    state.apply(
        update(
            "DELETE",
            action_profile_member=p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=1),
        )
    )
    store = state.profiles[PROFILE]
    state.begin()
    state.apply(
        update(
            "DELETE",
            action_profile_member=p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=3),
        )
    )
    state.rollback()
    assert store.members[3].handle == 2  # an undo log re-inserting member 3 would give it handle 0


def test_one_transaction_at_a_time() -> None:
    state = TargetState(build_p4info())
    with pytest.raises(RuntimeError):
        state.commit()
    state.begin()
    with pytest.raises(RuntimeError):
        state.begin()
    state.rollback()
    with pytest.raises(RuntimeError):
        state.rollback()
