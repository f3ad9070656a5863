"""Packet-level policy tiers: `trace` verdicts (compiled bundle in the interpreter, request and
reply as real frames) equal the three-tier reference evaluator's (tests/policy/tiers_reference.py)
on random clusters mixing AdminNetworkPolicy/BaselineAdminNetworkPolicy (v1alpha1) or
ClusterNetworkPolicy (v1alpha2) with NetworkPolicies, Nodes and outside addresses.

Reference: network-policy-api v1alpha1/v1alpha2 type documentation (admin tier -> NetworkPolicy ->
baseline tier -> default allow; Pass; a connection needs the client's egress and the server's
ingress to allow it); loopback is left out (kubernetes/kubernetes#95879).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with
from tests.policy.strategies import NODE_ADDRESSES, OUTSIDE_ADDRESSES, PROTOCOLS, tiered_clusters
from tests.policy.tiers_reference import TierCluster


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objects=tiered_clusters(), protocol=st.sampled_from(PROTOCOLS), port=st.integers(1, 16), data=st.data()
)
def test_trace_matches_three_tier_reference(
    tmp_path_factory: Any, objects: list[dict[str, Any]], protocol: str, port: int, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = compile_sources([str(path)])
    tracer = Tracer(
        result.manifests, result.ir, result.schema, interpreter_with(result.schema, result.lowered.bundle)
    )
    ref = TierCluster(objects)
    pods = ref.pods
    others = [ip for ips in NODE_ADDRESSES.values() for ip in ips] + list(OUTSIDE_ADDRESSES)
    targets: list[tuple[dict[str, Any], str]] = []
    for src in pods:
        targets += [(src, dst["status"]["podIPs"][0]["ip"]) for dst in pods if dst is not src]
        targets += [(src, ip) for ip in others]
    for src, dst_ip in data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=4)):
        family = ipaddress.ip_address(dst_ip).version
        src_ips = [
            e["ip"] for e in src["status"]["podIPs"] if ipaddress.ip_address(e["ip"]).version == family
        ]
        if not src_ips:
            continue  # a single-stack pod cannot reach the other family
        src_ref = f"{src['metadata']['namespace']}/{src['metadata']['name']}"
        verdict = tracer.run(Probe(src_ref, dst_ip, port, Protocol(protocol)))
        egress, ingress = ref.connection(src, src_ips[0], dst_ip, protocol, port)
        expected = egress.allowed and ingress.allowed
        event(f"egress {egress.tier} {'allow' if egress.allowed else 'deny'}")
        event(f"ingress {ingress.tier} {'allow' if ingress.allowed else 'deny'}")
        assert verdict.allowed == expected, (src_ref, dst_ip, protocol, port, egress, ingress, verdict.reason)
