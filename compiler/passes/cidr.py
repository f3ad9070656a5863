"""Address-set arithmetic for ipBlock peers: subtraction of `except`s and aggregation.

Sets are canonicalised on integer intervals (sort, merge, split into maximal aligned blocks)
rather than with `ipaddress.collapse_addresses`, which is too slow for peer sets of 100k pods.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable

from compiler.frontend.model import IPAddress, IPNetwork
from compiler.ir.rules import AddressSet


def host_network(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(address)


def subtract(cidr: IPNetwork, excepts: Iterable[IPNetwork]) -> list[IPNetwork]:
    """cidr minus every except, as disjoint networks (excepts lie inside cidr: validated earlier)."""
    parts: list[IPNetwork] = [cidr]
    for ex in excepts:
        nxt: list[IPNetwork] = []
        for part in parts:
            if part.version != ex.version or not part.overlaps(ex):
                nxt.append(part)
            elif ex.supernet_of(part):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(part.address_exclude(ex))  # type: ignore[arg-type]
        parts = nxt
    return parts


IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
"""Where the pipeline keeps IPv4 addresses (p4src/README.md): an IPv6 peer must never cover it,
or an IPv6 ipBlock such as ::/0 would also match every IPv4 address."""

_MAPPED_LO = int(IPV4_MAPPED.network_address)
_MAPPED_HI = int(IPV4_MAPPED.broadcast_address)


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent closed intervals covering the same addresses."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _blocks(lo: int, hi: int, bits: int) -> Iterable[tuple[int, int]]:
    """The fewest aligned blocks (start, prefix length) covering [lo, hi]."""
    while lo <= hi:
        size = (lo & -lo) if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        yield lo, bits - (size.bit_length() - 1)
        lo += size


def _networks(intervals: list[tuple[int, int]], version: int) -> list[IPNetwork]:
    bits = 32 if version == 4 else 128
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return [cls((start, plen)) for lo, hi in intervals for start, plen in _blocks(lo, hi, bits)]


def span(net: IPNetwork) -> tuple[int, int]:
    lo = int(net.network_address)
    return lo, lo + (1 << (net.max_prefixlen - net.prefixlen)) - 1


def address_set(networks: Iterable[IPNetwork], hosts: Iterable[IPAddress] = ()) -> AddressSet:
    """The canonical form of the networks and single addresses: per family collapsed (merging
    adjacent and nested), sorted; IPv6 networks exclude the IPv4-mapped range."""
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for n in networks:
        (v4 if n.version == 4 else v6).append(span(n))
    for a in hosts:
        value = int(a)
        (v4 if a.version == 4 else v6).append((value, value))
    return _canonical(v4, v6)


def _canonical(v4: list[tuple[int, int]], v6: list[tuple[int, int]]) -> AddressSet:
    merged6: list[tuple[int, int]] = []
    for lo, hi in _merge(v6):
        if hi < _MAPPED_LO or lo > _MAPPED_HI:
            merged6.append((lo, hi))
            continue
        if lo < _MAPPED_LO:
            merged6.append((lo, _MAPPED_LO - 1))
        if hi > _MAPPED_HI:
            merged6.append((_MAPPED_HI + 1, hi))
    return AddressSet((*_networks(_merge(v4), 4), *_networks(merged6, 6)))


def union(sets: Iterable[AddressSet]) -> AddressSet:
    return address_set(n for s in sets for n in s.networks)


class Membership:
    """Fast `address in set` for one address set: bisection over its intervals."""

    def __init__(self, aset: AddressSet) -> None:
        spans = {4: [span(n) for n in aset.networks if n.version == 4]}
        spans[6] = [span(n) for n in aset.networks if n.version == 6]
        self._starts = {v: [lo for lo, _ in s] for v, s in spans.items()}
        self._ends = {v: [hi for _, hi in s] for v, s in spans.items()}

    def __contains__(self, address: IPAddress) -> bool:
        value = int(address)
        i = bisect_right(self._starts[address.version], value) - 1
        return i >= 0 and value <= self._ends[address.version][i]


def contains(aset: AddressSet, address: IPAddress) -> bool:
    return address in Membership(aset)
