"""Action profile members and selector groups, validated as a P4Runtime server does.

Each member gets a bmv2 member handle when inserted; a group's members are kept sorted by handle,
because bmv2 picks `members[hash % n]` in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.proto import code_pb2, p4runtime

from .errors import P4RuntimeError
from .handles import HandleAllocator
from .journal import Journal
from .p4info_index import ProfileInfo

__all__ = ["Group", "Member", "ProfileStore"]

INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT


@dataclass(slots=True)
class Member:
    id: int
    handle: int
    action_id: int
    args: tuple[int, ...]
    proto: Any
    groups: set[int] = field(default_factory=set)
    table_refs: int = 0


@dataclass(slots=True)
class Group:
    id: int
    max_size: int
    member_ids: list[int]
    proto: Any
    ordered: list[Member] = field(default_factory=list)  # by bmv2 member handle
    table_refs: int = 0


class ProfileStore:
    """The members and groups of one action profile or action selector."""

    def __init__(self, info: ProfileInfo, journal: Journal | None = None) -> None:
        self.info = info
        self.members: dict[int, Member] = {}
        self.groups: dict[int, Group] = {}
        self._journal = journal = journal or Journal()
        self._handles = HandleAllocator(journal)

    def _what(self, kind: str, ident: int) -> str:
        return f"action profile {self.info.name!r} {kind} {ident}"

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
            self._journal.record(lambda: self.members.__setitem__(mid, gone))
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
            self.members[mid] = Member(mid, self._handles.allocate(), action[0], action[1], _copy(msg))
            self._journal.record(lambda: self.members.__delitem__(mid))
            return
        found = self.members.get(mid)
        if found is None:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what} does not exist")
        old = (found.action_id, found.args, found.proto)
        found.action_id, found.args = action
        found.proto = _copy(msg)
        self._journal.record(lambda: _restore_member(found, old))

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
            gone, old_ids = group, group.member_ids
            self._set_members(gone, [])
            del self.groups[gid]
            self._journal.record(lambda: self._restore_group(gone, old_ids, gone.proto))
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
        ids: list[int] = []
        for m in msg.members:
            if m.member_id in ids:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: member {m.member_id} listed twice")
            if m.weight == 0:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: member {m.member_id} has weight 0")
            if m.weight != 1:
                raise P4RuntimeError(
                    code_pb2.UNIMPLEMENTED, f"{what}: member {m.member_id} weight {m.weight} (bmv2 has none)"
                )
            if m.HasField("watch") or m.HasField("watch_port"):
                raise P4RuntimeError(code_pb2.UNIMPLEMENTED, f"{what}: member {m.member_id}: watch ports")
            if m.member_id not in self.members:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{what}: member {m.member_id} does not exist")
            ids.append(m.member_id)
        capacity = msg.max_size or limit
        if capacity and len(ids) > capacity:
            raise P4RuntimeError(
                code_pb2.RESOURCE_EXHAUSTED, f"{what}: {len(ids)} members exceed max_size {capacity}"
            )
        group = existing or Group(gid, msg.max_size, [], None)
        old_ids, old_proto = group.member_ids, group.proto
        group.proto = _copy(msg)
        self._set_members(group, ids)
        self.groups[gid] = group
        if existing is None:
            self._journal.record(lambda: self._drop_group(group))
        else:
            self._journal.record(lambda: self._restore_group(group, old_ids, old_proto))

    def _restore_group(self, group: Group, ids: list[int], proto: Any) -> None:
        group.proto = proto
        self._set_members(group, ids)
        self.groups[group.id] = group

    def _drop_group(self, group: Group) -> None:
        self._set_members(group, [])
        del self.groups[group.id]

    def _set_members(self, group: Group, ids: list[int]) -> None:
        for mid in group.member_ids:
            self.members[mid].groups.discard(group.id)
        for mid in ids:
            self.members[mid].groups.add(group.id)
        group.member_ids = ids
        group.ordered = sorted((self.members[mid] for mid in ids), key=lambda m: m.handle)


def _restore_member(member: Member, old: tuple[int, tuple[int, ...], Any]) -> None:
    member.action_id, member.args, member.proto = old


def _copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out
