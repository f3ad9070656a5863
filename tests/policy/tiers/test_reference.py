"""The reference evaluator (tests/policy/tiers_reference.py) agrees with upstream's expectations.

This guards both sides of the transcription without the compiler: every probe of every step of
every upstream conformance test (tests/policy/tiers/upstream_v1alpha*.yaml), in both address
families, gets upstream's `shouldConnect` from the reference evaluator.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.reference import Cluster, Endpoint
from tests.policy.strategies import PROTOCOLS, clusters, tiered_clusters
from tests.policy.tiers.cases import UPSTREAM, UpstreamTest, pod_ip, pod_object, states
from tests.policy.tiers.extra import EXTRA, ExtraCase, address, find_pod, server_address
from tests.policy.tiers_reference import TierCluster


@pytest.mark.parametrize("family", (4, 6))
@pytest.mark.parametrize("test", UPSTREAM, ids=lambda t: t.id)
def test_reference_matches_upstream_expectations(test: UpstreamTest, family: int) -> None:
    wrong = []
    for step, objects in states(test, family):
        ref = TierCluster(objects)
        for p in step.probes:
            client = pod_object(objects, p.client)
            got = ref.connection(
                client, pod_ip(p.client, family), pod_ip(p.server, family), p.protocol, p.port
            )
            if (got[0].allowed and got[1].allowed) != p.expected:
                wrong.append(f"{step.run}: {p} -> egress {got[0]}, ingress {got[1]}")
    assert not wrong, "\n".join(wrong)


def test_transcription_is_complete() -> None:
    """Counts taken from upstream with `grep -c PokeServer(` over conformance/tests/*.go (comment
    lines excluded): 289 probes in release-0.1 (v1alpha1), 301 on main (v1alpha2), 24 tests each."""
    for version, probes in (("v1alpha1", 289), ("v1alpha2", 301)):
        tests = [t for t in UPSTREAM if t.version == version]
        assert len(tests) == 24
        assert sum(len(s.probes) for t in tests for s in t.steps) == probes
    assert len({t.id for t in UPSTREAM}) == len(UPSTREAM)


@pytest.mark.parametrize("case", EXTRA, ids=lambda c: c.id)
def test_reference_matches_our_expectations(case: ExtraCase) -> None:
    """Our own cases' hand-written expectations (tests/policy/tiers/extra.yaml) agree with the
    reference evaluator: two independent writings of the same API text."""
    objects = case.cluster()
    ref = TierCluster(objects)
    wrong = []
    for p in case.probes:
        client = find_pod(objects, p.client)
        got = ref.connection(
            client,
            address(client, case.family),
            server_address(objects, p.target, case.family),
            p.protocol,
            p.port,
        )
        if (got[0].allowed and got[1].allowed) != p.expected:
            wrong.append(f"{p} -> egress {got[0]}, ingress {got[1]}")
    assert not wrong, "\n".join(wrong)


def test_extra_cases_cover_the_brief() -> None:
    """Each item issue 20 lists for our own cases has a case, in both API versions where it applies."""
    ids = {c.id for c in EXTRA}
    for needed in (
        "pass-to-networkpolicy-and-to-baseline",
        "pass-skips-the-rest-of-the-admin-tier-without-networkpolicy",
        "rule-order-within-a-policy-then-priority",
        "named-ports-per-pod",
        "port-ranges",
        "networks-ipv4",
        "networks-ipv6",
        "node-peers",
        "service-vip-destinations",
        "egress-allow-does-not-open-the-servers-ingress",
    ):
        assert needed in ids
    kinds = {o["kind"] for c in EXTRA for o in c.objects}
    assert {"AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy", "Node"} <= kinds
    assert all(any(p.expected for p in c.probes) or len(c.probes) == 1 for c in EXTRA)
    assert all(
        any(not p.expected for p in c.probes) for c in EXTRA if c.id != "networks-ipv4-only-leave-ipv6"
    )


@settings(max_examples=100, deadline=None)
@given(objects=clusters(), protocol=st.sampled_from(PROTOCOLS), port=st.integers(1, 36))
def test_reference_without_tier_policies_is_networkpolicy(
    objects: list[dict[str, Any]], protocol: str, port: int
) -> None:
    """With no tier policy, the three-tier evaluator is the NetworkPolicy evaluator of
    tests/policy/reference.py on both sides (the tiers add nothing; default allow stays)."""
    tiers = TierCluster(objects)
    np = Cluster(objects)
    for src in np.pods:
        for dst in np.pods:
            if src is dst:
                continue
            s_ip, d_ip = src["status"]["podIPs"][0]["ip"], dst["status"]["podIPs"][0]["ip"]
            expected = np.allows(src, "Egress", Endpoint(d_ip, dst), protocol, port) and np.allows(
                dst, "Ingress", Endpoint(s_ip, src), protocol, port
            )
            assert tiers.allows(src, s_ip, d_ip, protocol, port) == expected


@settings(max_examples=100, deadline=None)
@given(objects=tiered_clusters(), protocol=st.sampled_from(PROTOCOLS), port=st.integers(1, 36))
def test_reference_decisions_name_existing_rules(
    objects: list[dict[str, Any]], protocol: str, port: int
) -> None:
    """On the random tier mixes the property test uses, every decision is well formed: the default
    allows, and a tier decision names a policy of that tier and a rule of the right direction
    whose action it carries (so the property test compares against something meaningful)."""
    ref = TierCluster(objects)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in ref.admin + ref.baseline}
    for src in ref.pods:
        for dst in ref.pods:
            if src is dst:
                continue
            s_ip, d_ip = src["status"]["podIPs"][0]["ip"], dst["status"]["podIPs"][0]["ip"]
            egress, ingress = ref.connection(src, s_ip, d_ip, protocol, port)
            for decision, field in ((egress, "egress"), (ingress, "ingress")):
                if decision.tier == "default":
                    assert decision.allowed
                elif decision.tier in ("admin", "baseline"):
                    pol = by_name[(decision.kind, decision.policy)]
                    rule = pol["spec"][field][decision.rule - 1]
                    assert (rule["action"] in ("Allow", "Accept")) == decision.allowed
                else:
                    assert decision.tier == "networkpolicy"
