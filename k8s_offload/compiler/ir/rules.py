"""Resolved NetworkPolicy: per local pod and direction, the rules that allow traffic.

This is what the policy passes produce from `ClusterIR.network_policies` and what the lowering
consumes. Selectors are gone (peers are address sets), named ports are numbers, `except`s are
subtracted, and rules are merged into a canonical, content-addressed `RuleSet`, so two pods with
the same effective policy share one set of entries, and a changed policy is a new set.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise, zip_longest
from typing import overload

from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyType

PORT_MIN = 0
PORT_MAX = 65535

_BITS = {4: 32, 6: 128}

Intervals = tuple[int, ...]
"""Closed address intervals of one family, flat: (lo0, hi0, lo1, hi1, ...), sorted, disjoint and
not adjacent (hi_i + 1 < lo_{i+1}), so one set of addresses has exactly one form."""


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    protocol: Protocol
    low: int
    high: int

    def __str__(self) -> str:
        span = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{self.protocol.value.lower()}/{span}"


def merge_intervals(spans: Iterable[tuple[int, int]]) -> Intervals:
    """Closed (lo, hi) intervals, in any order, overlapping or not, in the canonical flat form."""
    out: list[int] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1] + 1:
            if hi > out[-1]:
                out[-1] = hi
        else:
            out += (lo, hi)
    return tuple(out)


def interval_blocks(flat: Intervals, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest aligned blocks (start, prefix length) covering the intervals, in address order:
    the networks an LPM table or `ipaddress.collapse_addresses` would give."""
    full = 1 << bits
    for i in range(0, len(flat), 2):
        lo, hi = flat[i], flat[i + 1]
        while lo <= hi:
            size = (lo & -lo) if lo else full
            room = hi - lo + 1
            while size > room:
                size >>= 1
            yield lo, bits + 1 - size.bit_length()
            lo += size


_V4_HEADS: dict[int, str] = {}


def _v4_text(value: int, plen: int) -> str:
    """`str(IPv4Network((value, plen)))`; the first three octets' text is kept per /24."""
    head = _V4_HEADS.get(value >> 8)
    if head is None:
        if len(_V4_HEADS) > 1 << 16:
            _V4_HEADS.clear()
        head = _V4_HEADS[value >> 8] = f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}."
    return f"{head}{value & 255}/{plen}"


class AddressSet:
    """A set of addresses as integer intervals per family (`v4`, `v6`: `Intervals`); equal sets
    compare equal and hash alike.

    The networks view (`networks`, `prefixes()`, `str`) is the fewest aligned blocks covering the
    intervals, IPv4 first, each family in address order: disjoint, collapsed networks. It is
    computed on first use and kept, so resolution and merging never build `ipaddress` objects.
    """

    __slots__ = ("_hash", "_networks", "_prefixes", "_text", "v4", "v6")

    v4: Intervals
    v6: Intervals

    def __init__(
        self, networks: Iterable[IPNetwork] = (), *, v4: Intervals | None = None, v6: Intervals | None = None
    ) -> None:
        """`AddressSet(networks)` for disjoint, collapsed networks as before (kept for callers
        that build one from networks); `AddressSet(v4=..., v6=...)` takes canonical intervals."""
        if v4 is None or v6 is None:
            spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
            for n in networks:
                lo = int(n.network_address)
                spans[n.version].append((lo, lo + (1 << (n.max_prefixlen - n.prefixlen)) - 1))
            v4, v6 = merge_intervals(spans[4]), merge_intervals(spans[6])
        self.v4 = v4
        self.v6 = v6
        self._hash = hash((v4, v6))
        self._prefixes: tuple[tuple[int, int, int], ...] | None = None
        self._networks: tuple[IPNetwork, ...] | None = None
        self._text: str | None = None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, AddressSet):
            return NotImplemented
        return self._hash == other._hash and self.v4 == other.v4 and self.v6 == other.v6

    def __repr__(self) -> str:
        return f"AddressSet({self})"

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)

    def prefixes(self) -> tuple[tuple[int, int, int], ...]:
        """The networks as (version, network address as int, prefix length), in `networks` order."""
        if self._prefixes is None:
            self._prefixes = (
                *((4, lo, plen) for lo, plen in interval_blocks(self.v4, 32)),
                *((6, lo, plen) for lo, plen in interval_blocks(self.v6, 128)),
            )
        return self._prefixes

    @property
    def networks(self) -> NetworkList:
        """Disjoint, collapsed networks, IPv4 first, sorted: a sequence whose `ipaddress`
        objects are built on first iteration or indexing (truth and length need none)."""
        return NetworkList(self)

    def _network_tuple(self) -> tuple[IPNetwork, ...]:
        if self._networks is None:
            v4, v6 = ipaddress.IPv4Network, ipaddress.IPv6Network
            self._networks = tuple(
                v4((lo, plen)) if version == 4 else v6((lo, plen)) for version, lo, plen in self.prefixes()
            )
        return self._networks

    def __str__(self) -> str:
        if self._text is None:
            self._text = (
                ",".join(
                    _v4_text(lo, plen) if version == 4 else str(ipaddress.IPv6Network((lo, plen)))
                    for version, lo, plen in self.prefixes()
                )
                or "-"
            )
        return self._text

    def intervals(self, version: int) -> Intervals:
        return self.v4 if version == 4 else self.v6

    def __contains__(self, address: IPAddress) -> bool:
        flat = self.v4 if address.version == 4 else self.v6
        value = int(address)
        i = bisect_right(flat, value)
        # Inside [lo, hi] when the value is past an even position (a start) or equals an end.
        return i % 2 == 1 or (i > 0 and flat[i - 1] == value)

    def within(self, outer: AddressSet) -> bool:
        """Every address of this set is in `outer`."""
        return _within(self.v4, outer.v4) and _within(self.v6, outer.v6)

    @property
    def sort_key(self) -> SetKey:
        return SetKey(self)


class NetworkList(Sequence[IPNetwork]):
    """`AddressSet.networks`: the set's networks as a read-only sequence, built lazily."""

    __slots__ = ("_aset",)

    def __init__(self, aset: AddressSet) -> None:
        self._aset = aset

    def __bool__(self) -> bool:
        return bool(self._aset)

    def __len__(self) -> int:
        return len(self._aset.prefixes())

    @overload
    def __getitem__(self, index: int) -> IPNetwork: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[IPNetwork, ...]: ...

    def __getitem__(self, index: int | slice) -> IPNetwork | tuple[IPNetwork, ...]:
        return self._aset._network_tuple()[index]

    def __iter__(self) -> Iterator[IPNetwork]:
        return iter(self._aset._network_tuple())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NetworkList):
            return self._aset == other._aset
        if isinstance(other, tuple):
            return self._aset._network_tuple() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._aset._network_tuple())

    def __repr__(self) -> str:
        return repr(self._aset._network_tuple())


def _within(inner: Intervals, outer: Intervals) -> bool:
    """Every interval of `inner` lies in one interval of `outer` (outer's are maximal)."""
    if not inner:
        return True
    if not outer or inner[0] < outer[0] or inner[-1] > outer[-1]:
        return False
    j = 0
    for i in range(0, len(inner), 2):
        lo, hi = inner[i], inner[i + 1]
        j = bisect_right(outer, lo, j)
        if j % 2 == 1:  # outer[j - 1] <= lo < outer[j]: inside interval j // 2
            if hi > outer[j]:
                return False
        elif not (j > 0 and outer[j - 1] == lo == hi):  # lo is an interval's last address
            return False
    return True


def _mismatch(x: Intervals, y: Intervals) -> int:
    """The first index where x and y differ (the shorter length when one is a prefix)."""
    n = min(len(x), len(y))
    if n == 0 or x[0] != y[0]:
        return 0
    if x[:n] == y[:n]:
        return n
    lo, hi = 0, n  # x[:lo] == y[:lo] and x[:hi] != y[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _stream(s: AddressSet, version: int, start: int) -> Iterator[tuple[int, int, int]]:
    """The set's networks as (version, address, length) from interval `start` of `version` on."""
    flat = s.v4 if version == 4 else s.v6
    for lo, plen in interval_blocks(flat[2 * start :], _BITS[version]):
        yield version, lo, plen
    if version == 4:
        for lo, plen in interval_blocks(s.v6, 128):
            yield 6, lo, plen


def _compare(a: AddressSet, b: AddressSet) -> int:
    """-1, 0 or 1 as the sets' network lists compare (each network as (version, address,
    length)), without building them: intervals before the first difference give equal networks,
    so only the networks from the first differing interval on are generated, up to the first
    difference."""
    if a.v4 == b.v4:
        if a.v6 == b.v6:
            return 0
        version, start = 6, _mismatch(a.v6, b.v6) // 2
    else:
        version, start = 4, _mismatch(a.v4, b.v4) // 2
    for x, y in zip_longest(_stream(a, version, start), _stream(b, version, start)):
        if x != y:
            if x is None:
                return -1
            if y is None:
                return 1
            return -1 if x < y else 1
    return 0


class SetKey:
    """Sort key of an address set: orders sets as their network lists compare (each network as
    `net_sort_key`), computed lazily from the intervals (`_compare`)."""

    __slots__ = ("aset",)

    def __init__(self, aset: AddressSet) -> None:
        self.aset = aset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SetKey) and self.aset == other.aset

    def __hash__(self) -> int:
        return hash(self.aset)

    def __lt__(self, other: SetKey) -> bool:
        return _compare(self.aset, other.aset) < 0

    def __gt__(self, other: SetKey) -> bool:
        return _compare(self.aset, other.aset) > 0

    def __le__(self, other: SetKey) -> bool:
        return _compare(self.aset, other.aset) <= 0

    def __ge__(self, other: SetKey) -> bool:
        return _compare(self.aset, other.aset) >= 0


@dataclass(frozen=True, slots=True)
class Rule:
    """Traffic matches when its peer is in `peers` (None: any address) and its protocol and port
    are in `ports` (None: any protocol, any port)."""

    peers: AddressSet | None
    ports: tuple[PortRange, ...] | None

    def __str__(self) -> str:
        peers = "any" if self.peers is None else str(self.peers)
        ports = "any" if self.ports is None else ",".join(str(p) for p in self.ports)
        return f"peers={peers} ports={ports}"

    def admits_peer(self, address: IPAddress) -> bool:
        return self.peers is None or address in self.peers

    def admits_port(self, protocol: Protocol, port: int) -> bool:
        return self.ports is None or any(
            p.protocol is protocol and p.low <= port <= p.high for p in self.ports
        )

    @property
    def sort_key(self) -> tuple[object, ...]:
        return (
            self.peers is not None,
            SetKey(self.peers) if self.peers is not None else (),
            self.ports is not None,
            self.ports or (),
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]

    @property
    def identity(self) -> str:
        """Content identity: the set's id is derived from it, so a changed set gets a new id."""
        return _identity(self.rules)


@lru_cache(maxsize=4096)
def _identity(rules: tuple[Rule, ...]) -> str:
    """Cached: sets of thousands of networks are stringified once, not at every use."""
    return ";".join(str(r) for r in rules)


@dataclass(frozen=True, slots=True)
class RuleSource:
    """One rule of a NetworkPolicy (`spec.ingress[index]` or `spec.egress[index]`, as the
    isolation's direction) and the rules it resolved to for the pod, before any pass."""

    policy: ObjectKey
    index: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class PodIsolation:
    """A local pod isolated in one direction, and the union of what its policies allow."""

    pod: ObjectKey
    direction: PolicyType
    addresses: tuple[IPAddress, ...]
    rule_set: RuleSet
    policies: tuple[ObjectKey, ...]
    sources: tuple[RuleSource, ...] = field(default=(), compare=False, repr=False)
    """Provenance, not content (equality and the text form ignore it): the API rules the set was
    resolved from, kept through the passes, so `offload-compile trace` can name the rule that
    allowed a flow. Empty for an isolation read from text."""


@dataclass(frozen=True, slots=True)
class PolicyIR:
    isolations: tuple[PodIsolation, ...]
    """Sorted by (direction, pod)."""

    def rule_sets(self, direction: PolicyType) -> tuple[RuleSet, ...]:
        seen: dict[str, RuleSet] = {}
        for iso in self.isolations:
            if iso.direction is direction:
                seen.setdefault(iso.rule_set.identity, iso.rule_set)
        return tuple(seen[k] for k in sorted(seen))


def map_rule_sets(pir: PolicyIR, rewrite: Callable[[tuple[Rule, ...]], tuple[Rule, ...]]) -> PolicyIR:
    """A rule-level pass over every pod: `rewrite` runs once per distinct rule set, and pods that
    shared a set share the result (so they still share one set id after lowering)."""
    done: dict[tuple[Rule, ...], RuleSet] = {}
    out: list[PodIsolation] = []
    for iso in pir.isolations:
        rules = iso.rule_set.rules
        if rules not in done:
            done[rules] = RuleSet(rewrite(rules))
        out.append(
            PodIsolation(iso.pod, iso.direction, iso.addresses, done[rules], iso.policies, iso.sources)
        )
    return PolicyIR(tuple(out))


def _check_intervals(flat: Intervals, bits: int) -> bool:
    """Sorted, disjoint, not adjacent, within the family's range."""
    if len(flat) % 2:
        return False
    if flat and (flat[0] < 0 or flat[-1] >= 1 << bits):
        return False
    return all(lo <= hi for lo, hi in zip(flat[0::2], flat[1::2], strict=True)) and all(
        hi + 1 < lo for hi, lo in zip(flat[1:-1:2], flat[2::2], strict=True)
    )


def check_policy_ir(ir: PolicyIR) -> None:
    """Invariants the lowering relies on; raises ValueError naming the broken one."""
    keys = [(iso.direction.value, iso.pod) for iso in ir.isolations]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("policy IR: isolations must be sorted and unique by (direction, pod)")
    checked: set[int] = set()
    peers_checked: set[int] = set()
    for iso in ir.isolations:
        if id(iso.rule_set) in checked:  # sets shared by many pods are checked once
            continue
        checked.add(id(iso.rule_set))
        where = f"policy IR: {iso.pod} {iso.direction.value}"
        rules = iso.rule_set.rules
        if any(not b.sort_key > a.sort_key for a, b in pairwise(rules)):
            raise ValueError(f"{where}: rules must be sorted and unique")
        for rule in rules:
            peers = rule.peers
            if peers is not None and id(peers) not in peers_checked:
                if not peers:
                    raise ValueError(
                        f"{where}: a rule with an empty peer set matches nothing and must be dropped"
                    )
                # Intervals in canonical form give sorted, disjoint networks.
                if not (_check_intervals(peers.v4, 32) and _check_intervals(peers.v6, 128)):
                    raise ValueError(f"{where}: peer networks must be sorted, disjoint and collapsed")
                peers_checked.add(id(peers))
            if rule.ports is not None:
                if not rule.ports:
                    raise ValueError(
                        f"{where}: a rule with an empty port set matches nothing and must be dropped"
                    )
                for p in rule.ports:
                    if not PORT_MIN <= p.low <= p.high <= PORT_MAX:
                        raise ValueError(f"{where}: bad port range {p}")
                for p1, p2 in pairwise(rule.ports):
                    if p1.protocol == p2.protocol and p1.high + 1 >= p2.low:
                        raise ValueError(f"{where}: port ranges {p1} and {p2} overlap or touch")
