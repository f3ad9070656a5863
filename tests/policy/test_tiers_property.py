"""Packet-level policy tiers: `trace` verdicts (compiled bundle in the interpreter, request and
reply as real frames) equal the three-tier reference evaluator's (tests/policy/tiers_reference.py)
on random clusters mixing AdminNetworkPolicy/BaselineAdminNetworkPolicy (v1alpha1) or
ClusterNetworkPolicy (v1alpha2) with NetworkPolicies, Nodes, outside addresses and a Service.

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
    """Probes to pods, to node and outside addresses, and through a Service onto one pod (policy
    applies to the backend after DNAT, the Service port being the target port)."""
    backend = data.draw(st.sampled_from([o for o in objects if o["kind"] == "Pod"]))
    objects = objects + service_onto(backend, protocol, port)
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = compile_sources([str(path)])
    tracer = Tracer(
        result.manifests, result.ir, result.schema, interpreter_with(result.schema, result.lowered.bundle)
    )
    ref = TierCluster(objects)
    pods = ref.pods
    others = [ip for ips in NODE_ADDRESSES.values() for ip in ips] + list(OUTSIDE_ADDRESSES)
    backend_ip = backend["status"]["podIPs"][0]["ip"]
    service = f"svc:{backend['metadata']['namespace']}/{SERVICE}"
    targets: list[tuple[dict[str, Any], str, str]] = []
    for src in pods:
        targets += [
            (src, d["status"]["podIPs"][0]["ip"], d["status"]["podIPs"][0]["ip"])
            for d in pods
            if d is not src
        ]
        targets += [(src, ip, ip) for ip in others]
    via_service = [(src, service, backend_ip) for src in pods if src is not backend]
    choice = (
        st.one_of(st.sampled_from(targets), st.sampled_from(via_service))
        if via_service
        else st.sampled_from(targets)
    )
    for src, target, dst_ip in data.draw(st.lists(choice, min_size=1, max_size=4)):
        family = ipaddress.ip_address(dst_ip).version
        src_ips = [
            e["ip"] for e in src["status"]["podIPs"] if ipaddress.ip_address(e["ip"]).version == family
        ]
        if not src_ips:
            continue  # a single-stack pod cannot reach the other family
        src_ref = f"{src['metadata']['namespace']}/{src['metadata']['name']}"
        verdict = tracer.run(Probe(src_ref, target, port, Protocol(protocol)))
        egress, ingress = ref.connection(src, src_ips[0], dst_ip, protocol, port)
        expected = egress.allowed and ingress.allowed
        event("through the Service" if target.startswith("svc:") else "to an address")
        event(f"egress {egress.tier} {'allow' if egress.allowed else 'deny'}")
        event(f"ingress {ingress.tier} {'allow' if ingress.allowed else 'deny'}")
        assert verdict.allowed == expected, (src_ref, target, protocol, port, egress, ingress, verdict.reason)


SERVICE = "tiers-svc"


def service_onto(pod: dict[str, Any], protocol: str, port: int) -> list[dict[str, Any]]:
    """A ClusterIP Service without selector and its EndpointSlice holding `pod` (IPv4), port ->
    the same target port."""
    ns = pod["metadata"]["namespace"]
    ports = [{"name": "p", "protocol": protocol, "port": port}]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": ns},
            "spec": {
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [{**ports[0], "targetPort": port}],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-1",
                "namespace": ns,
                "labels": {"kubernetes.io/service-name": SERVICE},
            },
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": [
                {
                    "addresses": [pod["status"]["podIPs"][0]["ip"]],
                    "conditions": {"ready": True},
                    "nodeName": pod["spec"]["nodeName"],
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"]},
                }
            ],
        },
    ]
