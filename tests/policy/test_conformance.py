"""Conformance: the truth tables of the upstream NetworkPolicy e2e tests, verdicts at packet level.

Source: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go, the version that probes the
full 9x9 model. The cases live in tests/policy/conformance/cases.yaml, each naming the upstream
`It(...)` it translates; the policies are written there as YAML, the expectations are the upstream
`Expect*` calls. A test that changes state (policy updated or deleted, pod or namespace relabelled)
is one compile per state, every matrix of a state probed against one tracer.

Matrices are probed in the upstream probe modes: to each pod's IP, and through its ClusterIP
Service `s-<ns>-<pod>` (policy applies after DNAT); TOPOLOGIES says which variant uses which.
Loopback is not probed (kubernetes/kubernetes#95879).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policy.conformance.model import (
    PODS,
    TOPOLOGIES,
    Reachability,
    Topology,
    addresses,
    cluster_objects,
    compare,
    manifests,
    node_facts,
    observe,
    pod_ip,
    tracer_for,
)
from tests.policy.reference import Cluster, Endpoint

CASES_FILE = Path(__file__).parent / "conformance" / "cases.yaml"
CONTEXTS = {
    "tcp": "NetworkPolicy between server and client",
    "udp": "NetworkPolicy between server and client using UDP",
    "sctp": "NetworkPolicy between server and client using SCTP",
}


@dataclass(frozen=True, slots=True)
class Check:
    protocol: str
    port: int
    expected: Reachability


@dataclass(frozen=True, slots=True)
class State:
    policies: tuple[dict[str, Any], ...]
    checks: tuple[Check, ...]
    pod_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ns_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    upstream: str
    context: str
    states: tuple[State, ...]


def expectation(calls: list[list[Any]]) -> Reachability:
    r = Reachability()
    for op, *args in calls:
        if op == "peer":
            r.expect_peer(*args)
        elif op == "pair":
            r.expect(*args)
        elif op == "all_ingress":
            r.expect_all_ingress(*args)
        elif op == "all_egress":
            r.expect_all_egress(*args)
        else:
            raise ValueError(f"unknown expectation {op!r}")
    return r


def load_cases() -> list[Case]:
    raw = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    cases = []
    for c in raw["cases"]:
        states = []
        for s in c["states"]:
            checks = []
            for chk in s["checks"]:
                proto, port = chk["probe"].split("/")
                checks.append(Check(proto, int(port), expectation(chk["expect"])))
            states.append(
                State(tuple(s["policies"]), tuple(checks), s.get("pod_labels", {}), s.get("ns_labels", {}))
            )
        cases.append(Case(c["id"], c["upstream"], CONTEXTS[c.get("context", "tcp")], tuple(states)))
    return cases


CASES = load_cases()


def _fill(value: Any, addrs: Mapping[str, str]) -> Any:
    """Replace `$host_x_b`-style placeholders with the variant's addresses."""
    if isinstance(value, dict):
        return {k: _fill(v, addrs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, addrs) for v in value]
    if isinstance(value, str) and value.startswith("$"):
        return addrs[value[1:]]
    return value


def policy_objects(state: State, family: int) -> list[dict[str, Any]]:
    addrs = addresses(family)
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **_fill(p, addrs)}
        for p in state.policies
    ]


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: t.id)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_upstream_truth_table(case: Case, topology: Topology) -> None:
    """The whole 9x9 matrix of every check of every state."""
    failures: list[str] = []
    for n, state in enumerate(case.states, 1):
        objects = cluster_objects(topology, state.pod_labels, state.ns_labels) + policy_objects(
            state, topology.family
        )
        tracer = tracer_for(manifests(objects), node_facts(topology))
        for check in state.checks:
            for via_service in topology.modes:
                got = observe(tracer, topology.family, check.port, check.protocol, via_service=via_service)
                diff = compare(check.expected, got)
                if diff is not None:
                    mode = "through the Services" if via_service else "to pod IPs"
                    failures.append(f"state {n}, {check.protocol}/{check.port} {mode}:\n{diff}")
    assert not failures, f"{case.context}: {case.upstream}\n" + "\n\n".join(failures)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_expectations_agree_with_reference_evaluator(case: Case) -> None:
    """Guards the translation: each expected matrix equals the verdicts of tests/policy/reference.py
    (written from the API text, independent of the compiler) on the same objects."""
    topology = Topology(4, False)
    for state in case.states:
        ref = Cluster(cluster_objects(topology, state.pod_labels, state.ns_labels) + policy_objects(state, 4))
        pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in ref.pods}
        for check in state.checks:
            for (a, b), expected in check.expected.cells.items():
                src, dst = pods[a], pods[b]
                allowed = ref.allows(
                    src, "Egress", Endpoint(pod_ip(b, 4), dst), check.protocol, check.port
                ) and ref.allows(dst, "Ingress", Endpoint(pod_ip(a, 4), src), check.protocol, check.port)
                assert allowed == expected, (case.id, a, b, check.protocol, check.port)


def test_comparison_reports_a_wrong_expectation() -> None:
    """The matrix check can fail: one flipped cell of a correct table is reported with its pair."""
    topology = Topology(4, False)
    deny = {
        "metadata": {"name": "deny", "namespace": "x"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    objects = cluster_objects(topology) + policy_objects(State((deny,), ()), 4)
    got = observe(tracer_for(manifests(objects), None), 4, 80, "TCP", via_service=False)
    assert compare(Reachability().expect_peer("", "x", False), got) is None
    diff = compare(Reachability().expect_peer("", "x", False).expect("y/a", "x/b", True), got)
    assert diff is not None and "y/a -> x/b: expected allowed, got denied" in diff


def test_cases_cover_the_model() -> None:
    """Every case has a check, and together they probe all three protocols and both ports."""
    assert len(PODS) == 9 and len(Reachability().cells) == 72
    assert all(state.checks for case in CASES for state in case.states)
    probes = {(chk.protocol, chk.port) for case in CASES for state in case.states for chk in state.checks}
    assert {p for p, _ in probes} == {"TCP", "UDP", "SCTP"} and {n for _, n in probes} == {80, 81}
    assert len({c.id for c in CASES}) == len(CASES)
