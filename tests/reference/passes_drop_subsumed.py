"""Pass `drop_subsumed` (policy IR): drop a rule whose peers and ports both lie inside another
rule's of the same set.

A set allows the union of its rules, so such a rule adds nothing; dropping it frees a bit and
its peer-class and port entries. Runs after `merge_rules`, which leaves many rules that are
subsumed without being equal (e.g. a selector's pods inside an ipBlock with the same ports).
"""

from __future__ import annotations

from k8s_offload.compiler.ir.rules import AddressSet, PolicyIR, PortRange, Rule, map_rule_sets


def _peers_within(inner: AddressSet | None, outer: AddressSet | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return inner.within(outer)


def _ports_within(inner: tuple[PortRange, ...] | None, outer: tuple[PortRange, ...] | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return all(
        any(o.protocol == p.protocol and o.low <= p.low and p.high <= o.high for o in outer) for p in inner
    )


def drop_subsumed_rules(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Rules are unique, so two rules never subsume each other both ways."""
    return tuple(
        r
        for r in rules
        if not any(
            o is not r and _ports_within(r.ports, o.ports) and _peers_within(r.peers, o.peers) for o in rules
        )
    )


def drop_subsumed(pir: PolicyIR) -> PolicyIR:
    return map_rule_sets(pir, drop_subsumed_rules)
