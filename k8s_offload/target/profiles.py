"""Action profile members and selector groups, validated as a P4Runtime server does.

Each member gets a bmv2 member handle when inserted; a group's members are kept sorted by handle,
because bmv2 picks `members[hash % n]` in that order.

Weights follow PI (p4lang/PI proto/frontend/src/action_prof_mgr.cpp, the P4Runtime server of
bmv2's simple_switch_grpc), since bmv2 itself has none: a member of weight w is w bmv2 members,
its own handle and w - 1 copies created on first need (lowest free handle, members taken in
member-id order) and deleted again when no group uses that weight any more; the group holds all
of them, so in handle order. Checks, in PI's order: a weight <= 0 is INVALID_ARGUMENT, a sum of
weights above the group's max_size (else max_group_size) RESOURCE_EXHAUSTED (the P4Runtime spec's
SumOfWeights size semantics, its default), then an unknown member NOT_FOUND and a repeated one
INVALID_ARGUMENT. Copies do not count against the profile's size (PI and bmv2 do not check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.handles import HandleAllocator
from k8s_offload.target.journal import Journal
from k8s_offload.target.p4info_index import ProfileInfo

__all__ = ["Group", "Member", "ProfileStore"]

INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT


@dataclass(slots=True)
class Member:
    id: int
    handle: int
    action_id: int
    args: tuple[int, ...]
    raw: bytes  # the ActionProfileMember as written, serialized: what a read answers
    groups: set[int] = field(default_factory=set)
    table_refs: int = 0
    handles: list[int] = field(default_factory=list)
    """Its own handle, then the copies that give it weight (PI)."""
    weight_counts: dict[int, int] = field(default_factory=dict)
    """Groups using it per weight; PI counts 1 for the member itself, so it never loses its handle."""


@dataclass(slots=True)
class Group:
    id: int
    max_size: int
    member_ids: list[int]
    raw: bytes  # the ActionProfileGroup as written, serialized: what a read answers
    ordered: list[Member] = field(default_factory=list)  # by bmv2 member handle, copies included
    table_refs: int = 0
    weights: dict[int, int] = field(default_factory=dict)


class ProfileStore:
    """The members and groups of one action profile or action selector."""

    def __init__(self, info: ProfileInfo, journal: Journal | None = None) -> None:
        self.info = info
        self._name = f"action profile {info.name!r}"
        self.members: dict[int, Member] = {}
        self.groups: dict[int, Group] = {}
        self._journal = journal = journal or Journal()
        self._handles = HandleAllocator(journal)

    def _what(self, kind: str, ident: int) -> str:
        return f"{self._name} {kind} {ident}"

    def write_member(self, update_type: int, msg: Any, action: tuple[int, tuple[int, ...]] | None) -> None:
        """Apply a member update; `action` is the already-validated (action id, args)."""
        mid = msg.member_id
        what = self._what("member", mid)
        if update_type == p4runtime.Update.DELETE:
            member = self.members.get(mid)
            if member is None:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what} does not exist")
            if member.groups:
                raise P4RuntimeError(
                    code_pb2.FAILED_PRECONDITION, f"{what} is still in group(s) {sorted(member.groups)}"
                )
            if member.table_refs:
                raise P4RuntimeError(code_pb2.FAILED_PRECONDITION, f"{what} is referenced by a table entry")
            del self.members[mid]
            self._handles.release(member.handle)
            gone = member
            self._journal.record(self.members.__setitem__, mid, gone)
            return
        if mid == 0:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: member_id must be non-zero")
        if action is None:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: action must be set")
        if update_type == p4runtime.Update.INSERT:
            if mid in self.members:
                raise P4RuntimeError(code_pb2.ALREADY_EXISTS, f"{what} already exists")
            if self.info.size and len(self.members) >= self.info.size:
                raise P4RuntimeError(
                    code_pb2.RESOURCE_EXHAUSTED, f"{what}: profile is full ({self.info.size} members)"
                )
            handle = self._handles.allocate()
            self.members[mid] = Member(
                mid, handle, action[0], action[1], msg.SerializeToString(), set(), 0, [handle], {1: 1}
            )
            if self._journal.active:
                self._journal.record(self.members.__delitem__, mid)
            return
        found = self.members.get(mid)
        if found is None:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what} does not exist")
        old = (found.action_id, found.args, found.raw)
        found.action_id, found.args = action
        found.raw = msg.SerializeToString()
        self._journal.record(_restore_member, found, old)

    def write_group(self, update_type: int, msg: Any) -> None:
        gid = msg.group_id
        what = self._what("group", gid)
        if not self.info.with_selector:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: profile has no selector, groups are not allowed")
        if update_type == p4runtime.Update.DELETE:
            group = self.groups.get(gid)
            if group is None:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what} does not exist")
            if group.table_refs:
                raise P4RuntimeError(code_pb2.FAILED_PRECONDITION, f"{what} is referenced by a table entry")
            gone = group
            self._set_members(gone, {})
            del self.groups[gid]
            self._journal.record(self.groups.__setitem__, gid, gone)
            return
        if gid == 0:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: group_id must be non-zero")
        existing = self.groups.get(gid)
        if update_type == p4runtime.Update.INSERT and existing is not None:
            raise P4RuntimeError(code_pb2.ALREADY_EXISTS, f"{what} already exists")
        if update_type == p4runtime.Update.MODIFY:
            if existing is None:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what} does not exist")
            if msg.max_size != existing.max_size:
                raise P4RuntimeError(
                    INVALID_ARGUMENT,
                    f"{what}: max_size cannot change ({existing.max_size} -> {msg.max_size})",
                )
        limit = self.info.max_group_size
        if limit and not 0 < msg.max_size <= limit:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{what}: max_size {msg.max_size} must be in 1..max_group_size {limit}"
            )
        max_size = msg.max_size
        given = [(m.member_id, m.weight, m) for m in msg.members]
        for member_id, weight, _ in given:
            if weight <= 0:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, f"{what}: member {member_id} weight {weight} is not positive"
                )
        total = sum(weight for _, weight, _ in given)
        capacity = max_size or limit
        if capacity and total > capacity:
            raise P4RuntimeError(
                code_pb2.RESOURCE_EXHAUSTED,
                f"{what}: sum of member weights {total} exceeds max_size {capacity}",
            )
        weights: dict[int, int] = {}
        members = self.members
        for member_id, weight, m in given:
            if member_id not in members:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what}: member {member_id} does not exist")
            if member_id in weights:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: member {member_id} listed twice")
            if m.HasField("watch") or m.HasField("watch_port"):
                raise P4RuntimeError(code_pb2.UNIMPLEMENTED, f"{what}: member {member_id}: watch ports")
            weights[member_id] = weight
        group = existing or Group(gid, max_size, [], b"")
        old_raw = group.raw
        group.raw = msg.SerializeToString()
        self._set_members(group, weights)
        self.groups[gid] = group
        if self._journal.active:
            if existing is None:
                self._journal.record(self.groups.__delitem__, gid)
            else:
                self._journal.record(setattr, group, "raw", old_raw)

    def _set_members(self, group: Group, weights: dict[int, int]) -> None:
        """Make the group's membership `weights` as PI does: members in id order, copies created
        as needed, then unused copies deleted. Undone exactly inside a transaction."""
        members = self.members
        touched = [members[mid] for mid in sorted(group.weights.keys() | weights.keys())]
        if self._journal.active:
            snapshot = [(m, list(m.handles), dict(m.weight_counts), set(m.groups)) for m in touched]
            self._journal.record(
                _restore_members, group, snapshot, group.weights, group.member_ids, group.ordered
            )
        for m in touched:
            current, new = group.weights.get(m.id, 0), weights.get(m.id, 0)
            while len(m.handles) < new:
                m.handles.append(self._handles.allocate())
            counts = m.weight_counts
            if current:
                counts[current] -= 1
            if new:
                counts[new] = counts.get(new, 0) + 1
                m.groups.add(group.id)
            else:
                m.groups.discard(group.id)
        for m in touched:
            counts = m.weight_counts
            top = 1  # the highest weight still in use (weights are positive)
            for w, c in counts.items():
                if c > 0 and w > top:
                    top = w
            if len(counts) > 1 or top not in counts:
                for w in [w for w in counts if w > top]:
                    del counts[w]
            while len(m.handles) > top:
                self._handles.release(m.handles.pop())
        group.weights = dict(weights)
        group.member_ids = list(weights)
        slots = sorted((h, mid) for mid, w in weights.items() for h in members[mid].handles[:w])
        group.ordered = [members[mid] for _, mid in slots]


def _restore_member(member: Member, old: tuple[int, tuple[int, ...], bytes]) -> None:
    member.action_id, member.args, member.raw = old


def _restore_members(
    group: Group,
    snapshot: list[tuple[Member, list[int], dict[int, int], set[int]]],
    weights: dict[int, int],
    member_ids: list[int],
    ordered: list[Member],
) -> None:
    for m, handles, counts, groups in snapshot:
        m.handles, m.weight_counts, m.groups = handles, counts, groups
    group.weights, group.member_ids, group.ordered = weights, member_ids, ordered
