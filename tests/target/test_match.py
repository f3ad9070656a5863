"""Match engines: exact, longest prefix, priority order with bmv2's handle tie-break."""

from __future__ import annotations

from k8s_offload.target.match import Entry, ExactEngine, LpmEngine, PriorityEngine, make_engine
from k8s_offload.target.p4info_index import KeyField

E = KeyField(1, "e", 8, "exact")
L = KeyField(2, "l", 32, "lpm")
T = KeyField(3, "t", 16, "ternary")
R = KeyField(4, "r", 16, "range")


def test_engine_choice() -> None:
    assert isinstance(make_engine((E,)), ExactEngine)
    assert isinstance(make_engine((E, L)), LpmEngine)
    assert isinstance(make_engine((E, R)), PriorityEngine)
    assert isinstance(make_engine((L, T)), PriorityEngine)


def test_lpm_longest_prefix_wins_per_exact_key() -> None:
    engine = make_engine((E, L))
    short = Entry((1, (0x0A000000, 8)), 0, 0)
    long = Entry((1, (0x0A010000, 16)), 0, 1)
    default = Entry((1, (0, 0)), 0, 2)
    other = Entry((2, (0x0A010100, 24)), 0, 3)
    for e in (short, long, default, other):
        engine.add(e)
    assert engine.lookup((1, 0x0A010203)) is long
    assert engine.lookup((1, 0x0A020304)) is short
    assert engine.lookup((1, 0x0B000000)) is default
    assert engine.lookup((2, 0x0A010203)) is None  # vrf 2 has only the /24, which does not match
    assert engine.lookup((2, 0x0A0101FF)) is other
    engine.remove(long)
    assert engine.lookup((1, 0x0A010203)) is short
    assert engine.find((1, (0x0A000000, 8)), 0) is short


def test_single_field_lpm() -> None:
    engine = make_engine((L,))
    a = Entry(((0xC0A80000, 16),), 0, 0)
    engine.add(a)
    assert engine.lookup((0xC0A8FFFF,)) is a
    assert engine.lookup((0xC0A90000,)) is None


def test_range_priority_and_ties() -> None:
    """Highest priority wins; equal priorities go to the lowest handle, as bmv2's ternary unit does."""
    engine = make_engine((E, R))
    wide = Entry((6, (1, 1000)), 10, 5)
    narrow = Entry((6, (80, 80)), 20, 6)
    tie_late = Entry((6, (400, 600)), 10, 7)
    tie_early = Entry((6, (500, 700)), 10, 2)
    for e in (wide, narrow, tie_late, tie_early):
        engine.add(e)
    assert engine.lookup((6, 80)) is narrow
    assert engine.lookup((6, 550)) is tie_early
    assert engine.lookup((6, 450)) is wide  # wide (handle 5) beats tie_late (handle 7)
    assert engine.lookup((6, 0)) is None
    assert engine.lookup((17, 80)) is None


def test_ternary_with_lpm_as_mask() -> None:
    engine = make_engine((L, T))
    e = Entry(((0x0A000000, 8), (0x0800, 0xFF00)), 1, 0)
    engine.add(e)
    assert engine.lookup((0x0A123456, 0x08AB)) is e
    assert engine.lookup((0x0A123456, 0x09AB)) is None
    assert engine.lookup((0x0B123456, 0x08AB)) is None
