"""bmv2's handle manager: the lowest free handle is allocated first.

Handles decide order inside bmv2 (member order in a selector group, tie-breaks between equal
priority entries), so reproducing their allocation is what makes our choices bmv2-exact. Inside a
transaction (`journal`) every allocation and release can be undone exactly.
"""

from __future__ import annotations

import heapq

from k8s_offload.target.journal import Journal

__all__ = ["HandleAllocator"]


class HandleAllocator:
    def __init__(self, journal: Journal | None = None) -> None:
        self._next = 0
        self._freed: list[int] = []
        self._journal = journal or Journal()

    def allocate(self) -> int:
        if self._freed:
            handle = heapq.heappop(self._freed)
            if self._journal.active:
                self._journal.record(heapq.heappush, self._freed, handle)
            return handle
        handle = self._next
        self._next += 1
        if self._journal.active:
            self._journal.record(self._unallocate_next)
        return handle

    def _unallocate_next(self) -> None:
        self._next -= 1

    def release(self, handle: int) -> None:
        heapq.heappush(self._freed, handle)
        if self._journal.active:
            self._journal.record(self._unrelease, handle)

    def _unrelease(self, handle: int) -> None:
        self._freed.remove(handle)
        heapq.heapify(self._freed)
