"""bmv2's handle manager: the lowest free handle is allocated first.

Handles decide order inside bmv2 (member order in a selector group, tie-breaks between equal
priority entries), so reproducing their allocation is what makes our choices bmv2-exact.
"""

from __future__ import annotations

import heapq

__all__ = ["HandleAllocator"]


class HandleAllocator:
    def __init__(self) -> None:
        self._next = 0
        self._freed: list[int] = []

    def allocate(self) -> int:
        if self._freed:
            return heapq.heappop(self._freed)
        handle = self._next
        self._next += 1
        return handle

    def release(self, handle: int) -> None:
        heapq.heappush(self._freed, handle)
