"""Bundle against bundle: equivalent rewrites are proved equal; each planted bug is caught with a
counterexample that the interpreter confirms."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from k8s_offload.analysis.verify import Verifier
from k8s_offload.analysis.verify.equiv import Report, render_report
from k8s_offload.compiler.bundle.model import ActionCall, Bundle, Exact, Lpm, Range, TableEntry
from k8s_offload.compiler.bundle.values import MAPPED_PREFIX
from k8s_offload.compiler.contract import default_schema
from tests.analysis.verify.helpers import (
    add_entries,
    compiled,
    find,
    match_of,
    replace_entry,
    with_match,
    with_params,
)

V4 = MAPPED_PREFIX


def v4(a: int, b: int, c: int, d: int) -> int:
    return V4 | (a << 24) | (b << 16) | (c << 8) | d


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier(default_schema())


@pytest.fixture(scope="module")
def shop() -> Bundle:
    return compiled("shop").lowered.bundle


@pytest.fixture(scope="module")
def shop_on() -> Bundle:
    """Every pass on: hosts in the exact `*_peer_host` tables."""
    return compiled("shop", optimized=True).lowered.bundle


def _cart_port_rule(bundle: Bundle) -> TableEntry:
    return find(bundle, "eg_port_rules", lambda e: match_of(e, "dport") == Range(8000, 8099))


def test_identical_bundles_are_equal(verifier: Verifier, shop: Bundle) -> None:
    report = verifier.compare(shop, shop)
    assert report.ok, render_report(report, "verify")
    assert {s.stage for s in report.stages} >= {"fwd", "svc_frontend", "egress policy", "ingress policy"}


def test_entry_order_does_not_matter(verifier: Verifier, shop: Bundle) -> None:
    shuffled = dataclasses.replace(shop, entries=tuple(reversed(shop.entries)))
    assert verifier.compare(shop, shuffled).ok


def test_redundant_shorter_prefix_is_equivalent(verifier: Verifier, shop: Bundle) -> None:
    """10.244.1.2/31 -> the default's action changes nothing: .2 still hits its /32."""
    schema = default_schema()
    extra = schema.entry("fwd", {"dst_addr": Lpm(v4(10, 244, 1, 2), 127)}, "to_port", {"port": 3})
    report = verifier.compare(shop, add_entries(shop, extra))
    assert report.ok, render_report(report, "verify")


def test_priority_encoded_ranges_are_equivalent(verifier: Verifier, shop: Bundle) -> None:
    """8000..8099 -> 0x4 as a priority-2 entry over a priority-1 8000..8199 -> 0: the tables differ
    (8100..8199 now hits an entry with mask 0 instead of missing) but the policy verdicts do not."""
    old = _cart_port_rule(shop)
    hi = dataclasses.replace(old, priority=2)
    lo = with_match(old, "dport", Range(8000, 8199))
    lo = with_params(lo, rules=0)
    report = verifier.compare(shop, replace_entry(shop, old, hi, lo))
    assert report.ok, render_report(report, "verify")


def _host(b: Bundle, *addr: int) -> TableEntry:
    return find(b, "eg_peer_host", lambda e: match_of(e, "dst_addr") == Exact(v4(*addr)))


def test_host_table_answers_before_the_lpm(verifier: Verifier, shop_on: Bundle) -> None:
    """An LPM entry for an address the exact host table holds is never reached (p4src: the LPM
    applies only on a host miss), whatever its class."""
    host = _host(shop_on, 10, 244, 1, 40)
    lpm = default_schema().entry(
        "eg_peer_class", {"dst_addr": Lpm(v4(10, 244, 1, 40), 128)}, "eg_set_peer_class", {"peer_class": 7}
    )
    assert host.action is not None and host.action.params != (("peer_class", 7),)
    report = verifier.compare(shop_on, add_entries(shop_on, lpm))
    assert report.ok, render_report(report, "verify")


def _wrong_host_class(b: Bundle) -> Bundle:
    """10.244.1.40 (postgres) given the class of 10.244.1.2 (DNS)."""
    old, other = _host(b, 10, 244, 1, 40), _host(b, 10, 244, 1, 2)
    return replace_entry(b, old, dataclasses.replace(old, action=other.action))


def _dropped_host(b: Bundle) -> Bundle:
    """Without its host entry 10.244.1.2 misses the LPM too: class 0, no rule."""
    return replace_entry(b, _host(b, 10, 244, 1, 2))


def _wrong_prefix(b: Bundle) -> Bundle:
    old = find(b, "fwd", lambda e: match_of(e, "dst_addr") == Lpm(v4(10, 244, 1, 20), 128))
    return replace_entry(b, old, with_match(old, "dst_addr", Lpm(v4(10, 244, 1, 20), 127)))


def _wrong_peer_prefix(b: Bundle) -> Bundle:
    old = find(b, "eg_peer_class", lambda e: match_of(e, "dst_addr") == Lpm(v4(192, 168, 8, 0), 96 + 23))
    return replace_entry(b, old, with_match(old, "dst_addr", Lpm(v4(192, 168, 8, 0), 96 + 24)))


def _dropped_frontend(b: Bundle) -> Bundle:
    old = find(b, "svc_frontend", lambda e: match_of(e, "dport") == Exact(6379))
    return replace_entry(b, old)


def _shadowing_entry(b: Bundle) -> Bundle:
    old = _cart_port_rule(b)
    shadow = dataclasses.replace(
        with_match(old, "dport", Range(7000, 9000)),
        priority=5,
        action=ActionCall(old.action.name, (("rules", 1),)) if old.action else None,
    )
    return add_entries(b, shadow)


def _swapped_priority(b: Bundle) -> Bundle:
    old = _cart_port_rule(b)
    hi = dataclasses.replace(old, priority=1)
    lo = with_match(old, "dport", Range(8000, 8199))
    lo = dataclasses.replace(with_params(lo, rules=0), priority=2)
    return replace_entry(b, old, hi, lo)


def _wrong_range_bound(b: Bundle) -> Bundle:
    old = _cart_port_rule(b)
    return replace_entry(b, old, with_match(old, "dport", Range(8000, 8098)))


MUTATIONS: dict[str, tuple[Callable[[Bundle], Bundle], str, Callable[[dict[str, int]], bool]]] = {
    "wrong prefix": (_wrong_prefix, "fwd", lambda k: k["dst_addr"] == v4(10, 244, 1, 21)),
    "wrong peer prefix": (
        _wrong_peer_prefix,
        "egress policy",
        lambda k: v4(192, 168, 9, 0) <= k["dst_addr"] <= v4(192, 168, 9, 255) and 8000 <= k["dport"] <= 8099,
    ),
    "dropped entry": (
        _dropped_frontend,
        "svc_frontend",
        lambda k: (k["dst_addr"], k["l4_proto"], k["dport"]) == (v4(10, 96, 40, 40), 6, 6379),
    ),
    "shadowed entry": (_shadowing_entry, "egress policy", lambda k: 7000 <= k["dport"] <= 9000),
    "swapped priority": (_swapped_priority, "egress policy", lambda k: 8000 <= k["dport"] <= 8099),
    "wrong range bound": (_wrong_range_bound, "egress policy", lambda k: k["dport"] == 8099),
}
HOST_MUTATIONS = {
    "wrong host class": (_wrong_host_class, "egress policy", lambda k: k["dst_addr"] == v4(10, 244, 1, 40)),
    "dropped host": (_dropped_host, "egress policy", lambda k: k["dst_addr"] == v4(10, 244, 1, 2)),
}


def _only_failure(report: Report) -> str:
    failed = [s.stage for s in report.stages if not s.equal]
    assert len(failed) == 1, render_report(report, "verify")
    return failed[0]


@pytest.mark.parametrize("name", sorted(MUTATIONS) + sorted(HOST_MUTATIONS))
def test_planted_bug_is_caught_and_confirmed(
    verifier: Verifier, shop: Bundle, shop_on: Bundle, name: str
) -> None:
    mutate, stage, in_region = MUTATIONS[name] if name in MUTATIONS else HOST_MUTATIONS[name]
    base = shop if name in MUTATIONS else shop_on
    report = verifier.compare(base, mutate(base))
    text = render_report(report, "verify")
    assert not report.ok
    assert _only_failure(report) == stage, text
    (failed,) = report.failures()
    cex = failed.counterexample
    assert cex is not None
    assert in_region(cex.fields), text
    assert cex.outcome_a != cex.outcome_b
    assert cex.confirmed is True, text
    assert "counterexample:" in text and "confirmed" in text


def test_counterexample_names_fields_and_values(verifier: Verifier, shop: Bundle) -> None:
    text = render_report(verifier.compare(shop, _wrong_prefix(shop)), "verify")
    assert "dst_addr=10.244.1.21" in text
    assert "to_pod(port=13" in text and "to_port(port=3)" in text


def test_replay_off_still_proves(shop: Bundle) -> None:
    report = Verifier(default_schema(), replay=False).compare(shop, _wrong_range_bound(shop))
    (failed,) = report.failures()
    assert failed.counterexample is not None and failed.counterexample.confirmed is None
