"""What generated code calls at packet time: the per-packet context, control-flow exceptions and
the bit helpers that are too awkward to inline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context", "ExitPipeline", "ParserError", "TableEvent", "pack_valid", "shl", "sign"]


@dataclass(frozen=True, slots=True)
class TableEvent:
    """One table application: hit or miss, the matched entry's key/priority, the action that ran."""

    table: str
    hit: bool
    action: str
    args: tuple[int, ...]
    key: tuple[Any, ...] | None = None
    priority: int = 0
    member_id: int = 0
    group_id: int = 0


@dataclass(slots=True)
class Context:
    """Per-packet mutable state that is not a P4 field (input bytes, parse position, trace)."""

    data: bytes
    pos: int = 0
    ingress_len: int = 0
    states: list[str] = field(default_factory=list)
    tables: list[TableEvent] = field(default_factory=list)
    counts: list[tuple[str, int]] = field(default_factory=list)
    out: list[bytes] = field(default_factory=list)
    drop_site: str = ""
    truncate_len: int | None = None
    """v1model `truncate(length)`: the smallest length asked for, None when never called."""

    def payload(self) -> bytes:
        """The unparsed bytes as bmv2 sees them: its `Packet::get_data_size()` already applies the
        truncation length, so a `_with_payload` checksum counts at most `truncate_len` of them."""
        if self.truncate_len is None:
            return self.data[self.pos :]
        return self.data[self.pos : self.pos + self.truncate_len]


class ParserError(Exception):
    """A parser error (PacketTooShort, NoMatch, ...): bmv2 stops parsing and goes on to ingress."""


class ExitPipeline(Exception):
    """P4 `exit`: leave the current pipeline block (ingress or egress)."""


def shl(value: int, amount: int, width: int) -> int:
    """`value << amount` at `width` bits without building huge ints for big shift amounts."""
    return 0 if amount >= width else (value << amount) & ((1 << width) - 1)


def sign(value: int, width: int) -> int:
    """Two's-complement reading of a `width`-bit pattern (for int<W> comparisons and shifts)."""
    return value - (1 << width) if value >> (width - 1) else value


def pack_valid(items: Iterable[tuple[int, int, bool]]) -> bytes:
    """bmv2 field-list packing when some fields belong to headers: invalid headers' fields are skipped."""
    acc = 0
    nbits = 0
    for value, width, valid in items:
        if valid:
            acc = (acc << width) | value
            nbits += width
    pad = -nbits % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")
