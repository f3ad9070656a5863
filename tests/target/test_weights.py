"""Weighted selector members, as bmv2's P4Runtime server (PI) implements them.

P4Runtime Specification, "ActionProfileGroup" / "Action Profile Group Programming": a member's
`weight` repeats it in the group (a member id may appear once; "use weights instead"), and with
the default SumOfWeights size semantics `max_group_size` and a group's `max_size` bound the sum of
the weights. bmv2 has no weights; PI (proto/frontend/src/action_prof_mgr.cpp,
`group_update_members`, `create_missing_weighted_members`, `purge_unused_weighted_members`) makes a
member of weight w into w bmv2 members: its own handle plus w - 1 copies, created on first need and
deleted when no group uses that weight any more. The group then holds every copy, in handle order.
"""

from __future__ import annotations

from typing import Any

import pytest

from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.target import P4RuntimeError, TargetState

from .fixtures import A_SET, PROFILE, build_p4info, update


@pytest.fixture
def state() -> TargetState:
    return TargetState(build_p4info())  # the fixture's selector: max_group_size 4, 6 members


def member(mid: int) -> Any:
    m = p4runtime.ActionProfileMember(action_profile_id=PROFILE, member_id=mid)
    m.action.action_id = A_SET
    m.action.params.add(param_id=1, value=bytes([mid]))
    return update("INSERT", action_profile_member=m)


def group(kind: str, gid: int, weights: list[tuple[int, int]], max_size: int = 4) -> Any:
    g = p4runtime.ActionProfileGroup(action_profile_id=PROFILE, group_id=gid, max_size=max_size)
    for mid, w in weights:
        g.members.add(member_id=mid, weight=w)
    return update(kind, action_profile_group=g)


def code_of(state: TargetState, upd: Any) -> int:
    with pytest.raises(P4RuntimeError) as info:
        state.apply(upd)
    return info.value.code


def order(state: TargetState, gid: int) -> list[int]:
    return [m.id for m in state.profiles[PROFILE].groups[gid].ordered]


def handles(state: TargetState, mid: int) -> list[int]:
    return state.profiles[PROFILE].members[mid].handles


def test_weight_checks_in_pi_order(state: TargetState) -> None:
    for mid in (1, 2):
        state.apply(member(mid))
    # A non-positive weight first, even when a member is unknown (PI checks weights before ids).
    assert code_of(state, group("INSERT", 1, [(9, 1), (1, 0)])) == code_pb2.INVALID_ARGUMENT
    assert code_of(state, group("INSERT", 1, [(1, -2)])) == code_pb2.INVALID_ARGUMENT
    # The sum of weights, not the member count, against max_size (SumOfWeights).
    assert code_of(state, group("INSERT", 1, [(1, 3), (2, 2)])) == code_pb2.RESOURCE_EXHAUSTED
    assert code_of(state, group("INSERT", 1, [(1, 2), (2, 1)], max_size=2)) == code_pb2.RESOURCE_EXHAUSTED
    assert code_of(state, group("INSERT", 1, [(1, 1), (9, 1)])) == code_pb2.NOT_FOUND
    assert code_of(state, group("INSERT", 1, [(1, 1), (1, 1)])) == code_pb2.INVALID_ARGUMENT
    state.apply(group("INSERT", 1, [(1, 3), (2, 1)]))
    assert sorted(order(state, 1)) == [1, 1, 1, 2]


def test_weight_copies_are_member_handles(state: TargetState) -> None:
    """Copies take the lowest free handles when first needed and go when no group needs them."""
    for mid in (1, 2, 3):
        state.apply(member(mid))  # handles 0, 1, 2
    state.apply(group("INSERT", 1, [(3, 1), (1, 2)]))
    assert handles(state, 1) == [0, 3]
    assert order(state, 1) == [1, 3, 1]  # handles 0, 2, 3
    state.apply(group("INSERT", 2, [(2, 3)]))
    assert handles(state, 2) == [1, 4, 5]
    state.apply(group("MODIFY", 1, [(1, 1), (3, 1)]))
    assert handles(state, 1) == [0]  # weight 2 no longer used: the copy is deleted
    assert order(state, 1) == [1, 3]
    state.apply(group("MODIFY", 1, [(1, 1), (3, 2)]))
    assert handles(state, 3) == [2, 3]  # the freed handle 3 is reused
    state.apply(group("DELETE", 2, []))
    assert handles(state, 2) == [1]
    state.apply(update("DELETE", action_profile_member=member(2).entity.action_profile_member))


def test_transaction_rollback_restores_copies(state: TargetState) -> None:
    for mid in (1, 2):
        state.apply(member(mid))
    state.apply(group("INSERT", 1, [(1, 1), (2, 1)]))
    state.begin()
    state.apply(group("MODIFY", 1, [(1, 2), (2, 2)]))
    assert len(order(state, 1)) == 4
    state.rollback()
    assert order(state, 1) == [1, 2] and handles(state, 1) == [0] and handles(state, 2) == [1]
    state.apply(group("MODIFY", 1, [(1, 2), (2, 1)]))
    assert handles(state, 1) == [0, 2]
