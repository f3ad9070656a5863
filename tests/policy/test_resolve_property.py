"""The policy resolution pass agrees with a reference evaluator written from the API text."""

from __future__ import annotations

import ipaddress

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.frontend.loader import load_text
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.rules import PolicyIR
from k8s_offload.compiler.passes.resolve_policy import resolve_policies
from tests.policy.reference import Cluster, Endpoint
from tests.policy.strategies import PROTOCOLS, clusters


def ir_allows(pir: PolicyIR, pod: str, direction: PolicyType, ip: str, protocol: str, port: int) -> bool:
    """Evaluate the resolved rules directly (the lowering is tested at packet level elsewhere)."""
    addr = ipaddress.ip_address(ip)
    for iso in pir.isolations:
        if iso.pod.ref != pod or iso.direction is not direction:
            continue
        for rule in iso.rule_set.rules:
            peer_ok = rule.peers is None or any(
                addr.version == n.version and addr in n for n in rule.peers.networks
            )
            port_ok = rule.ports is None or any(
                p.protocol.value == protocol and p.low <= port <= p.high for p in rule.ports
            )
            if peer_ok and port_ok:
                return True
        return False
    return True


OTHER_IPS = ("10.0.0.200", "192.0.2.1", "fd00::c8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objects=clusters(),
    protocol=st.sampled_from(PROTOCOLS),
    port=st.integers(1, 36),
)
def test_resolved_rules_match_reference(objects: list[dict[str, object]], protocol: str, port: int) -> None:
    """For every local pod, direction and peer (every pod IP plus outside addresses), the verdict of
    the resolved rule sets equals the reference evaluator's (NetworkPolicy API reference)."""
    manifests = load_text(yaml.safe_dump_all(objects))
    ir = build_ir(manifests.objects)
    pir = resolve_policies(ir)
    ref = Cluster(objects)  # type: ignore[arg-type]
    peers = [Endpoint(ip["ip"], p) for p in ref.pods for ip in p["status"]["podIPs"]]
    peers += [Endpoint(ip, None) for ip in OTHER_IPS]
    for pod in ref.pods:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        for direction in (PolicyType.Ingress, PolicyType.Egress):
            for other in peers:
                expected = ref.allows(pod, direction.value, other, protocol, port)
                got = ir_allows(pir, key, direction, other.ip, protocol, port)
                assert got == expected, (key, direction, other.ip, protocol, port)
