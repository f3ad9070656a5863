"""Policy changes re-run only the units they reach (engine stats), and the incremental form of
ORTC equals `compress`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.bundle.model import TableEntry
from k8s_offload.compiler.compilation import Change, Compilation
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.model import ObjectKey, Pod
from k8s_offload.compiler.frontend.policy import NetworkPolicy, PolicyType
from k8s_offload.compiler.lower.policy import _TABLES, PeerLpm
from k8s_offload.compiler.passes.ortc import DONT_CARE, Ortc, compress
from k8s_offload.compiler.passes.pipeline import PassConfig
from tests.reference import compile_reference

from . import objects as gen

WIDTH = 6
prefixes = st.integers(0, WIDTH).flatmap(
    lambda plen: st.tuples(st.integers(0, (1 << plen) - 1).map(lambda v: v << (WIDTH - plen)), st.just(plen))
)
changes = st.lists(
    st.tuples(prefixes, st.none() | st.integers(1, 3) | st.just(DONT_CARE)), min_size=1, max_size=6
)


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(changes, min_size=1, max_size=8))
def test_incremental_ortc_equals_compress(steps: list[list[tuple[tuple[int, int], int | None]]]) -> None:
    """Labels set, changed and removed (None) in batches, don't care among them; small width so
    prefixes nest and collide.
    The tracking form's output after each batch is `compress` of the input, and so is the batch
    form's (one update of the whole input)."""
    inc = Ortc(WIDTH, track=True)
    assert inc.trie is not None
    current: dict[tuple[int, int], int] = {}
    for batch in steps:
        before = set(inc.trie.output)
        for (value, plen), label in batch:
            if label is None:
                current.pop((value, plen), None)
            else:
                current[(value, plen)] = label
        appeared, vanished = inc.update([(v, p, label) for (v, p), label in batch])
        expected = set(compress(sorted((v, p, label) for (v, p), label in current.items()), WIDTH))
        assert inc.trie.output == expected
        assert appeared == expected - before
        assert vanished == before - expected
        batch_form = Ortc(WIDTH, track=False)
        assert batch_form.update([(v, p, label) for (v, p), label in current.items()]) == (expected, set())
    # Removing everything prunes the trie back to its root.
    inc.update([(v, p, None) for v, p in current])
    assert inc.trie.output == set()
    assert list(inc.trie.nodes) == [(0, 0)]


SCHEMA = default_schema()

BASE = 0xFFFF0A000000  # ::ffff:10.0.0.0, so the entries are IPv4 /31 and /32 near it
nets = st.integers(124, 128).flatmap(
    lambda plen: st.tuples(
        st.integers(0, (1 << (plen - 123)) - 1).map(lambda v: BASE | v << (128 - plen)), st.just(plen)
    )
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.lists(st.tuples(nets, st.none() | st.integers(1, 3)), min_size=1, max_size=6), max_size=8
    ),
    compress=st.booleans(),
)
def test_peer_lpm_hosts_update_equals_one_shot(
    steps: list[list[tuple[tuple[int, int], int | None]]], compress: bool
) -> None:
    """The peer-class tables with `exact_hosts` (hosts and pairs in the exact table, the LPM with
    or without ORTC) kept up to date under label changes equal a one-shot build of the labels."""
    tables = _TABLES[PolicyType.Egress]
    kept = PeerLpm(SCHEMA, tables, compress, track=True, hosts=True)
    current: dict[tuple[int, int], int] = {}
    entries: set[TableEntry] = set()
    for batch in steps:
        changes: dict[tuple[int, int], tuple[int | None, int | None]] = {}
        for key, label in batch:
            changes[key] = (changes.get(key, (current.get(key), None))[0], label)
            if label is None:
                current.pop(key, None)
            else:
                current[key] = label
        kept.update(changes)
        removed, added = kept.take_output()
        assert set(removed) <= entries
        entries = (entries - set(removed)) | set(added)
        once = PeerLpm(SCHEMA, tables, compress, track=False, hosts=True)
        once.update({k: (None, v) for k, v in current.items()})
        assert entries == set(once.take_output()[1])
        hosts = {e for e in entries if e.table.endswith("eg_peer_host")}
        assert len(hosts) == len({e.match for e in hosts})  # one entry per address
        assert all(m.prefix_len < 127 for e in entries - hosts for _, m in e.match)  # type: ignore[union-attr]


def _cluster() -> tuple[Compilation, dict[ObjectKey, Any]]:
    """Node n0 holds a/p0..p3 (app x, x, y, y); b/p4 runs on n1. np0 isolates x in a."""
    bodies = [
        gen.namespace("a", "t1"),
        gen.namespace("b", "t2"),
        gen.pod("a", "p0", "x", "10.0.0.1", "n0"),
        gen.pod("a", "p1", "x", "10.0.0.2", "n0"),
        gen.pod("a", "p2", "y", "10.0.0.3", "n0"),
        gen.pod("a", "p3", "y", "10.0.0.4", "n0"),
        gen.pod("b", "p4", "y", "10.0.0.5", "n1"),
        gen.policy("a", "np0", "x", "y", "t2"),
    ]
    objs = {o.key: o for o in map(gen.parse, bodies)}
    c = Compilation(SCHEMA, gen.facts(), PassConfig(check=True))
    c.load(objs.values())
    return c, objs


def _apply(c: Compilation, objs: dict[ObjectKey, Any], obj: Any) -> set[ObjectKey]:
    """Apply one change; returns the local pods whose isolation units re-ran (engine stats)."""
    objs[obj.key] = obj
    c.apply([Change(obj.key, obj)])
    assert c.bundle() == compile_reference(objs.values(), c.facts, SCHEMA).bundle
    ran = c.stats.ran_keys("isolation_unmerged")
    assert not c.stats.ran_keys("service_ir") and not c.stats.ran_keys("fe_plan")  # Services untouched
    return {pod for _, pod in ran}  # type: ignore[misc]


def test_policy_change_recomputes_only_selected_pods() -> None:
    c, objs = _cluster()
    pol = gen.parse(gen.policy("a", "np0", "x", "x", None))  # new peers, same target: not p2, p3
    assert isinstance(pol, NetworkPolicy)
    got = _apply(c, objs, pol)
    assert got == {ObjectKey("Pod", "a", "p0"), ObjectKey("Pod", "a", "p1")}
    got = _apply(c, objs, gen.parse(gen.policy("a", "np0", "y", "x", None)))  # before or after
    assert got == {ObjectKey("Pod", "a", p) for p in ("p0", "p1", "p2", "p3")}


def test_remote_pod_relabel_reaches_only_rules_selecting_it() -> None:
    c, objs = _cluster()
    # b/p4 (team t2, app y) is a peer of np0's ingress rule: its relabel reaches p0 and p1.
    p4 = objs[ObjectKey("Pod", "b", "p4")]
    assert isinstance(p4, Pod)
    got = _apply(c, objs, replace(p4, labels=(("app", "z"),)))
    assert got == {ObjectKey("Pod", "a", "p0"), ObjectKey("Pod", "a", "p1")}
    # Relabelled again to another label no peer selects: no pod recomputed, nothing sent.
    before = c.committed()
    got = _apply(c, objs, replace(p4, labels=(("app", "w"),)))
    assert got == set()
    assert c.committed() == before


def test_policy_in_namespace_without_local_pods_is_an_empty_delta() -> None:
    c, objs = _cluster()
    pol = gen.parse(gen.policy("b", "np1", "y", None, None))
    objs[pol.key] = pol
    delta = c.apply([Change(pol.key, pol)])
    assert len(delta) == 0
    isolated = {k for k, iso in c.b.t["isolation"].values.items() if iso is not None}  # type: ignore[attr-defined]
    assert not c.stats.ran_keys("isolation_unmerged")
    assert isolated == {
        (d, ObjectKey("Pod", "a", p)) for d in (PolicyType.Egress, PolicyType.Ingress) for p in ("p0", "p1")
    }


def test_namespace_relabel_flips_namespace_selector_peers() -> None:
    c, objs = _cluster()
    got = _apply(c, objs, gen.parse(gen.namespace("b", "t1")))  # p4 leaves np0's peers
    assert got == {ObjectKey("Pod", "a", "p0"), ObjectKey("Pod", "a", "p1")}
    got = _apply(c, objs, gen.parse(gen.namespace("a", "t3")))  # no rule selects by team t1/t3
    assert got == set()
