"""Peer class ids follow the partition of networks into classes, not the peer sets behind them
(issue #7): a class is named by its lowest network, so regrouping one rule set's peers keeps every
LPM entry and every other set's peer-rule entries, in the full lowering and the incremental one."""

from __future__ import annotations

import ipaddress

from k8s_offload.compiler.bundle.model import Lpm, TableEntry
from k8s_offload.compiler.bundle.values import mapped
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.model import ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import AddressSet, PodIsolation, PolicyIR, PortRange, Rule, RuleSet
from k8s_offload.compiler.lower.incremental_policy import DirectionLowerer
from k8s_offload.compiler.lower.policy import class_name, lower_policies
from k8s_offload.compiler.passes.cidr import address_set

SCHEMA = default_schema()
EG = PolicyType.Egress


def _peers(*hosts: str) -> AddressSet:
    return address_set(ipaddress.ip_network(h) for h in hosts)


def _rule(peers: AddressSet, port: int) -> Rule:
    return Rule(peers, (PortRange(Protocol.TCP, port, port),))


def _iso(pod: str, addr: str, *rules: Rule) -> PodIsolation:
    ordered = tuple(sorted(rules, key=lambda r: r.sort_key))
    return PodIsolation(
        ObjectKey("Pod", "ns", pod),
        EG,
        (ipaddress.ip_address(addr),),
        RuleSet(ordered),
        (ObjectKey("NetworkPolicy", "ns", pod),),
    )


X = _peers("10.0.0.1/32", "10.0.0.5/32")
Y = _peers("10.0.0.9/32", "fd00::3/128")
MERGED = _peers("10.0.0.1/32", "10.0.0.5/32", "10.0.0.9/32", "fd00::3/128")

A_BEFORE = _iso("a", "10.1.0.1", _rule(X, 80), _rule(Y, 443))
A_AFTER = _iso("a", "10.1.0.1", _rule(MERGED, 80))  # one set's peers regrouped
B = _iso("b", "10.1.0.2", _rule(X, 8080))


def _full(*isos: PodIsolation) -> list[TableEntry]:
    return lower_policies(SCHEMA, PolicyIR(tuple(sorted(isos, key=lambda i: i.pod)))).entries


def _table(entries: list[TableEntry] | set[TableEntry], name: str) -> set[TableEntry]:
    return {e for e in entries if e.table.endswith("." + name)}


def _of_set(entries: set[TableEntry], origin: str) -> set[TableEntry]:
    return {e for e in entries if any(origin in o for o in e.origin)}


def test_class_name_is_the_lowest_network() -> None:
    assert class_name((4, 0x0A000001, 32)) == "4:a000001/32"
    assert class_name((6, 0, 0)) == "6:0/0"


def test_regrouping_one_sets_peers_keeps_class_ids() -> None:
    before, after = _full(A_BEFORE, B), _full(A_AFTER, B)
    # Memberships changed ({X} -> {X, MERGED}, {Y} -> {MERGED}) but the partition did not.
    assert _table(before, "eg_peer_class") == _table(after, "eg_peer_class")
    rules_b = _of_set(_table(before, "eg_peer_rules"), "ns/b")
    assert rules_b and rules_b == _of_set(_table(after, "eg_peer_rules"), "ns/b")


def test_incremental_delta_is_the_regrouped_set_and_its_pod() -> None:
    for passes in (frozenset(), frozenset({"lpm_compress"})):
        low = DirectionLowerer(SCHEMA, EG, passes)
        low.update({A_BEFORE.pod: A_BEFORE, B.pod: B})
        added, removed = low.update({A_AFTER.pod: A_AFTER})
        assert not _table(added, "eg_peer_class") and not _table(removed, "eg_peer_class")
        assert all(any("ns/a" in o for o in e.origin) for e in [*added, *removed])
        if not passes:
            assert sorted(low.entries(), key=repr) == sorted(_full(A_AFTER, B), key=repr)


def test_split_keeps_the_id_of_the_part_holding_the_lowest_network() -> None:
    """Adding a set {.5} splits {.1, .5}: .1 keeps its class id, .5 gets a new one; and removing
    the set merges them back under .1's id."""
    c = _iso("c", "10.1.0.3", _rule(_peers("10.0.0.5/32"), 53))

    def labels(entries: list[TableEntry]) -> dict[object, object]:
        return {e.match[0][1]: e.action.params[0][1] for e in _table(entries, "eg_peer_class") if e.action}

    one, two = (Lpm(mapped(ipaddress.ip_address(f"10.0.0.{i}")), 128) for i in (1, 5))
    before, split = labels(_full(A_BEFORE, B)), labels(_full(A_BEFORE, B, c))
    assert before[one] == before[two] == split[one] != split[two]
    low = DirectionLowerer(SCHEMA, EG, frozenset())
    low.update({A_BEFORE.pod: A_BEFORE, B.pod: B})
    low.update({c.pod: c})
    assert sorted(low.entries(), key=repr) == sorted(_full(A_BEFORE, B, c), key=repr)
    added, removed = low.update({c.pod: None})
    assert labels(low.entries()) == before
    assert {e.match[0][1] for e in _table(added, "eg_peer_class")} == {two}
    assert {e.match[0][1] for e in _table(removed, "eg_peer_class")} == {two}
