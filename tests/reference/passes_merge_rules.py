"""Pass `merge_rules` (policy IR): ACL merging inside each pod's rule set.

Rules with equal peers share one rule (ports unioned), then rules with equal ports do (peers
unioned): fewer bits, fewer peer sets to classify and fewer port entries, same allowed space.
Rule sets that become equal are then one set (its entries are shared by all its pods).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from k8s_offload.compiler.ir.rules import AddressSet, PolicyIR, PortRange, Rule, map_rule_sets
from tests.reference.passes_cidr import union


def canonical_ports(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Merge overlapping and adjacent ranges per protocol."""
    out: list[PortRange] = []
    for r in sorted(ranges):
        last = out[-1] if out else None
        if last is not None and last.protocol == r.protocol and r.low <= last.high + 1:
            out[-1] = PortRange(r.protocol, last.low, max(last.high, r.high))
        else:
            out.append(r)
    return tuple(out)


def merge_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    by_peers: dict[AddressSet | None, list[Rule]] = defaultdict(list)
    for r in rules:
        by_peers[r.peers].append(r)
    step: list[Rule] = []
    for peers, group in by_peers.items():
        if any(r.ports is None for r in group):
            step.append(Rule(peers, None))
        else:
            step.append(Rule(peers, canonical_ports(p for r in group for p in r.ports or ())))
    by_ports: dict[tuple[PortRange, ...] | None, list[Rule]] = defaultdict(list)
    for r in step:
        by_ports[r.ports].append(r)
    merged: list[Rule] = []
    for ports, group in by_ports.items():
        if any(r.peers is None for r in group):
            merged.append(Rule(None, ports))
        else:
            merged.append(Rule(union(r.peers for r in group if r.peers is not None), ports))
    return tuple(sorted(set(merged), key=lambda r: r.sort_key))


def merge_policy_rules(pir: PolicyIR) -> PolicyIR:
    """Pods with the same rules get the same merged set; each distinct set is merged once."""
    return map_rule_sets(pir, merge_rules)
