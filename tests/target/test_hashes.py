"""Hash and checksum algorithms against published check values and independent implementations."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from k8s_offload.target.hashes import (
    ALGORITHMS,
    CrcParams,
    crc16,
    crc32,
    crc_custom,
    csum16,
    identity,
    pack_bits,
    xor16,
)

CHECK = b"123456789"


def test_crc16_is_crc16_arc() -> None:
    """bmv2's crc16 (reflected 0x8005, init 0) is CRC-16/ARC, check value 0xBB3D."""
    assert crc16(CHECK) == 0xBB3D
    assert crc16(b"") == 0


def test_crc32_check_value() -> None:
    assert crc32(CHECK) == 0xCBF43926


def test_custom_crcs_default_to_the_fixed_ones() -> None:
    """bmv2's crc16_custom/crc32_custom start with the parameters of crc16/crc32."""
    assert ALGORITHMS["crc16_custom"](CHECK) == 0xBB3D
    assert ALGORITHMS["crc32_custom"](CHECK) == 0xCBF43926


def test_crc_custom_unreflected_variants() -> None:
    """CRC-16/XMODEM (0x31C3) and CRC-32/BZIP2 (0xFC891918): unreflected check values."""
    assert crc_custom(CrcParams(16, 0x1021, 0, 0, False, False))(CHECK) == 0x31C3
    assert crc_custom(CrcParams(32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, False, False))(CHECK) == 0xFC891918
    assert crc_custom(CrcParams(8, 0x07, 0, 0, False, False))(CHECK) == 0xF4  # CRC-8/SMBUS


@given(st.binary(max_size=64))
def test_crc_variants_agree(data: bytes) -> None:
    assert crc32(data) == zlib.crc32(data)
    assert crc16(data) == ALGORITHMS["crc16_custom"](data)


@given(st.binary(max_size=80))
def test_csum16_matches_scapy(data: bytes) -> None:
    """Internet checksum: scapy's `checksum` is an independent implementation of RFC 1071."""
    assert csum16(data) == scapy_checksum(data)


def test_csum16_edge_cases() -> None:
    assert csum16(b"") == 0xFFFF
    assert csum16(b"\xff\xff") == 0x0000  # ones'-complement sum 0xffff, not 0
    assert csum16(b"\x01") == 0xFEFF  # odd byte is the high byte of a zero-padded word


def test_identity_and_xor16() -> None:
    assert identity(b"\x01\x02") == 0x0102
    assert identity(bytes(range(1, 11))) == 0x0102030405060708
    assert xor16(b"\x12\x34\x56\x78\x9a") == 0x1234 ^ 0x5678 ^ 0x9A00


def test_pack_bits_left_aligns_ragged_totals() -> None:
    """bmv2 writes fields MSB first from bit 0 of the buffer; a ragged tail is zero padded."""
    assert pack_bits([(1, 1), (0x7F, 7), (5, 4)]) == b"\xff\x50"
    assert pack_bits([(6, 8), (0xABCD, 16)]) == b"\x06\xab\xcd"
