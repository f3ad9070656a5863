"""The hash algorithms of bmv2's v1model, bit-exact, and the field packing they hash over.

bmv2 concatenates the fields of a field list bit by bit, most significant bit first, starting at
bit 0 of a zeroed buffer of ceil(bits / 8) bytes (so a ragged total is padded with zero bits at the
end), skipping fields of invalid headers; `_with_payload` appends the unparsed payload. Each
algorithm maps those bytes to an unsigned integer (bmv2 holds it in 64 bits).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "CrcParams",
    "HashFn",
    "crc16",
    "crc32",
    "crc_custom",
    "csum16",
    "identity",
    "pack_bits",
    "xor16",
]

HashFn = Callable[[bytes], int]


def pack_bits(fields: Iterable[tuple[int, int]]) -> bytes:
    """(value, width) pairs concatenated MSB first into bytes, zero bits padding the tail."""
    acc = 0
    nbits = 0
    for value, width in fields:
        acc = (acc << width) | value
        nbits += width
    pad = -nbits % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")


def _reflect(value: int, nbits: int) -> int:
    out = 0
    for _ in range(nbits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


_REFLECT8 = tuple(_reflect(b, 8) for b in range(256))


@dataclass(frozen=True, slots=True)
class CrcParams:
    """A CRC as bmv2's crc*_custom configures it (same five knobs as its runtime CLI)."""

    width: int
    polynomial: int
    initial: int
    final_xor: int
    data_reflected: bool
    remainder_reflected: bool


def crc_custom(params: CrcParams) -> HashFn:
    """A table-driven CRC computing exactly what bmv2's `crc_custom<T>` computes for `params`."""
    width = params.width
    mask = (1 << width) - 1
    top = 1 << (width - 1)
    table = []
    for dividend in range(256):
        rem = dividend << (width - 8)
        for _ in range(8):
            rem = ((rem << 1) ^ params.polynomial) if rem & top else (rem << 1)
        table.append(rem & mask)
    shift = width - 8
    refl = _REFLECT8 if params.data_reflected else tuple(range(256))

    def crc(data: bytes) -> int:
        rem = params.initial
        for byte in data:
            rem = table[refl[byte] ^ (rem >> shift)] ^ ((rem << 8) & mask)
        if params.remainder_reflected:
            rem = _reflect(rem, width)
        return rem ^ params.final_xor

    return crc


CRC16_DEFAULT = CrcParams(16, 0x8005, 0x0000, 0x0000, True, True)
CRC32_DEFAULT = CrcParams(32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True)

# bmv2's fixed crc16 equals CRC-16/ARC; in reflected form it is the classic right-shifting table.
_CRC16_TABLE: list[int] = []
for _b in range(256):
    _c = _b
    for _ in range(8):
        _c = (_c >> 1) ^ 0xA001 if _c & 1 else _c >> 1
    _CRC16_TABLE.append(_c)


def crc16(data: bytes) -> int:
    """bmv2 `crc16`: poly 0x8005, reflected in and out, init 0, no final xor (CRC-16/ARC)."""
    crc = 0
    table = _CRC16_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc32(data: bytes) -> int:
    """bmv2 `crc32`: the standard (zlib/Ethernet) CRC-32."""
    return zlib.crc32(data)


def csum16(data: bytes) -> int:
    """bmv2 `csum16`: the Internet checksum (RFC 1071), odd length padded with a zero byte.

    Since 2**16 == 1 (mod 0xffff), the ones'-complement sum of the 16-bit words is the whole buffer
    as one integer mod 0xffff, except that a nonzero buffer folds to 0xffff rather than 0.
    """
    if len(data) & 1:
        data += b"\x00"
    number = int.from_bytes(data, "big")
    total = number % 0xFFFF
    if total == 0 and number:
        total = 0xFFFF
    return ~total & 0xFFFF


def identity(data: bytes) -> int:
    """bmv2 `identity`: the first (up to) eight bytes as a big-endian integer."""
    return int.from_bytes(data[:8], "big")


def xor16(data: bytes) -> int:
    """bmv2 `xor16`: xor of the big-endian 16-bit words, a last odd byte taken as the high byte."""
    if len(data) & 1:
        data += b"\x00"
    out = 0
    for i in range(0, len(data), 2):
        out ^= (data[i] << 8) | data[i + 1]
    return out


# v1model HashAlgorithm member -> function (bmv2's defaults for the configurable CRCs).
ALGORITHMS: dict[str, HashFn] = {
    "crc16": crc16,
    "crc32": crc32,
    "crc16_custom": crc_custom(CRC16_DEFAULT),
    "crc32_custom": crc_custom(CRC32_DEFAULT),
    "csum16": csum16,
    "identity": identity,
    "xor16": xor16,
}
