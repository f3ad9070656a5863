"""`stable_ids` kept up to date one identity at a time.

`stable_ids` is linear probing in sorted identity order. In its result the occupied slots form runs
separated by free slots, and each run is exactly what its own identities, placed alone in sorted
order, would produce (an identity only probes forward through its run). So a change re-places
only the run it touches, merged with a following run when a placement probes into it. The result
always equals `stable_ids` over the current identities (a property test checks it).
"""

from __future__ import annotations

import zlib


class IdSpace:
    def __init__(self, bits: int) -> None:
        self.space = (1 << bits) - 1
        self.ids: dict[str, int] = {}
        self._slot: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

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
