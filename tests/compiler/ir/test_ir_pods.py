"""Pod placement (node facts or the documented defaults) and namespaces."""

from __future__ import annotations

import pytest

from k8s_offload.compiler.errors import Location, ManifestErrors
from k8s_offload.compiler.frontend import parse_node_facts
from k8s_offload.compiler.frontend.model import ObjectKey
from k8s_offload.compiler.ir import NamespaceInfo
from tests.compiler.ir.ir_builders import build, pod

FACTS = {
    "apiVersion": "offload.k8s-offload.dev/v1alpha1",
    "kind": "NodeFacts",
    "nodeName": "node-a",
    "gateway": {"ipv4": "169.254.1.1", "mac": "02:00:00:00:00:01"},
    "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
    "pods": [
        {"namespace": "shop", "name": "a", "port": 10, "mac": "02:00:00:00:00:0a"},
        {"namespace": "shop", "name": "moved", "port": 11, "mac": "02:00:00:00:00:0b"},
        {"namespace": "shop", "name": "ghost", "port": 12, "mac": "02:00:00:00:00:0c"},
    ],
}


def test_default_placement_is_sorted_from_port_16() -> None:
    """Without node facts every pod with an IP is local; ports follow (namespace, name) order (docs/ir.md)."""
    ir = build(
        pod("b", "10.0.0.2", node="node-b"),
        pod("a", "10.0.0.1", "fd00::1"),
        pod("z", "10.0.0.9", ns="apps"),
        pod("pending"),
        pod("done", "10.0.0.3", phase="Succeeded"),
        pod("hostnet", "192.168.0.1", hostNetwork=True),
    )
    placed = [(p.key.ref, p.local, p.port, p.mac) for p in ir.pods]
    assert placed == [
        ("apps/z", True, 16, "02:00:00:00:00:10"),
        ("shop/a", True, 17, "02:00:00:00:00:11"),
        ("shop/b", True, 18, "02:00:00:00:00:12"),
        ("shop/done", False, None, None),
        ("shop/hostnet", False, None, None),
        ("shop/pending", False, None, None),
    ]
    assert (str(ir.pods[1].ipv4), str(ir.pods[1].ipv6)) == ("10.0.0.1", "fd00::1")
    assert ir.node.node_name is None
    assert (str(ir.node.gateway.ipv4), str(ir.node.gateway.ipv6), ir.node.gateway.mac) == (
        "169.254.1.1",
        "fe80::1",
        "02:00:00:00:00:01",
    )
    assert (ir.node.ports.arp_proxy, ir.node.ports.host, ir.node.ports.uplink) == (1, 2, 3)


def test_default_placement_runs_out_of_ports() -> None:
    pods = [pod(f"p{i:03}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(495)]
    with pytest.raises(ManifestErrors) as exc:
        build(*pods)
    assert [str(e) for e in exc.value.errors] == [
        "test.yaml: document 495: Pod shop/p494: status.podIPs: no device port left: without node facts "
        "every "
        "pod with an IP is local and gets a port in 16..509 (494 pods), but 495 pods have IPs; pass node "
        "facts"
    ]


def test_node_facts_placement_and_mismatches() -> None:
    facts = parse_node_facts(FACTS, Location("node.yaml"))
    ir = build(
        pod("a", "10.0.0.1"),
        pod("moved", "10.0.0.2", node="node-b"),
        pod("unplugged", "10.0.0.3"),
        pod("remote", "10.0.1.1", node="node-b"),
        facts=facts,
    )
    assert [(p.key.name, p.local, p.port, p.mac) for p in ir.pods] == [
        ("a", True, 10, "02:00:00:00:00:0a"),
        ("moved", False, None, None),
        ("remote", False, None, None),
        ("unplugged", False, None, None),
    ]
    assert [str(d) for d in ir.diagnostics] == [
        "warning: Pod shop/ghost: listed in node facts (port 12) but not in the manifests; the port is "
        "unused",
        "warning: Pod shop/moved: node facts attach it to port 11 but spec.nodeName is 'node-b'; treated "
        "as remote",
        "warning: Pod shop/unplugged: runs on node-a but node facts give it no device port; treated as "
        "remote",
    ]
    assert ir.node is facts


def test_shared_pod_ip_is_an_error_unless_a_pod_is_done() -> None:
    build(pod("a", "10.0.0.1"), pod("old", "10.0.0.1", phase="Failed"))
    with pytest.raises(ManifestErrors) as exc:
        build(pod("a", "10.0.0.1"), pod("b", "10.0.0.1"))
    assert [str(e) for e in exc.value.errors] == [
        "test.yaml: document 2: Pod shop/b: status.podIPs: IP 10.0.0.1 is also the IP of Pod shop/a"
    ]


def test_namespaces_get_the_automatic_name_label() -> None:
    """kubernetes.io/metadata.name is set by the API server on every Namespace (well-known labels)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}
    ir = build(ns, pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ns="apps"))
    assert ir.namespaces == (
        NamespaceInfo(ObjectKey("Namespace", "", "apps"), (("kubernetes.io/metadata.name", "apps"),), False),
        NamespaceInfo(
            ObjectKey("Namespace", "", "shop"), (("kubernetes.io/metadata.name", "shop"), ("team", "a")), True
        ),
    )


def test_a_pod_holding_the_gateway_address_is_an_error() -> None:
    """Issue 17 item 8. The gateway address is node configuration the API server never sees, so
    there is no upstream rule to follow: local pods send to the gateway, and an entry for a pod
    holding its address would deliver that traffic to the pod. Done and host-network pods own no IP."""
    facts = parse_node_facts(FACTS, Location("node.yaml"))
    build(
        pod("done", "169.254.1.1", phase="Succeeded"),
        pod("host", "169.254.1.1", hostNetwork=True),
        facts=facts,
    )
    with pytest.raises(ManifestErrors) as exc:
        build(pod("a", "169.254.1.1"), pod("far", "10.0.0.2", "fe80::1", node="node-b"), facts=facts)
    assert [str(e) for e in exc.value.errors] == [
        "test.yaml: document 1: Pod shop/a: status.podIPs: IP 169.254.1.1 is the gateway address "
        "(node facts gateway.ipv4); a pod must not hold it",
    ]
    # Without node facts the default gateway (169.254.1.1, fe80::1) applies, to remote pods too.
    with pytest.raises(ManifestErrors) as exc:
        build(pod("far", "10.0.0.2", "fe80::1", node="node-b"))
    assert [str(e) for e in exc.value.errors] == [
        "test.yaml: document 1: Pod shop/far: status.podIPs: IP fe80::1 is the gateway address "
        "(the default node facts gateway.ipv6); a pod must not hold it",
    ]
