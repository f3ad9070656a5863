"""Three-tier conformance at packet level: every transcribed case through the compiler and the
interpreter with real frames (the Tracer, as tests/policy/test_conformance.py does).

- Upstream: every probe of every step of kubernetes-sigs/network-policy-api's conformance tests,
  v1alpha1 (release-0.1) and v1alpha2 (main), on the upstream base cluster
  (tests/policy/tiers/cases.py; data in upstream_v1alpha*.yaml). Each step's cluster state (the
  manifests after that step's mutations) is compiled once.
- Ours: tests/policy/tiers/extra.yaml on the NetworkPolicy conformance model.

Besides allowed/denied, a denial that a tier policy decided must name it as the contract between
the compiler and these tests fixes: "<Kind> <name> rule <n> (<direction>)" (1-based, written
order), the direction being the side that dropped first (the client's egress, on the request path).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from k8s_offload.analysis.trace import Probe, Tracer, Verdict, render_text
from k8s_offload.compiler.frontend.model import Protocol
from tests.policy.conformance.model import FLOW_EXPIRY_US, Topology, manifests, node_facts, tracer_for
from tests.policy.tiers.cases import UPSTREAM, UpstreamTest, namespace, pod_ip, pod_object, states
from tests.policy.tiers.cases import node_facts as upstream_facts
from tests.policy.tiers.extra import EXTRA, ExtraCase, address, find_pod, server_address, tracer_target
from tests.policy.tiers_reference import Decision, TierCluster

# The upstream suite probes status.podIP. By default IPv4 with every pod on one node and IPv6 with
# the pods spread over two (as tests/policy/test_conformance.py splits its variants);
# TIERS_CONFORMANCE_ALL=1 runs all four family x layout combinations (about twice as long).
LAYOUTS = (
    tuple((f, spread) for f in (4, 6) for spread in (False, True))
    if os.environ.get("TIERS_CONFORMANCE_ALL")
    else ((4, False), (6, True))
)


def full_ref(ref: str) -> str:
    house, pod = ref.split("/")
    return f"{namespace(house)}/{pod}"


def naming_problem(verdict: Verdict, egress: Decision, ingress: Decision) -> str | None:
    """None when a denial decided by a tier policy names it, else what is missing."""
    if verdict.allowed:
        return None
    decision, direction = (egress, "egress") if not egress.allowed else (ingress, "ingress")
    if decision.tier not in ("admin", "baseline"):
        return None
    want = f"{decision.kind} {decision.policy} rule {decision.rule} ({direction})"
    text = render_text([verdict])
    return None if want in text else f"the denial does not name {want!r}:\n{text}"


def check(
    tracer: Tracer,
    ref: TierCluster,
    client: dict[str, Any],
    client_ip: str,
    target: str,
    server_ip: str,
    protocol: str,
    port: int,
    expected: bool,
    label: str,
) -> list[str]:
    source = f"{client['metadata']['namespace']}/{client['metadata']['name']}"
    try:
        verdict = tracer.run(Probe(source, target, port, Protocol(protocol)))
    except ValueError as err:  # the tracer refused the probe: a failure of this probe only
        return [f"{label}: trace refused the probe: {err}"]
    out = []
    if verdict.allowed != expected:
        out.append(
            f"{label}: expected {'allowed' if expected else 'denied'}, got "
            f"{'allowed' if verdict.allowed else 'denied'} ({verdict.reason})"
        )
    else:
        egress, ingress = ref.connection(client, client_ip, server_ip, protocol, port)
        problem = naming_problem(verdict, egress, ingress)
        if problem is not None:
            out.append(f"{label}: {problem}")
    return out


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda t: f"ipv{t[0]}-{'2nodes' if t[1] else '1node'}")
@pytest.mark.parametrize("test", UPSTREAM, ids=lambda t: t.id)
def test_upstream_conformance(test: UpstreamTest, layout: tuple[int, bool]) -> None:
    family, spread = layout
    failures: list[str] = []
    for n, (step, objects) in enumerate(states(test, family, spread), 1):
        tracer = tracer_for(manifests(objects), upstream_facts(spread))
        tracer.clock += FLOW_EXPIRY_US
        ref = TierCluster(objects)
        for p in step.probes:
            client = pod_object(objects, p.client)
            server_ip = pod_ip(p.server, family)
            failures += check(
                tracer,
                ref,
                client,
                pod_ip(p.client, family),
                server_ip,
                server_ip,
                p.protocol,
                p.port,
                p.expected,
                f"step {n} ({step.run}): {p.client} -> {p.server} {p.protocol}/{p.port}",
            )
    assert not failures, f"{test.version} {test.name} ({test.source})\n" + "\n".join(failures)


@pytest.mark.parametrize("multi_node", (False, True), ids=("1node", "3nodes"))
@pytest.mark.parametrize("case", EXTRA, ids=lambda c: c.id)
def test_our_cases(case: ExtraCase, multi_node: bool) -> None:
    """One node holding every pod, or x on the compiled node (with node facts) and y, z on two
    others, so that each side's tier stages run on its own node."""
    objects = case.cluster(multi_node)
    tracer = tracer_for(manifests(objects), node_facts(Topology(case.family, multi_node)))
    tracer.clock += FLOW_EXPIRY_US
    ref = TierCluster(objects)
    failures: list[str] = []
    for p in case.probes:
        client = find_pod(objects, p.client)
        failures += check(
            tracer,
            ref,
            client,
            address(client, case.family),
            tracer_target(objects, p.target, case.family),
            server_address(objects, p.target, case.family),
            p.protocol,
            p.port,
            p.expected,
            f"{p.client} -> {p.target} {p.protocol}/{p.port}",
        )
    assert not failures, f"{case.id}: {case.why}\n" + "\n".join(failures)


def test_upstream_clients_exist_in_the_model() -> None:
    """Every probe's client and server is a pod of the upstream model (a typo would otherwise
    surface as a compiler failure)."""
    for test in UPSTREAM:
        (_, objects), *_ = states(test, 4)
        for step in test.steps:
            for p in step.probes:
                assert pod_object(objects, p.client) and pod_object(objects, p.server)
                assert full_ref(p.client).startswith("network-policy-conformance-")
