"""Match engines: how a table finds the entry for a lookup key, bmv2 semantics.

Keys are tuples of ints in P4Info key order. An entry's key holds, per field: exact -> value;
lpm -> (value, prefix_len); ternary and optional -> (value, mask); range -> (low, high).

* all-exact tables: one dict lookup;
* exact fields plus one lpm field: one dict per prefix length, tried longest first;
* anything with ternary, range or optional: entries bucketed by their exact fields, then scanned
  in priority order. bmv2 keeps the first entry of highest priority in handle order, so equal
  priorities resolve to the lowest entry handle (handles are allocated lowest free first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from k8s_offload.target.p4info_index import EXACT, LPM, RANGE, KeyField

__all__ = ["Entry", "ExactEngine", "LpmEngine", "MatchEngine", "PriorityEngine", "make_engine"]

KeyPart = Any  # int | tuple[int, int]; see the module docstring


@dataclass(slots=True, eq=False)
class Entry:
    """A stored table entry: identity (key, priority), bmv2 handle, what it does, and the TableEntry
    a read answers, serialized (bytes: compact, and outside the cyclic collector's walks)."""

    key: tuple[KeyPart, ...]
    priority: int
    handle: int
    action_id: int = 0
    args: tuple[int, ...] = ()
    member_id: int = 0
    group_id: int = 0
    raw: bytes = b""
    checks: tuple[tuple[int, int, int, int], ...] = field(default=())


class MatchEngine:
    """Common interface; subclasses index entries for their key shape."""

    def __init__(self, keys: tuple[KeyField, ...]) -> None:
        self.keys = keys
        self.count = 0

    def add(self, entry: Entry) -> None:
        raise NotImplementedError

    def remove(self, entry: Entry) -> None:
        raise NotImplementedError

    def find(self, key: tuple[KeyPart, ...], priority: int) -> Entry | None:
        """The entry with exactly this identity (for MODIFY/DELETE and duplicate checks)."""
        raise NotImplementedError

    def lookup(self, values: tuple[int, ...]) -> Entry | None:
        """The entry a packet with these key values hits, or None on a miss."""
        raise NotImplementedError

    def entries(self) -> Iterator[Entry]:
        raise NotImplementedError


class ExactEngine(MatchEngine):
    def __init__(self, keys: tuple[KeyField, ...]) -> None:
        super().__init__(keys)
        self.table: dict[tuple[int, ...], Entry] = {}

    def add(self, entry: Entry) -> None:
        self.table[entry.key] = entry
        self.count += 1

    def remove(self, entry: Entry) -> None:
        del self.table[entry.key]
        self.count -= 1

    def find(self, key: tuple[KeyPart, ...], priority: int) -> Entry | None:
        return self.table.get(key)

    def lookup(self, values: tuple[int, ...]) -> Entry | None:
        return self.table.get(values)

    def entries(self) -> Iterator[Entry]:
        return iter(list(self.table.values()))


class LpmEngine(MatchEngine):
    """Exact fields plus one lpm field, indexed by (exact values, masked lpm value) per prefix length."""

    def __init__(self, keys: tuple[KeyField, ...]) -> None:
        super().__init__(keys)
        self.pos = next(i for i, k in enumerate(keys) if k.kind == LPM)
        width = keys[self.pos].bitwidth
        full = (1 << width) - 1
        self.masks = [full ^ ((1 << (width - plen)) - 1) for plen in range(width + 1)]
        self.by_len: dict[int, dict[tuple[int, ...], Entry]] = {}
        self.lengths: list[tuple[int, dict[tuple[int, ...], Entry]]] = []  # longest first

    def _index(self, key: tuple[KeyPart, ...]) -> tuple[int, tuple[int, ...]]:
        value, plen = key[self.pos]
        flat = list(key)
        flat[self.pos] = value
        return plen, tuple(flat)

    def add(self, entry: Entry) -> None:
        plen, flat = self._index(entry.key)
        if plen not in self.by_len:
            self.by_len[plen] = {}
            self.lengths = sorted(self.by_len.items(), key=lambda item: -item[0])
        self.by_len[plen][flat] = entry
        self.count += 1

    def remove(self, entry: Entry) -> None:
        plen, flat = self._index(entry.key)
        bucket = self.by_len[plen]
        del bucket[flat]
        if not bucket:
            del self.by_len[plen]
            self.lengths = sorted(self.by_len.items(), key=lambda item: -item[0])
        self.count -= 1

    def find(self, key: tuple[KeyPart, ...], priority: int) -> Entry | None:
        plen, flat = self._index(key)
        bucket = self.by_len.get(plen)
        return bucket.get(flat) if bucket else None

    def lookup(self, values: tuple[int, ...]) -> Entry | None:
        pos = self.pos
        value = values[pos]
        masks = self.masks
        if len(values) == 1:
            for plen, bucket in self.lengths:
                hit = bucket.get((value & masks[plen],))
                if hit is not None:
                    return hit
            return None
        head, tail = values[:pos], values[pos + 1 :]
        for plen, bucket in self.lengths:
            hit = bucket.get((*head, value & masks[plen], *tail))
            if hit is not None:
                return hit
        return None

    def entries(self) -> Iterator[Entry]:
        return iter([e for _, bucket in self.lengths for e in bucket.values()])


class PriorityEngine(MatchEngine):
    """Ternary/range/optional (and lpm mixed with them): exact-field buckets scanned by priority."""

    def __init__(self, keys: tuple[KeyField, ...]) -> None:
        super().__init__(keys)
        self.exact_pos = tuple(i for i, k in enumerate(keys) if k.kind == EXACT)
        self.buckets: dict[tuple[int, ...], list[Entry]] = {}
        self.ids: dict[tuple[tuple[KeyPart, ...], int], Entry] = {}

    def _checks(self, entry: Entry) -> tuple[tuple[int, int, int, int], ...]:
        """(position, is_range, a, b): range low/high, or mask/value for the masked kinds."""
        out = []
        for i, (spec, kf) in enumerate(zip(entry.key, self.keys, strict=True)):
            if kf.kind == EXACT:
                continue
            a, b = spec
            if kf.kind == RANGE:
                out.append((i, 1, a, b))
            elif kf.kind == LPM:
                mask = ((1 << kf.bitwidth) - 1) ^ ((1 << (kf.bitwidth - b)) - 1)
                out.append((i, 0, mask, a))
            else:
                out.append((i, 0, b, a))
        return tuple(out)

    def add(self, entry: Entry) -> None:
        entry.checks = self._checks(entry)
        bucket = self.buckets.setdefault(tuple(entry.key[i] for i in self.exact_pos), [])
        bucket.append(entry)
        bucket.sort(key=lambda e: (-e.priority, e.handle))
        self.ids[(entry.key, entry.priority)] = entry
        self.count += 1

    def remove(self, entry: Entry) -> None:
        exact = tuple(entry.key[i] for i in self.exact_pos)
        bucket = self.buckets[exact]
        bucket.remove(entry)
        if not bucket:
            del self.buckets[exact]
        del self.ids[(entry.key, entry.priority)]
        self.count -= 1

    def find(self, key: tuple[KeyPart, ...], priority: int) -> Entry | None:
        return self.ids.get((key, priority))

    def lookup(self, values: tuple[int, ...]) -> Entry | None:
        bucket = self.buckets.get(tuple(values[i] for i in self.exact_pos))
        if not bucket:
            return None
        for entry in bucket:
            for pos, is_range, a, b in entry.checks:
                v = values[pos]
                if (v < a or v > b) if is_range else (v & a) != b:
                    break
            else:
                return entry
        return None

    def entries(self) -> Iterator[Entry]:
        return iter(list(self.ids.values()))


def make_engine(keys: tuple[KeyField, ...]) -> MatchEngine:
    """The fastest engine that is exact for this key shape."""
    kinds = [k.kind for k in keys]
    if all(k == EXACT for k in kinds):
        return ExactEngine(keys)
    if kinds.count(LPM) == 1 and all(k in (EXACT, LPM) for k in kinds):
        return LpmEngine(keys)
    return PriorityEngine(keys)
