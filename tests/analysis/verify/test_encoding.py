"""The BDD encoding against a direct evaluation of the same entries, and ambiguity detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.verify import Verifier
from k8s_offload.analysis.verify.bdd import Space
from k8s_offload.analysis.verify.equiv import render_report
from k8s_offload.analysis.verify.tables import Profiles, concrete_outcome, encode_table
from k8s_offload.compiler.bundle.model import Bundle, Exact, Lpm, Range
from k8s_offload.compiler.contract import default_schema
from tests.analysis.verify.helpers import add_entries, compiled

SCHEMA = default_schema()


@pytest.fixture(scope="module")
def space() -> Space:
    return Space([("x", 6)])


@given(low=st.integers(0, 63), high=st.integers(0, 63), v=st.integers(0, 63))
def test_range_comparators(space: Space, low: int, high: int, v: int) -> None:
    u = space.in_range("x", low, high)
    assert (space.let(u, {"x": v}) == space.true) == (low <= v <= high)


@given(value=st.integers(0, 63), plen=st.integers(0, 6), v=st.integers(0, 63))
def test_prefix_cubes(space: Space, value: int, plen: int, v: int) -> None:
    value &= ~((1 << (6 - plen)) - 1) & 63
    u = space.prefix("x", value, plen)
    assert (space.let(u, {"x": v}) == space.true) == (v >> (6 - plen) == value >> (6 - plen))


def _port_rules(spans: list[tuple[int, int, int, int]]) -> Bundle:
    """eg_port_rules entries (low, high, priority, rules) of one set, TCP."""
    entries = []
    seen = set()
    for low, high, prio, rules in spans:
        low, high = min(low, high), max(low, high)
        if (low, high, prio) in seen or (low, high) == (0, 65535):
            continue
        seen.add((low, high, prio))
        entries.append(
            SCHEMA.entry(
                "eg_port_rules",
                {"eg_set": Exact(7), "l4_proto": Exact(6), "dport": Range(low, high)},
                "eg_set_port_rules",
                {"rules": rules},
                priority=prio,
            )
        )
    return Bundle(entries=tuple(entries))


PORT = st.integers(0, 300)


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(st.tuples(PORT, PORT, st.integers(1, 4), st.integers(0, 3)), max_size=6),
    probe=st.integers(0, 300),
)
def test_priority_table_encoding_agrees_with_direct_lookup(
    spans: list[tuple[int, int, int, int]], probe: int
) -> None:
    bundle = _port_rules(spans)
    space = _shared_space()
    fn = encode_table(space, SCHEMA, Profiles(SCHEMA, bundle), "eg_port_rules", bundle.entries)
    key = {"eg_set": 7, "l4_proto": 6, "dport": probe}
    hits = [o for o, region in fn.outcomes.items() if space.let(region, key) == space.true]
    assert len(hits) == 1  # the regions partition the key space
    expected, _ = concrete_outcome(SCHEMA, Profiles(SCHEMA, bundle), "eg_port_rules", bundle.entries, key)
    assert hits[0] == expected  # ambiguous entries too: the first one wins, as in bmv2


_SPACE: list[Space] = []


def _shared_space() -> Space:
    if not _SPACE:
        _SPACE.append(Verifier(SCHEMA, replay=False).space)
    return _SPACE[0]


@settings(max_examples=40, deadline=None)
@given(
    prefixes=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 8)), max_size=6),
    probe=st.integers(0, 255),
)
def test_lpm_encoding_agrees_with_direct_lookup(prefixes: list[tuple[int, int]], probe: int) -> None:
    base = 0xFFFF_0A00_0000  # ::ffff:10.0.0.0, the last octet varies
    entries = {}
    for value, plen in prefixes:
        value &= ~((1 << (8 - plen)) - 1) & 255
        entries[(value, plen)] = SCHEMA.entry(
            "fwd", {"dst_addr": Lpm(base | value, 120 + plen)}, "to_port", {"port": value % 7}
        )
    bundle = Bundle(entries=tuple(entries.values()))
    space = _shared_space()
    fn = encode_table(space, SCHEMA, Profiles(SCHEMA, bundle), "fwd", bundle.entries)
    key = {"dst_addr": base | probe}
    hits = [o for o, region in fn.outcomes.items() if space.let(region, key) == space.true]
    expected, _ = concrete_outcome(SCHEMA, Profiles(SCHEMA, bundle), "fwd", bundle.entries, key)
    assert hits == [expected]


def test_overlapping_equal_priority_is_ambiguous() -> None:
    shop = compiled("shop").lowered.bundle
    (set_id,) = {
        m.value
        for e in shop.entries
        if e.table.endswith("eg_port_rules")
        for n, m in e.match
        if n.endswith("eg_set") and isinstance(m, Exact)
    }
    overlap = SCHEMA.entry(
        "eg_port_rules",
        {"eg_set": Exact(set_id), "l4_proto": Exact(6), "dport": Range(8050, 8150)},
        "eg_set_port_rules",
        {"rules": 4},
        priority=1,
    )
    verifier = Verifier(SCHEMA)
    report = verifier.compare(shop, add_entries(shop, overlap))
    assert not report.ok
    ((label, amb),) = report.ambiguities
    assert label == "B" and amb.table == "eg_port_rules"
    assert 8050 <= amb.key["dport"] <= 8099 and amb.key["l4_proto"] == 6 and amb.key["eg_set"] == set_id
    assert "AMBIGUOUS in B" in render_report(report, "verify")


def test_disjoint_equal_priority_is_not_ambiguous() -> None:
    for case in ("shop", "policy-selectors"):
        bundle = compiled(case).lowered.bundle
        assert not Verifier(SCHEMA, replay=False).compare(bundle, bundle).ambiguities
