"""ORTC (k8s_offload/compiler/passes/ortc.py): same LPM function, never more entries, and the counts the docs
promise (an `except` hole is two entries; one port range at most 16 nested blocks)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.passes.cidr import subtract
from k8s_offload.compiler.passes.ortc import DONT_CARE, MISS, Prefix, blocks, compress, lookup

WIDTH = 8


@st.composite
def tables(draw: st.DrawFn) -> list[Prefix]:
    out: dict[tuple[int, int], int] = {}
    for _ in range(draw(st.integers(0, 14))):
        plen = draw(st.integers(0, WIDTH))
        value = draw(st.integers(0, 255)) & ~((1 << (WIDTH - plen)) - 1)
        out[(value, plen)] = draw(st.integers(MISS, 3))
    return [(v, p, lab) for (v, p), lab in out.items()]


@settings(max_examples=400)
@given(tables())
def test_same_function_never_more_entries(table: list[Prefix]) -> None:
    small = compress(table, WIDTH)
    assert [lookup(small, WIDTH, a) for a in range(256)] == [lookup(table, WIDTH, a) for a in range(256)]
    assert len(small) <= len(table)


@settings(max_examples=400)
@given(
    tables(), st.lists(st.integers(0, 255), max_size=8), st.lists(st.integers(WIDTH - 2, WIDTH), max_size=8)
)
def test_dont_care_hosts(table: list[Prefix], hosts: list[int], lengths: list[int]) -> None:
    """Prefixes marked DONT_CARE (what the exact host table answers first): the compressed table
    agrees with the input on every other address, has no entry of its own for them, and is never
    larger than compressing without them or with them given any one label: ORTC with a leaf
    allowed every label is still its own optimum."""
    cared = {(v, p): lab for v, p, lab in table}
    for host, plen in zip(hosts, lengths, strict=False):
        cared[(host >> (WIDTH - plen) << (WIDTH - plen), plen)] = DONT_CARE
    marked = [(v, p, lab) for (v, p), lab in cared.items()]
    small = compress(sorted(marked), WIDTH)
    assert DONT_CARE not in {lab for _, _, lab in small}
    for a in range(256):
        want = lookup(marked, WIDTH, a)
        if want != DONT_CARE:
            assert lookup(small, WIDTH, a) == want, a
    rest = sorted((v, p, lab) for v, p, lab in marked if lab != DONT_CARE)
    assert len(small) <= len(compress(rest, WIDTH))
    for label in (MISS, 0, 1, 2, 3):
        filled = sorted((v, p, label if lab == DONT_CARE else lab) for v, p, lab in marked)
        assert len(small) <= len(compress(filled, WIDTH))


def test_except_hole_is_two_entries() -> None:
    n = ipaddress.ip_network
    parts = subtract(n("192.168.0.0/16"), [n("192.168.10.0/24")])
    assert len(parts) == 8
    small = compress([(int(p.network_address), p.prefixlen, 5) for p in parts], 32)
    assert small == [(int(n("192.168.0.0/16").network_address), 16, 5), (0xC0A80A00, 24, MISS)]


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_one_port_range_needs_at_most_16(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    small = compress([(v, p, 1) for v, p in blocks(low, high, 16)], 16)
    assert len(small) <= 16
    for port in {0, low - 1, low, high, high + 1, 65535, (low + high) // 2}:
        if 0 <= port <= 65535:
            assert lookup(small, 16, port) == (1 if low <= port <= high else MISS)


def test_blocks_are_aligned_and_cover() -> None:
    assert blocks(8000, 8099, 16) == [(8000, 10), (8064, 11), (8096, 14)]
    assert blocks(0, 65535, 16) == [(0, 0)]
    assert len(blocks(1, 65534, 16)) == 30
