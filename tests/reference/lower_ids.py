"""Stable ids: derived from what an object is, not from how many came before it.

Adding a Service must not renumber the others (golden files and device diffs stay small), so an
id is a hash of the object's identity, with linear probing on collision, allocating in sorted
identity order. An id moves only when a newly added identity collides with it and sorts before it:
with n ids in a space of 2^b the chance per addition is about n / 2^b.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def stable_ids(identities: Iterable[str], bits: int) -> dict[str, int]:
    """Map each identity to a distinct non-zero id of at most `bits` bits (0 means "none")."""
    space = (1 << bits) - 1
    wanted = sorted(set(identities))
    if len(wanted) > space:
        raise ValueError(f"{len(wanted)} ids do not fit in {bits} bits")
    taken: set[int] = set()
    out: dict[str, int] = {}
    for ident in wanted:
        candidate = zlib.crc32(ident.encode()) % space + 1
        while candidate in taken:
            candidate = candidate % space + 1
        taken.add(candidate)
        out[ident] = candidate
    return out
