"""The engine's semantics on toy tables: units re-run only when what they read changed, early
cut-off, indexes, on-demand units and their eviction, one-shot runs."""

from __future__ import annotations

from typing import Any

import pytest

from k8s_offload.compiler.engine.core import Engine, EngineError, Index, Input, Reads, Rule


def _take(e: Engine) -> tuple[list[Any], list[Any]]:
    c = e.collection("entities")
    out = c.pending()
    c.clear()
    return out


def _words(track: bool = True) -> tuple[Engine, Input, Rule, Index, Rule]:
    """Input: word by id. Rule `length` per id; index `by_length`; rule `count` per length."""
    e = Engine(track)
    words = Input(e, "words")
    length = Rule(e, "length", lambda r, k: len(r(words, k)), over=words)
    by_length = Index(e, "by_length", length, lambda k, n: [(n, k)])
    count = Rule(e, "count", lambda r, n: ((n, len(r.group(by_length, n))),), over=by_length, out="entities")
    return e, words, length, by_length, count


def test_full_run_computes_every_unit() -> None:
    e, words, _, _, count = _words()
    for i, w in enumerate(["a", "bb", "cc", "ddd"]):
        words.set(i, w)
    stats = e.run()
    assert stats.ran["length"] == 4
    assert dict(count.values) == {1: ((1, 1),), 2: ((2, 2),), 3: ((3, 1),)}
    assert sorted(e.collection("entities").items()) == [(1, 1), (2, 2), (3, 1)]


def test_change_reruns_only_its_readers_and_cut_off_stops_propagation() -> None:
    e, words, _, _, count = _words()
    for i, w in enumerate(["a", "bb", "cc", "ddd"]):
        words.set(i, w)
    e.run()
    _take(e)
    words.set(1, "xy")  # same length: `length` re-runs and is cut off, `count` does not run
    stats = e.run()
    assert stats.units == {("length", 1)}
    assert stats.cut["length"] == 1
    assert _take(e) == ([], [])
    words.set(1, "xyz")  # length 2 -> 3: both counts change
    stats = e.run()
    assert stats.ran_keys("count") == {2, 3}
    assert stats.ran_keys("length") == {1}
    added, removed = _take(e)
    assert sorted(added) == [(2, 1), (3, 2)] and sorted(removed) == [(2, 2), (3, 1)]
    words.set(0, None)  # the only word of length 1: its count unit goes
    stats = e.run()
    assert 1 not in count.values
    assert _take(e) == ([], [(1, 1)])


def test_on_demand_units_are_shared_and_evicted_when_unread() -> None:
    e = Engine()
    nums = Input(e, "nums")
    calls: list[int] = []

    def square(r: Reads, n: int) -> int:
        calls.append(n)
        return n * n

    sq = Rule(e, "square", square)  # on demand
    use = Rule(e, "use", lambda r, k: r(sq, r(nums, k)), over=nums)
    nums.set("a", 3)
    nums.set("b", 3)
    e.run()
    assert calls == [3] and use.values == {"a": 9, "b": 9}
    nums.set("a", 4)
    e.run()
    assert calls == [3, 4] and 3 in sq.values  # still read by "b"
    nums.set("b", 4)
    e.run()
    assert calls == [3, 4] and set(sq.values) == {4}  # 3 is read by nobody: evicted


def test_a_unit_may_read_only_earlier_tables() -> None:
    e = Engine()
    later: list[Any] = []
    nums = Input(e, "nums")
    Rule(e, "early", lambda r, k: r(later[0], k), over=nums)
    later.append(Rule(e, "late", lambda r, k: 1, over=nums))
    nums.set(1, 1)
    with pytest.raises(EngineError, match="not declared before"):
        e.run()


def test_one_shot_engine_gives_the_same_values_and_takes_no_changes() -> None:
    e, words, _, _, count = _words(track=False)
    for i, w in enumerate(["a", "bb", "cc", "ddd"]):
        words.set(i, w)
    e.run()
    assert dict(count.values) == {1: ((1, 1),), 2: ((2, 2),), 3: ((3, 1),)}
    assert sorted(e.collection("entities").items()) == [(1, 1), (2, 2), (3, 1)]
    with pytest.raises(EngineError):
        words.set(9, "x")
