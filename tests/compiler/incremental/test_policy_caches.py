"""The caches behind the incremental policy section: incremental ORTC equals `compress`, and the
resolver recomputes exactly the local pods a change reaches."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.model import ObjectKey, Pod, Protocol
from k8s_offload.compiler.frontend.policy import NetworkPolicy, PolicyType
from k8s_offload.compiler.incremental import Change, IncrementalCompiler, full_compile
from k8s_offload.compiler.ir.rules import PortRange, Rule
from k8s_offload.compiler.passes.cidr import address_set
from k8s_offload.compiler.passes.drop_subsumed import drop_subsumed_rules
from k8s_offload.compiler.passes.incremental_ortc import IncrementalOrtc
from k8s_offload.compiler.passes.incremental_resolve import RuleSetPasses
from k8s_offload.compiler.passes.merge_rules import canonical_ports, merge_rules
from k8s_offload.compiler.passes.ortc import compress
from k8s_offload.compiler.passes.pipeline import PassConfig

from . import objects as gen

WIDTH = 6
prefixes = st.integers(0, WIDTH).flatmap(
    lambda plen: st.tuples(st.integers(0, (1 << plen) - 1).map(lambda v: v << (WIDTH - plen)), st.just(plen))
)
changes = st.lists(st.tuples(prefixes, st.none() | st.integers(1, 3)), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(changes, min_size=1, max_size=8))
def test_incremental_ortc_equals_compress(steps: list[list[tuple[tuple[int, int], int | None]]]) -> None:
    """Labels set, changed and removed (None) in batches; small width so prefixes nest and collide."""
    inc = IncrementalOrtc(WIDTH)
    current: dict[tuple[int, int], int] = {}
    for batch in steps:
        before = set(inc.output)
        for (value, plen), label in batch:
            if label is None:
                current.pop((value, plen), None)
            else:
                current[(value, plen)] = label
        appeared, vanished = inc.update([(v, p, label) for (v, p), label in batch])
        expected = set(compress([(v, p, label) for (v, p), label in current.items()], WIDTH))
        assert inc.output == expected
        assert appeared == expected - before
        assert vanished == before - expected
    # Removing everything prunes the trie back to its root.
    inc.update([(v, p, None) for v, p in current])
    assert inc.output == set()
    assert list(inc.nodes) == [(0, 0)]


SCHEMA = default_schema()


def _cluster() -> tuple[IncrementalCompiler, dict[ObjectKey, Any]]:
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
    c = IncrementalCompiler(SCHEMA, gen.facts(), check=True)
    c.load(objs.values())
    return c, objs


def _apply(c: IncrementalCompiler, objs: dict[ObjectKey, Any], obj: Any) -> set[ObjectKey]:
    """Apply one change; returns the local pods whose isolation the resolver recomputed."""
    objs[obj.key] = obj
    recomputed: set[ObjectKey] = set()
    resolve = c.resolver.resolve

    def spy() -> Any:
        recomputed.update(c.resolver._dirty)
        return resolve()

    c.resolver.resolve = spy  # type: ignore[method-assign]
    c.apply([Change(obj.key, obj)])
    assert c.bundle() == full_compile(SCHEMA, objs.values(), c.facts)
    return recomputed


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
    before = set(c.entities)
    got = _apply(c, objs, replace(p4, labels=(("app", "w"),)))
    assert got == set()
    assert set(c.entities) == before


def test_policy_in_namespace_without_local_pods_is_an_empty_delta() -> None:
    c, objs = _cluster()
    pol = gen.parse(gen.policy("b", "np1", "y", None, None))
    objs[pol.key] = pol
    delta = c.apply([Change(pol.key, pol)])
    assert len(delta) == 0
    assert c.resolver.isolations.keys() == {
        (d, ObjectKey("Pod", "a", p)) for d in (PolicyType.Egress, PolicyType.Ingress) for p in ("p0", "p1")
    }


def test_namespace_relabel_flips_namespace_selector_peers() -> None:
    c, objs = _cluster()
    got = _apply(c, objs, gen.parse(gen.namespace("b", "t1")))  # p4 leaves np0's peers
    assert got == {ObjectKey("Pod", "a", "p0"), ObjectKey("Pod", "a", "p1")}
    got = _apply(c, objs, gen.parse(gen.namespace("a", "t3")))  # no rule selects by team t1/t3
    assert got == set()


# ---- the per-set policy passes ----------------------------------------------------------------

_nets = st.one_of(
    st.tuples(st.integers(0, 63), st.integers(26, 32)).map(
        lambda t: ipaddress.ip_network((0x0A000000 + (t[0] << 2), t[1]), strict=False)
    ),
    st.tuples(st.integers(0, 15), st.integers(124, 128)).map(
        lambda t: ipaddress.ip_network((0xFD00 << 112 | t[0] << 2, t[1]), strict=False)
    ),
)
_asets = st.lists(_nets, min_size=1, max_size=6).map(lambda ns: address_set(ns))
_ports = st.none() | st.lists(
    st.tuples(st.sampled_from((Protocol.TCP, Protocol.UDP)), st.integers(1, 6), st.integers(0, 3)).map(
        lambda t: PortRange(t[0], t[1], t[1] + t[2])
    ),
    min_size=1,
    max_size=2,
).map(canonical_ports)
_rules = st.lists(st.tuples(st.none() | _asets, _ports).map(lambda t: Rule(*t)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(rules=_rules)
def test_rule_set_passes_equal_the_pipeline(rules: list[Rule]) -> None:
    """The per-set passes equal `merge_rules` then `drop_subsumed_rules`; equal merged sets are
    one object."""
    passes = RuleSetPasses(PassConfig().enabled)
    rules_t = tuple(sorted(set(rules), key=lambda r: r.sort_key))
    expected = drop_subsumed_rules(merge_rules(rules_t))
    assert passes.run(rules_t) == expected
    again = passes.run(rules_t)
    assert all(a.peers is b.peers for a, b in zip(again, passes.run(rules_t), strict=True))
