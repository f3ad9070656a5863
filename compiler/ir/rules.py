"""Resolved NetworkPolicy: per local pod and direction, the rules that allow traffic.

This is what the policy passes produce from `ClusterIR.network_policies` and what the lowering
consumes. Selectors are gone (peers are address sets), named ports are numbers, `except`s are
subtracted, and rules are merged into a canonical, content-addressed `RuleSet`, so two pods with
the same effective policy share one set of entries, and a changed policy is a new set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

from compiler.frontend.model import IPAddress, IPNetwork, ObjectKey, Protocol, net_sort_key
from compiler.frontend.policy import PolicyType

PORT_MIN = 0
PORT_MAX = 65535


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    protocol: Protocol
    low: int
    high: int

    def __str__(self) -> str:
        span = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{self.protocol.value.lower()}/{span}"


@dataclass(frozen=True, slots=True)
class AddressSet:
    """Disjoint, collapsed networks, IPv4 first, sorted: equal sets compare equal."""

    networks: tuple[IPNetwork, ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Sets of thousands of pods are dictionary keys in merging and lowering: hash them once.
        object.__setattr__(
            self, "_hash", hash(tuple((int(n.network_address), n.prefixlen) for n in self.networks))
        )

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.networks) or "-"

    @property
    def sort_key(self) -> tuple[tuple[int, int, int], ...]:
        return _set_sort_key(self)


@lru_cache(maxsize=65536)
def _set_sort_key(aset: AddressSet) -> tuple[tuple[int, int, int], ...]:
    """Cached (sets hash once): rules are sorted per pod, and peer sets hold thousands of networks."""
    return tuple(net_sort_key(n) for n in aset.networks)


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

    @property
    def sort_key(self) -> tuple[object, ...]:
        return (
            self.peers is not None,
            self.peers.sort_key if self.peers is not None else (),
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
class PodIsolation:
    """A local pod isolated in one direction, and the union of what its policies allow."""

    pod: ObjectKey
    direction: PolicyType
    addresses: tuple[IPAddress, ...]
    rule_set: RuleSet
    policies: tuple[ObjectKey, ...]


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


def verify_policy_ir(ir: PolicyIR) -> None:
    """Invariants the lowering relies on; raises ValueError naming the broken one."""
    keys = [(iso.direction.value, iso.pod) for iso in ir.isolations]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("policy IR: isolations must be sorted and unique by (direction, pod)")
    checked: set[int] = set()
    for iso in ir.isolations:
        if id(iso.rule_set) in checked:  # sets shared by many pods are checked once
            continue
        checked.add(id(iso.rule_set))
        where = f"policy IR: {iso.pod} {iso.direction.value}"
        rules = iso.rule_set.rules
        if list(rules) != sorted(rules, key=lambda r: r.sort_key) or len(set(rules)) != len(rules):
            raise ValueError(f"{where}: rules must be sorted and unique")
        for rule in rules:
            if rule.peers is not None:
                nets = rule.peers.networks
                if not nets:
                    raise ValueError(
                        f"{where}: a rule with an empty peer set matches nothing and must be dropped"
                    )
                if list(nets) != sorted(nets, key=net_sort_key):
                    raise ValueError(f"{where}: peer networks must be sorted")
                for n1, n2 in pairwise(nets):
                    if n1.version == n2.version and n1.overlaps(n2):
                        raise ValueError(f"{where}: peer networks {n1} and {n2} overlap")
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
