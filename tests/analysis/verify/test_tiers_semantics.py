"""`verify` on the cluster policy tiers: the composed admin, NetworkPolicy and baseline stages
against the reference three-tier evaluation of the resolved rules (analysis/verify/policy.py,
`intended`), and mutations of the tier tables that it must catch (golden case `tiers`)."""

from __future__ import annotations

import dataclasses

import pytest

from k8s_offload.analysis.verify import Verifier
from k8s_offload.analysis.verify.equiv import render_report
from k8s_offload.compiler.bundle.model import ActionCall, Exact
from k8s_offload.compiler.contract import default_schema
from tests.analysis.verify.helpers import compiled, find, match_of, replace_entry
from tests.analysis.verify.test_equivalence import v4


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier(default_schema())


def test_tiers_case_proves_and_needs_the_tiers(verifier: Verifier) -> None:
    result = compiled("tiers")
    report = verifier.semantics(result.lowered.bundle, result.lowered.policy, tiers=result.lowered.tiers)
    assert report.ok, render_report(report, "tiers")
    # Without the tier rules the reference is NetworkPolicy alone: the compiled tiers differ from it.
    blind = verifier.semantics(result.lowered.bundle, result.lowered.policy)
    assert not blind.ok


def test_flipped_admin_action_is_caught(verifier: Verifier) -> None:
    """sre-guardrails egress rule 2 (Deny to infra nodes) turned into Allow."""
    result = compiled("tiers")
    b = result.lowered.bundle
    old = find(b, "eg_admin", lambda e: e.action is not None and e.action.name.endswith("eg_tier_deny"))
    prefix = old.action.name.rsplit(".", 1)[0] + "." if old.action and "." in old.action.name else ""
    bad = replace_entry(b, old, dataclasses.replace(old, action=ActionCall(prefix + "eg_tier_allow")))
    report = verifier.semantics(bad, result.lowered.policy, tiers=result.lowered.tiers)
    egress, ingress = report.stages
    assert not egress.equal and ingress.equal, render_report(report, "semantics")
    cex = egress.counterexample
    assert cex is not None and cex.outcome_b == "allowed", render_report(report, "semantics")
    assert cex.fields["dst_addr"] in (v4(192, 168, 10, 12), 0x20010DB8000000000000000000000012)
    assert cex.confirmed is True, render_report(report, "semantics")


def test_swapped_priorities_are_caught(verifier: Verifier) -> None:
    """The ingress admin rules of prod/server: Allow monitoring (rule 1) must come before Deny dev."""
    result = compiled("tiers")
    b = result.lowered.bundle
    server = Exact(v4(10, 244, 0, 10))
    pod = find(b, "in_tier_pod", lambda e: match_of(e, "dst_addr") == server)
    set_id = dict(pod.action.params)["set_id"] if pod.action else 0
    allow = find(b, "in_admin", lambda e: match_of(e, "in_tier_set") == Exact(set_id) and e.priority == 64)
    deny = find(b, "in_admin", lambda e: match_of(e, "in_tier_set") == Exact(set_id) and e.priority == 63)
    bad = replace_entry(b, allow, dataclasses.replace(allow, priority=62))
    report = verifier.semantics(bad, result.lowered.policy, tiers=result.lowered.tiers)
    assert not report.stages[1].equal, render_report(report, "semantics")
    cex = report.stages[1].counterexample
    assert cex is not None and cex.fields["dst_addr"] in (
        v4(10, 244, 0, 10),
        0xFD000244000000000000000000000010,
    )
    assert cex.outcome_b == "denied" and deny.priority == 63


def test_passes_on_and_off_prove_equal(verifier: Verifier) -> None:
    from k8s_offload.compiler.driver import compile_sources
    from k8s_offload.compiler.passes.pipeline import PassConfig
    from tests.analysis.verify.helpers import GOLDEN

    case = GOLDEN / "tiers"
    args = ([case / "manifests.yaml"], case / "node.yaml")
    on = compile_sources(*args)
    off = compile_sources(*args, passes=PassConfig.parse(None, True, "bmv2", None, "hash"))
    assert off.lowered.bundle != on.lowered.bundle
    report = verifier.compare(off.lowered.bundle, on.lowered.bundle, ("passes off", "passes on"))
    assert report.ok, render_report(report, "equivalence")
