"""Address-set arithmetic for ipBlock peers: subtraction of `except`s and aggregation.

Sets are integer intervals per family (`AddressSet.v4`, `.v6`): building, merging and testing
them never creates `ipaddress` objects, which cost more than the rest of policy resolution for
peer sets of 100k pods. Networks are derived from the intervals only where they are needed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from itertools import compress, count
from operator import sub

from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork
from k8s_offload.compiler.ir.rules import AddressSet, Intervals, interval_blocks, merge_intervals


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
_V4 = ipaddress.IPv4Address


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent closed intervals covering the same addresses."""
    flat = merge_intervals(intervals)
    return list(zip(flat[0::2], flat[1::2], strict=True))


def _blocks(lo: int, hi: int, bits: int) -> Iterable[tuple[int, int]]:
    """The fewest aligned blocks (start, prefix length) covering [lo, hi]."""
    return interval_blocks((lo, hi), bits)


def span(net: IPNetwork) -> tuple[int, int]:
    lo = int(net.network_address)
    return lo, lo + (1 << (net.max_prefixlen - net.prefixlen)) - 1


def _with_points(spans: list[tuple[int, int]], points: list[int]) -> Intervals:
    """`merge_intervals` of the spans and the single addresses; a run of consecutive addresses
    becomes one interval without a tuple per address."""
    if not points:
        return merge_intervals(spans)
    points = sorted(set(points))
    # Runs end where the next address is not this one plus 1 (found without a Python loop).
    ends = list(compress(count(), map((1).__ne__, map(sub, points[1:], points))))
    runs = [(points[i + 1], points[j]) for i, j in zip([-1, *ends], [*ends, len(points) - 1], strict=True)]
    if not spans:
        return tuple(v for run in runs for v in run)
    return merge_intervals(runs + spans)


def address_set(networks: Iterable[IPNetwork], hosts: Iterable[IPAddress] = ()) -> AddressSet:
    """The canonical form of the networks and single addresses: per family collapsed (merging
    adjacent and nested), sorted; IPv6 networks exclude the IPv4-mapped range."""
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for n in networks:
        (v4 if n.version == 4 else v6).append(span(n))
    addrs = hosts if isinstance(hosts, list) else list(hosts)
    if set(map(type, addrs)) <= {_V4}:  # the usual case, at C speed
        p4, p6 = list(map(int, addrs)), []
    else:
        p4 = [int(a) for a in addrs if a.version == 4]
        p6 = [int(a) for a in addrs if a.version == 6]
    return _canonical(_with_points(v4, p4), _with_points(v6, p6))


def _canonical(v4: Intervals, v6: Intervals) -> AddressSet:
    """The set of the intervals, IPv6 ones cut around the IPv4-mapped range."""
    if v6 and not (v6[-1] < _MAPPED_LO or v6[0] > _MAPPED_HI):
        cut: list[int] = []
        for i in range(0, len(v6), 2):
            lo, hi = v6[i], v6[i + 1]
            if hi < _MAPPED_LO or lo > _MAPPED_HI:
                cut += (lo, hi)
                continue
            if lo < _MAPPED_LO:
                cut += (lo, _MAPPED_LO - 1)
            if hi > _MAPPED_HI:
                cut += (_MAPPED_HI + 1, hi)
        v6 = tuple(cut)
    return AddressSet(v4=v4, v6=v6)


def _pairs(flat: Intervals) -> Iterable[tuple[int, int]]:
    return zip(flat[0::2], flat[1::2], strict=True)


def union(sets: Iterable[AddressSet]) -> AddressSet:
    """Union of canonical sets (IPv6 parts already avoid the IPv4-mapped range)."""
    sets = list(sets)
    if len(sets) == 1:
        return sets[0]
    v4 = merge_intervals(p for s in sets for p in _pairs(s.v4))
    v6 = merge_intervals(p for s in sets for p in _pairs(s.v6))
    return AddressSet(v4=v4, v6=v6)


class Membership:
    """Fast `address in set` for one address set: bisection over its intervals."""

    def __init__(self, aset: AddressSet) -> None:
        self._aset = aset

    def __contains__(self, address: IPAddress) -> bool:
        return address in self._aset


def contains(aset: AddressSet, address: IPAddress) -> bool:
    return address in aset
