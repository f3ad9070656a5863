"""All-or-none batches on top of the simulator's per-update `TargetState.apply`.

ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC (spec §"Batch Atomicity") need the state before the batch
back when an update fails. `TargetState` has no snapshot, and a deep copy of a 100k-entry state
per batch would cost more than the batch, so this keeps an undo log instead: before each update
the entity it touches is read, and after it succeeds its inverse (DELETE for INSERT, INSERT of the
old entity for DELETE, MODIFY back to the old entity for MODIFY) is recorded. Rolling back applies
the inverses in reverse order, which also returns freed bmv2 handles to the allocator in order.
"""

from __future__ import annotations

from typing import Any

from compiler.proto import code_pb2
from compiler.proto import p4runtime as p4r
from compiler.sim.errors import P4RuntimeError
from compiler.sim.state import TargetState

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
UNDOABLE = ("table_entry", "action_profile_member", "action_profile_group")


def _key_filter(entity: Any) -> Any:
    """A read filter naming exactly the entity an update addresses (its key, spec §11)."""
    which = entity.WhichOneof("entity")
    out = p4r.Entity()
    if which == "table_entry":
        src = entity.table_entry
        te = out.table_entry
        te.table_id = src.table_id
        if src.is_default_action:
            te.is_default_action = True
        else:
            te.match.extend(src.match)
            te.priority = src.priority
    elif which == "action_profile_member":
        src = entity.action_profile_member
        out.action_profile_member.action_profile_id = src.action_profile_id
        out.action_profile_member.member_id = src.member_id
    elif which == "action_profile_group":
        src = entity.action_profile_group
        out.action_profile_group.action_profile_id = src.action_profile_id
        out.action_profile_group.group_id = src.group_id
    return out


def _is_wildcard(filt: Any) -> bool:
    which = filt.WhichOneof("entity")
    if which == "table_entry":
        te = filt.table_entry
        return bool(te.table_id == 0 or (not te.is_default_action and len(te.match) == 0))
    if which == "action_profile_member":
        return bool(filt.action_profile_member.member_id == 0)
    return bool(filt.action_profile_group.group_id == 0)


class Transaction:
    """Apply updates to `state`, remembering how to undo them until `rollback()` or the end."""

    def __init__(self, state: TargetState) -> None:
        self.state = state
        self._undo: list[Any] = []

    @staticmethod
    def supports(update: Any) -> bool:
        return update.entity.WhichOneof("entity") in UNDOABLE

    def apply(self, update: Any) -> None:
        """Like `TargetState.apply`: raises P4RuntimeError and changes nothing on failure."""
        if not self.supports(update):
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, "only table entries and profiles roll back")
        kind = update.type
        # An INSERT's inverse is a DELETE by key: no need to read what was there (nothing was).
        before = None if kind == INSERT else self._read_before(update.entity)
        self.state.apply(update)
        if kind == INSERT:
            inverse = p4r.Update(type=DELETE, entity=_key_filter(update.entity))
        elif before is None:  # unreachable: MODIFY and DELETE of an absent entity raised NOT_FOUND
            raise P4RuntimeError(code_pb2.INTERNAL, "no prior entity to restore")
        else:
            inverse = p4r.Update(type=INSERT if kind == DELETE else MODIFY, entity=before)
        self._undo.append(inverse)

    def _read_before(self, entity: Any) -> Any | None:
        filt = _key_filter(entity)
        if _is_wildcard(filt):
            return None
        try:
            found = self.state.read(filt)
        except P4RuntimeError:
            return None  # a malformed key: apply() will reject the update with the right code
        if not found:
            return None
        snap = p4r.Entity()
        snap.CopyFrom(found[0])
        return snap

    def rollback(self) -> None:
        """Undo every applied update, newest first. A failing inverse is a bug in the target."""
        while self._undo:
            inverse = self._undo.pop()
            try:
                self.state.apply(inverse)
            except P4RuntimeError as err:  # pragma: no cover - would mean state.apply is not atomic
                raise RuntimeError(f"rollback failed: {err}") from err

    def commit(self) -> None:
        self._undo.clear()
