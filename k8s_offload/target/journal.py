"""Undo log behind `TargetState.begin/commit/rollback`: all-or-none batches, exact to the handle.

While a transaction is open every mutation of tables, profiles, handle allocators, counters and
registers records how to undo itself; `rollback` runs those in reverse. Restoring the very objects
(entries, members, groups) with their handles, and the allocators' free lists, leaves the state as
it was, including bmv2's order of group members and of equal-priority entries. Outside a
transaction recording costs one attribute test.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Journal"]


class Journal:
    __slots__ = ("_undo",)

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] | None = None

    @property
    def active(self) -> bool:
        return self._undo is not None

    def record(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def begin(self) -> None:
        if self._undo is not None:
            raise RuntimeError("a transaction is already open")
        self._undo = []

    def commit(self) -> None:
        if self._undo is None:
            raise RuntimeError("no transaction is open")
        self._undo = None

    def rollback(self) -> None:
        undo = self._undo
        if undo is None:
            raise RuntimeError("no transaction is open")
        self._undo = None
        for fn in reversed(undo):
            fn()
