"""Stable ids: derived from what an object is, not from how many came before it.

Adding a Service must not renumber the others (golden files and device diffs stay small), so an
id is a hash of the object's identity, with linear probing on collision, allocating in sorted
identity order. An id moves only when a newly added identity collides with it and sorts before it:
with n ids in a space of 2^b the chance per addition is about n / 2^b.

`IdSpace` is that allocation with two ways in, one result: `update` on an empty space places
every identity in one sorted pass (`build`); on a populated one it re-places only the run of
occupied slots a change touches. In the result the occupied slots form runs separated by free
slots, and each run is exactly what its own identities, placed alone in sorted order, would give
(an identity only probes forward through its run), so a change merged with a following run when a
placement probes into it gives the same ids as placing everything again (a property test checks
it). `IdAllocator` is the engine table (docs/engine.md) that keeps one `IdSpace` for the
identities a source table's values name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any


def stable_ids(identities: Iterable[str], bits: int) -> dict[str, int]:
    """Map each identity to a distinct non-zero id of at most `bits` bits (0 means "none")."""
    space = IdSpace(bits)
    space.build(identities)
    return space.ids


class IdSpace:
    def __init__(self, bits: int) -> None:
        self.space = (1 << bits) - 1
        self.ids: dict[str, int] = {}
        self._slot: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, identities: Iterable[str]) -> None:
        """Place every identity of an empty space, in sorted order."""
        assert not self.ids, "build places identities in an empty space"
        wanted = sorted(set(identities))
        if len(wanted) > self.space:
            raise ValueError(f"{len(wanted)} ids do not fit in {self.space.bit_length()} bits")
        slots = self._slot
        ids = self.ids
        space = self.space
        crc = zlib.crc32
        for ident in wanted:
            candidate = crc(ident.encode()) % space + 1
            while candidate in slots:
                candidate = candidate % space + 1
            slots[candidate] = ident
            ids[ident] = candidate

    def update(self, added: Iterable[str], removed: Iterable[str]) -> set[str]:
        """Remove and add identities; returns those whose id changed (added and removed included)."""
        removed = set(removed)
        if not self.ids and not removed:
            added = set(added)
            self.build(added)
            return added
        changed = set(removed)
        for ident in removed:
            changed |= self.remove(ident)
        for ident in added:
            changed |= self.add(ident)
        return changed

    def _home(self, ident: str) -> int:
        return zlib.crc32(ident.encode()) % self.space + 1

    def _next(self, slot: int) -> int:
        return slot % self.space + 1

    def _prev(self, slot: int) -> int:
        return (slot - 2) % self.space + 1

    def _run(self, slot: int) -> set[str]:
        """Identities in the run of occupied slots containing `slot` (empty when it is free)."""
        if slot not in self._slot:
            return set()
        start = slot
        while self._prev(start) in self._slot and self._prev(start) != slot:
            start = self._prev(start)
        out: set[str] = set()
        s = start
        while s in self._slot and self._slot[s] not in out:
            out.add(self._slot[s])
            s = self._next(s)
        return out

    def add(self, ident: str) -> set[str]:
        """Add one identity; returns the identities whose id changed (it included)."""
        if ident in self.ids:
            return set()
        if len(self.ids) >= self.space:
            raise ValueError(f"{len(self.ids) + 1} ids do not fit in {self.space.bit_length()} bits")
        return self._replace({ident} | self._run(self._home(ident)))

    def remove(self, ident: str) -> set[str]:
        """Remove one identity; returns the other identities whose id changed."""
        slot = self.ids.get(ident)
        if slot is None:
            return set()
        group = self._run(slot)
        group.discard(ident)
        del self.ids[ident]
        del self._slot[slot]
        return self._replace(group)

    def _replace(self, group: set[str]) -> set[str]:
        before = {i: self.ids.get(i) for i in group}
        while True:
            for i in group:
                if i in self.ids:
                    del self._slot[self.ids.pop(i)]
            placed: dict[int, str] = {}
            outsider: int | None = None
            for i in sorted(group):
                slot = self._home(i)
                while slot in placed or slot in self._slot:
                    if slot in self._slot:
                        outsider = slot
                        break
                    slot = self._next(slot)
                if outsider is not None:
                    break
                placed[slot] = i
            if outsider is None:
                break
            # The group's run grew into the next one: put the group back and re-place both together.
            for i, old in before.items():
                if old is not None:
                    self.ids[i] = old
                    self._slot[old] = i
            group = group | self._run(outsider)
            before.update({i: self.ids.get(i) for i in group if i not in before})
        for slot, i in placed.items():
            self.ids[i] = slot
            self._slot[slot] = i
        return {i for i in group if before.get(i) != self.ids.get(i)}


class IdAllocator:
    """An engine table of ids (`Stateful`): `idents(value)` names the identities one value of the
    source table wants (None: the source's keys are the identities, e.g. an index's groups), and
    `get(identity)` is its id, plus `offset`. Readers of an identity run when its id changes."""

    def __init__(
        self, bits: int, idents: Callable[[Any], Iterable[str]] | None = None, offset: int = 0
    ) -> None:
        self.space = IdSpace(bits)
        self.idents = idents
        self.offset = offset
        self.refs: dict[str, int] = {}

    def _of(self, key: Hashable, value: Any) -> Iterable[str]:
        if value is None:
            return ()
        return (key,) if self.idents is None else self.idents(value)  # type: ignore[return-value]

    def update(self, changes: Mapping[Hashable, tuple[Any, Any]]) -> Iterable[tuple[Hashable, Any, Any]]:
        refs = self.refs
        gone: set[str] = set()
        new: set[str] = set()
        for key, (old, value) in changes.items():
            for ident in self._of(key, old):
                n = refs[ident] - 1
                if n:
                    refs[ident] = n
                else:
                    del refs[ident]
                    gone.add(ident)
            for ident in self._of(key, value):
                n = refs.get(ident, 0)
                refs[ident] = n + 1
                if not n:
                    new.add(ident)
        both = gone & new
        return ((ident, None, None) for ident in self.space.update(new - both, gone - both))

    def get(self, ident: Hashable) -> int | None:
        found = self.space.ids.get(ident)  # type: ignore[call-overload]
        return None if found is None else found + self.offset
