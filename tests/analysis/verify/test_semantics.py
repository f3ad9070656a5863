"""The policy stages against the resolved NetworkPolicy rules, per local pod and direction."""

from __future__ import annotations

import pytest

from k8s_offload.analysis.verify import Verifier
from k8s_offload.analysis.verify.equiv import render_report
from k8s_offload.compiler.bundle.model import Exact, Lpm
from k8s_offload.compiler.contract import default_schema
from tests.analysis.verify.helpers import (
    GOOD_CASES,
    compiled,
    find,
    match_of,
    replace_entry,
    with_match,
    with_params,
)
from tests.analysis.verify.test_equivalence import v4


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier(default_schema())


def test_there_are_policy_cases() -> None:
    with_policy = [c for c in GOOD_CASES if compiled(c).lowered.policy.isolations]
    assert len(with_policy) >= 3, with_policy


@pytest.mark.parametrize("case", GOOD_CASES)
def test_golden_case_matches_its_policy(verifier: Verifier, case: str) -> None:
    result = compiled(case)
    report = verifier.semantics(result.lowered.bundle, result.lowered.policy, tiers=result.lowered.tiers)
    assert report.ok, render_report(report, case)
    for stage, direction in zip(report.stages, ("Egress", "Ingress"), strict=True):
        addresses = {
            a for i in result.lowered.policy.isolations if i.direction.value == direction for a in i.addresses
        } | {a for t in result.lowered.tiers if t.direction.value == direction for a in t.addresses}
        assert stage.detail == f"{len(addresses)} pod addresses"


def test_mutated_peer_prefix_is_caught(verifier: Verifier) -> None:
    result = compiled("shop")
    b = result.lowered.bundle
    old = find(b, "eg_peer_class", lambda e: match_of(e, "dst_addr") == Lpm(v4(192, 168, 8, 0), 96 + 23))
    bad = replace_entry(b, old, with_match(old, "dst_addr", Lpm(v4(192, 168, 8, 0), 96 + 24)))
    report = verifier.semantics(bad, result.lowered.policy)
    text = render_report(report, "semantics")
    egress, ingress = report.stages
    assert not egress.equal and ingress.equal, text
    cex = egress.counterexample
    assert cex is not None and cex.confirmed is True, text
    assert v4(192, 168, 9, 0) <= cex.fields["dst_addr"] <= v4(192, 168, 9, 255)
    assert cex.outcome_a.startswith("allowed for Pod shop/cart") and cex.outcome_b == "denied", text


def test_mutated_any_port_mask_is_caught(verifier: Verifier) -> None:
    """The frontend pods' ingress set: clearing any_port_rules drops what the port-less rule allows."""
    result = compiled("shop")
    b = result.lowered.bundle
    old = find(b, "in_pod", lambda e: match_of(e, "dst_addr") == Exact(v4(10, 244, 1, 10)))
    bad = replace_entry(b, old, with_params(old, any_port_rules=0))
    report = verifier.semantics(bad, result.lowered.policy)
    egress, ingress = report.stages
    assert egress.equal and not ingress.equal, render_report(report, "semantics")
    cex = ingress.counterexample
    assert cex is not None and cex.fields["dst_addr"] == v4(10, 244, 1, 10)
    assert cex.confirmed is True, render_report(report, "semantics")


def test_dropped_isolation_is_caught(verifier: Verifier) -> None:
    result = compiled("shop")
    b = result.lowered.bundle
    old = find(b, "in_pod", lambda e: match_of(e, "dst_addr") == Exact(v4(10, 244, 1, 40)))
    report = verifier.semantics(replace_entry(b, old), result.lowered.policy)
    ingress = report.stages[1]
    assert not ingress.equal
    assert ingress.counterexample is not None
    assert ingress.counterexample.outcome_b == "allowed"
    assert ingress.counterexample.confirmed is True


@pytest.mark.parametrize("case", GOOD_CASES)
def test_golden_case_optimized_equals_unoptimized(verifier: Verifier, case: str) -> None:
    """What `offload-compile verify` proves, on every golden case: passes on equals passes off."""
    from k8s_offload.cli.verify import optimized

    result = compiled(case)
    on, _ = optimized(result)
    report = verifier.compare(result.lowered.bundle, on)
    assert report.ok, render_report(report, case)
    assert len(report.stages) >= 10
