"""Undo log behind `TargetState.begin/commit/rollback`: all-or-none batches, exact to the handle.

While a transaction is open every mutation of tables, profiles, handle allocators, counters and
registers records how to undo itself; `rollback` runs those in reverse. Restoring the very objects
(entries, members, groups) with their handles, and the allocators' free lists, leaves the state as
it was, including bmv2's order of group members and of equal-priority entries. Outside a
transaction recording costs one attribute test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Journal"]


class Journal:
    """Undo records as `undo, args` pairs in one flat list: a whole-plan batch records one or two
    per update, so a record is a function and an argument tuple, not a closure and its cells."""

    __slots__ = ("_undo",)

    def __init__(self) -> None:
        self._undo: list[Any] | None = None

    @property
    def active(self) -> bool:
        return self._undo is not None

    def record(self, undo: Callable[..., None], *args: Any) -> None:
        """On rollback, `undo(*args)`."""
        if self._undo is not None:
            self._undo.append(undo)
            self._undo.append(args)

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
        for i in range(len(undo) - 2, -1, -2):
            undo[i](*undo[i + 1])
