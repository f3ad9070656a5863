"""Every optimization pass leaves the tier stages' verdicts unchanged: random clusters with
cluster policy tiers (the generators of tests/compiler/incremental/test_tiers_incremental.py)
compiled with no pass and with one pass (and all), for each target profile, are proved equal by
`verify` (BDDs over the composed admin, NetworkPolicy and baseline stages, docs/verify.md); and
with all passes the compiled stages equal the reference evaluation of the resolved tier rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.verify import Verifier
from k8s_offload.analysis.verify.equiv import render_report
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.compilation import compile_objects
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.passes.pipeline import PASS_NAMES, PassConfig
from k8s_offload.compiler.passes.range_encoding import PROFILES
from tests.compiler.incremental import objects as gen
from tests.compiler.incremental.test_tiers_incremental import (
    TEAMS,
    admin,
    baseline,
    node,
    rule_bodies,
)

SCHEMA = default_schema()
VERIFIER = Verifier(SCHEMA, replay=False)
CHOICES = [(name, profile) for name in (*PASS_NAMES, "all") for profile in PROFILES]
policies = st.one_of(
    st.builds(
        admin,
        st.sampled_from(("a0", "a1", "a2")),
        st.sampled_from((1, 2)),
        st.sampled_from((None, *TEAMS)),
        st.lists(rule_bodies, min_size=1, max_size=5),
        st.booleans(),
    ),
    st.builds(baseline, st.sampled_from((None, *TEAMS)), st.lists(rule_bodies, min_size=1, max_size=4)),
)
local_pods = st.lists(
    st.tuples(gen.ns_names, st.sampled_from(gen.PODS), gen.apps),
    min_size=2,
    max_size=6,
    unique_by=lambda p: p[:2],
).map(lambda ps: [gen.pod(ns, name, app, gen.POD_IPS[i], "n0") for i, (ns, name, app) in enumerate(ps)])
nodes = st.builds(
    node,
    st.sampled_from(("n0", "n1")),
    st.sampled_from(("x", "y")),
    st.sampled_from(("192.168.0.1", "10.0.0.11")),
)
clusters = st.tuples(
    st.lists(policies, min_size=1, max_size=4),
    st.lists(st.one_of(gen.namespaces, gen.policies, nodes), max_size=5),
    local_pods,
)


@pytest.mark.parametrize(("pass_name", "profile"), CHOICES, ids=[f"{n}-{p}" for n, p in CHOICES])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters)
def test_pass_keeps_tier_verdicts(
    pass_name: str, profile: str, cluster: tuple[list[Any], list[Any], list[Any]]
) -> None:
    store: dict[Any, Any] = {}
    used: set[Any] = set()
    for body in (*cluster[0], *cluster[1], *cluster[2]):
        obj = gen.parse(body)
        ips = set(getattr(obj, "ips", ()))
        if ips & used:  # two pods with one address: bad input, not a bundle to compare
            continue
        used |= ips
        store[obj.key] = obj
    enabled = frozenset(PASS_NAMES) if pass_name == "all" else frozenset({pass_name})
    try:
        off = compile_objects(store.values(), None, SCHEMA, PassConfig(frozenset(), profile, check=True))
    except BundleError:  # beyond the rule bits: both fail alike (tests/compiler/tiers)
        return
    on = compile_objects(store.values(), None, SCHEMA, PassConfig(enabled, profile, check=True))
    report = VERIFIER.compare(off.bundle(), on.bundle(), ("passes off", "passes on"))
    policy_stages = [s for s in report.stages if s.stage.endswith(" policy")]
    assert len(policy_stages) == 2 and all(s.equal for s in policy_stages), render_report(report, pass_name)
    if pass_name == "all":
        sem = VERIFIER.semantics(on.bundle(), on.policy(), tiers=on.tiers())
        assert sem.ok, render_report(sem, "semantics")
    event(f"tier pod addresses: {min(len(on.tiers()), 3)}")


def test_drop_shadowed_frees_the_bits_of_rules_that_never_match_first() -> None:
    """Rule 2 (Deny TCP/80 to team t1) lies inside rule 1 (Allow everything to any namespace) of
    the same tier: never the first match, so dropped; the baseline's egress rule 1 (the same
    Deny) is not shadowed by the admin tier's rule 1 (another tier) and stays."""
    deny80 = {"action": "Deny", "peer": ("namespaces", "t1", None), "ports": [{"portNumber": {"port": 80}}]}
    allow_all = {"action": "Allow", "peer": ("namespaces", None, None), "ports": None}
    pol = admin("a0", 1, None, [], False)
    pol["spec"]["egress"] = [
        {"action": "Allow", "to": [{"namespaces": {}}]},
        {
            "action": "Deny",
            "to": [{"namespaces": {"matchLabels": {"team": "t1"}}}],
            "ports": [{"portNumber": {"port": 80}}],
        },
    ]
    base = baseline(None, [allow_all, allow_all, deny80])
    objs = [
        gen.parse(b) for b in (pol, base, gen.namespace("a", "t1"), gen.pod("a", "p0", "x", "10.0.0.1", "n0"))
    ]
    on = compile_objects(objs, None, SCHEMA, PassConfig(frozenset({"drop_shadowed"}), check=True))
    off = compile_objects(objs, None, SCHEMA, PassConfig(frozenset(), check=True))
    (pt_on,) = [pt for pt in on.tiers() if pt.direction.value == "Egress"]
    (pt_off,) = [pt for pt in off.tiers() if pt.direction.value == "Egress"]
    assert [(e.policy.name, e.index) for e in pt_off.tier_set.entries] == [
        ("a0", 0),
        ("a0", 1),
        ("default", 0),
    ]
    assert [(e.policy.name, e.index) for e in pt_on.tier_set.entries] == [("a0", 0), ("default", 0)]
    report = VERIFIER.compare(off.bundle(), on.bundle(), ("passes off", "passes on"))
    assert report.ok, render_report(report, "drop_shadowed")
