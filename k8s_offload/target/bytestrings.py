"""P4Runtime bytestrings <-> Python ints, with the server-side width checks.

The spec (section "Bytestrings") wants any zero-padded string whose value fits the bitwidth. PI, the
reference server in front of bmv2, accepts the canonical (shortest) form and forms padded up to the
full width, and answers INVALID_ARGUMENT for anything else; we follow PI because that is what a
client talking to bmv2 sees.
"""

from __future__ import annotations

from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.target.errors import P4RuntimeError

__all__ = ["canonical", "decode", "full_width"]


def decode(value: bytes, bitwidth: int, what: str) -> int:
    """The unsigned value of `value`, rejected if empty, longer than the width or out of range."""
    if not value:
        raise P4RuntimeError(code_pb2.INVALID_ARGUMENT, f"{what}: empty bytestring")
    nbytes = (bitwidth + 7) // 8
    if len(value) > nbytes:
        raise P4RuntimeError(
            code_pb2.INVALID_ARGUMENT,
            f"{what}: {len(value)} bytes is longer than the {nbytes} bytes of bit<{bitwidth}>",
        )
    number = int.from_bytes(value, "big")
    if number >> bitwidth:
        raise P4RuntimeError(
            code_pb2.INVALID_ARGUMENT, f"{what}: value 0x{number:x} does not fit in bit<{bitwidth}>"
        )
    return number


def canonical(number: int) -> bytes:
    """The shortest bytestring of `number` (one byte for zero), as a server returns on read."""
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def full_width(number: int, bitwidth: int) -> bytes:
    """`number` padded to the full byte width of `bitwidth`, for clients that want fixed sizes."""
    return number.to_bytes((bitwidth + 7) // 8, "big")
