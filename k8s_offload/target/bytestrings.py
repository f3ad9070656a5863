"""P4Runtime bytestrings <-> Python ints, with the server-side width checks.

Spec §"Bytestrings": the receiver puts no limit on a string's length, only on its value: any
zero-padded string whose value fits bit<W> is accepted (so `\x00\x00\x63` is 99 for bit<8>), and
an empty string or a value wider than W is rejected with OUT_OF_RANGE. Reads answer the canonical
(shortest) form.
"""

from __future__ import annotations

from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.target.errors import P4RuntimeError

__all__ = ["canonical", "decode", "full_width", "is_canonical", "value_of"]


def value_of(value: bytes, bitwidth: int) -> int | None:
    """The unsigned value of `value`, or None when `decode` would reject it."""
    if value:
        number = int.from_bytes(value, "big")
        if not number >> bitwidth:
            return number
    return None


def decode(value: bytes, bitwidth: int, what: str) -> int:
    """The unsigned value of `value`; OUT_OF_RANGE if empty or beyond bit<bitwidth>."""
    number = value_of(value, bitwidth)
    if number is not None:
        return number
    if not value:
        raise P4RuntimeError(code_pb2.OUT_OF_RANGE, f"{what}: empty bytestring")
    number = int.from_bytes(value, "big")
    shown = f"0x{number:x}" if number.bit_length() <= 256 else f"a {number.bit_length()}-bit value"
    raise P4RuntimeError(code_pb2.OUT_OF_RANGE, f"{what}: {shown} does not fit in bit<{bitwidth}>")


def is_canonical(value: bytes) -> bool:
    """Whether a (valid, non-empty) bytestring is already in the form `canonical` gives."""
    return len(value) == 1 or value[0] != 0


def canonical(number: int) -> bytes:
    """The shortest bytestring of `number` (one byte for zero), as a server returns on read."""
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def full_width(number: int, bitwidth: int) -> bytes:
    """`number` padded to the full byte width of `bitwidth`, for clients that want fixed sizes."""
    return number.to_bytes((bitwidth + 7) // 8, "big")
