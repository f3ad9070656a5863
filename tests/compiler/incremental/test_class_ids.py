"""Peer class ids follow the partition of networks into classes, not the peer sets behind them
(issue #7): a class is named by its lowest network, so regrouping one rule set's peers keeps every
LPM entry and every other set's peer-rule entries, in a one-shot run of the policy units and in
a tracking one. The policy units run here on isolations given as an input table."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.bundle.model import Lpm, TableEntry
from k8s_offload.compiler.bundle.values import mapped
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.engine.core import Engine, Input
from k8s_offload.compiler.frontend.model import ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import AddressSet, PodIsolation, PortRange, Rule, RuleSet
from k8s_offload.compiler.lower.policy import PeerClasses, class_name, declare_policy
from k8s_offload.compiler.passes.cidr import address_set
from k8s_offload.compiler.passes.pipeline import Build, PassConfig

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


class _Lowering:
    """The policy units over an input table of isolations (what the `isolation` stage gives)."""

    def __init__(self, passes: frozenset[str], track: bool = True) -> None:
        self.engine = Engine(track)
        b = Build(self.engine, SCHEMA, PassConfig(passes), None)
        self.isolations = b.add(Input(self.engine, "isolation"))
        declare_policy(b)

    def update(
        self, changes: dict[ObjectKey, PodIsolation | None]
    ) -> tuple[list[TableEntry], list[TableEntry]]:
        for pod, iso in changes.items():
            self.isolations.set((EG, pod), iso)
        self.engine.run()
        c = self.engine.collection("entities")
        out = c.pending()
        c.clear()
        return out

    def entries(self) -> list[TableEntry]:
        return list(self.engine.collection("entities").items())


def _full(*isos: PodIsolation) -> list[TableEntry]:
    one_shot = _Lowering(frozenset(), track=False)
    one_shot.update({iso.pod: iso for iso in isos})
    return one_shot.entries()


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
        low = _Lowering(passes)
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
    low = _Lowering(frozenset())
    low.update({A_BEFORE.pod: A_BEFORE, B.pod: B})
    low.update({c.pod: c})
    assert sorted(low.entries(), key=repr) == sorted(_full(A_BEFORE, B, c), key=repr)
    added, removed = low.update({c.pod: None})
    assert labels(low.entries()) == before
    assert {e.match[0][1] for e in _table(added, "eg_peer_class")} == {two}
    assert {e.match[0][1] for e in _table(removed, "eg_peer_class")} == {two}


_nets = st.one_of(
    st.tuples(st.integers(0, 15), st.integers(28, 32)).map(
        lambda t: ipaddress.ip_network((0x0A000000 + (t[0] << 2), t[1]), strict=False)
    ),
    st.tuples(st.integers(0, 7), st.integers(125, 128)).map(
        lambda t: ipaddress.ip_network((0xFD00 << 112 | t[0] << 2, t[1]), strict=False)
    ),
)
_asets = st.lists(_nets, min_size=1, max_size=4).map(lambda ns: address_set(ns))


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), _asets), min_size=1, max_size=12))
def test_peer_classes_update_equals_build(steps: list[tuple[bool, AddressSet]]) -> None:
    """`PeerClasses`' two ways in give one result: after every batch of sets coming and going,
    the tracking table's class ids per set and per network equal a fresh build's, and the label
    changes it reported bring a copy of the old labels to the new ones."""
    tracking = PeerClasses(track=True)
    present: set[AddressSet] = set()
    labels: dict[object, int] = {}
    for add, aset in steps:
        if add == (aset in present):
            continue
        change = {aset: (None, True)} if add else {aset: (True, None)}
        (present.add if add else present.discard)(aset)
        for key, old, new in tracking.update(change):
            if isinstance(key, tuple):
                assert labels.get(key) == old
                if new is None:
                    del labels[key]
                else:
                    labels[key] = new
        built = PeerClasses(track=False)
        built_labels = {
            k: new for k, _, new in built.update({a: (None, True) for a in present}) if isinstance(k, tuple)
        }
        assert labels == built_labels
        for a in present:
            assert tracking.get(a) == built.get(a)
