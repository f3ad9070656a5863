"""Service semantics: frontends, backend sets, endpoint conditions and the warnings for what is not offloaded.

Rules come from the Kubernetes API reference (Service, EndpointSlice, Endpoints) and kube-proxy's behaviour.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend.model import IPFamily, ObjectKey, Protocol
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS
from k8s_offload.compiler.ir import BackendSet, BackendSetKey, ClusterIR
from tests.compiler.ir.ir_builders import build, endpoint, endpoint_slice, pod, service

WEB = ObjectKey("Service", "shop", "web")


def backends(ir: ClusterIR, port: str = "http", family: IPFamily = IPFamily.IPv4) -> BackendSet:
    return next(bs for bs in ir.backend_sets if bs.key == BackendSetKey(WEB, port, family))


def targets(bs: BackendSet) -> list[str]:
    return [f"{b.address}:{b.port}" for b in bs.backends]


def warnings(ir: ClusterIR) -> list[str]:
    return [str(d) for d in ir.diagnostics]


def test_dual_stack_gives_one_frontend_per_vip_protocol_port() -> None:
    """spec.clusterIPs / spec.ipFamilies: one VIP per family, primary first (ServiceSpec, API reference)."""
    svc = service(
        ips=("10.96.0.10", "fd00::10"),
        ipFamilies=["IPv4", "IPv6"],
        ipFamilyPolicy="RequireDualStack",
        ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
    )
    v4 = endpoint_slice("web-v4", endpoints=[endpoint("10.0.0.5")], ports=[{"name": "http", "port": 8080}])
    v6 = endpoint_slice(
        "web-v6", endpoints=[endpoint("fd00::5")], ports=[{"name": "http", "port": 8080}], address_type="IPv6"
    )
    ir = build(svc, v4, v6)
    assert [(str(f.vip), f.protocol, f.port, f.family) for f in ir.frontends] == [
        ("10.96.0.10", Protocol.TCP, 80, IPFamily.IPv4),
        ("10.96.0.10", Protocol.UDP, 53, IPFamily.IPv4),
        ("fd00::10", Protocol.TCP, 80, IPFamily.IPv6),
        ("fd00::10", Protocol.UDP, 53, IPFamily.IPv6),
    ]
    assert targets(backends(ir)) == ["10.0.0.5:8080"]
    assert targets(backends(ir, family=IPFamily.IPv6)) == ["fd00::5:8080"]
    assert backends(ir, "dns").reject and backends(ir, "dns", IPFamily.IPv6).reject


def test_single_stack_ignores_slices_of_the_other_family() -> None:
    v6 = endpoint_slice("web-v6", endpoints=[endpoint("fd00::5")], address_type="IPv6")
    ir = build(service(), v6)
    assert [bs.key.family for bs in ir.backend_sets] == [IPFamily.IPv4]
    assert backends(ir).backends == ()


def test_named_target_port_resolves_per_slice() -> None:
    """EndpointPort.name must match the Service port name; its port is the target for that slice's "
    "endpoints."""
    a = endpoint_slice("web-a", endpoints=[endpoint("10.0.0.5")], ports=[{"name": "http", "port": 8080}])
    b = endpoint_slice("web-b", endpoints=[endpoint("10.0.0.6")], ports=[{"name": "http", "port": 9090}])
    other = endpoint_slice(
        "web-c", endpoints=[endpoint("10.0.0.7")], ports=[{"name": "metrics", "port": 9100}]
    )
    udp = endpoint_slice(
        "web-d", endpoints=[endpoint("10.0.0.8")], ports=[{"name": "http", "port": 8080, "protocol": "UDP"}]
    )
    ir = build(service(), a, b, other, udp)
    assert targets(backends(ir)) == ["10.0.0.5:8080", "10.0.0.6:9090"]


def test_endpoint_conditions() -> None:
    """EndpointConditions (API reference): ready nil means ready; serving nil defers to ready;
    terminating nil means not terminating. Only ready endpoints take new connections."""
    eps = [
        endpoint("10.0.0.1"),
        endpoint("10.0.0.2", ready=False),
        endpoint("10.0.0.3", ready=False, serving=True, terminating=True),
        endpoint("10.0.0.4", ready=True, serving=True, terminating=False),
    ]
    bs = backends(build(service(), endpoint_slice("web-a", endpoints=eps)))
    assert [(b.conditions.ready, b.conditions.serving, b.conditions.terminating) for b in bs.backends] == [
        (True, True, False),
        (False, False, False),
        (False, True, True),
        (True, True, False),
    ]
    assert [str(b.address) for b in bs.ready] == ["10.0.0.1", "10.0.0.4"]
    assert not bs.reject


def test_reject_only_without_ready_or_serving_terminating_endpoints() -> None:
    """kube-proxy rejects new connections to a Service port that has no endpoint to use: no ready
    one, and none serving while terminating to fall back on (KEP-1669; iptables proxier "has no
    endpoints" REJECT). Not-serving terminating endpoints stay in the set for existing flows."""
    draining = [endpoint("10.0.0.3", ready=False, serving=False, terminating=True)]
    bs = backends(build(service(), endpoint_slice("web-a", endpoints=draining)))
    assert bs.reject and targets(bs) == ["10.0.0.3:8080"]
    assert backends(build(service())).reject
    fallback = [endpoint("10.0.0.3", ready=False, serving=True, terminating=True)]
    assert not backends(build(service(), endpoint_slice("web-a", endpoints=fallback))).reject


@pytest.mark.parametrize("names", [("web-a", "web-b"), ("web-b", "web-a")])
def test_duplicate_endpoints_across_slices_are_merged_preferring_ready(names: tuple[str, str]) -> None:
    """An endpoint may appear in two slices while the controller moves it; kube-proxy keeps one, the "
    "ready one."""
    first = endpoint_slice(names[0], endpoints=[endpoint("10.0.0.5", ready=False, serving=False)])
    second = endpoint_slice(names[1], endpoints=[endpoint("10.0.0.5", ready=True), endpoint("10.0.0.6")])
    bs = backends(build(service(), first, second))
    assert targets(bs) == ["10.0.0.5:8080", "10.0.0.6:8080"]
    assert all(b.conditions.ready for b in bs.backends)


def test_same_address_on_two_ports_is_two_backends() -> None:
    a = endpoint_slice("web-a", endpoints=[endpoint("10.0.0.5")], ports=[{"name": "http", "port": 8080}])
    b = endpoint_slice("web-b", endpoints=[endpoint("10.0.0.5")], ports=[{"name": "http", "port": 8081}])
    assert targets(backends(build(service(), a, b))) == ["10.0.0.5:8080", "10.0.0.5:8081"]


def test_headless_and_external_name_have_no_vip() -> None:
    """clusterIP None makes a headless Service; ExternalName Services are DNS aliases (ServiceSpec)."""
    headless = service("db", ips=(), clusterIP="None")
    alias = service("ext", ips=(), type="ExternalName", externalName="db.example.com", ports=[])
    ir = build(headless, alias, endpoint_slice("db-a", "db", endpoints=[endpoint("10.0.0.5")]))
    assert ir.frontends == () and ir.backend_sets == ()
    assert [(s.key.name, s.headless, s.external_name) for s in ir.services] == [
        ("db", True, None),
        ("ext", False, "db.example.com"),
    ]
    assert warnings(ir) == []


def test_selectorless_service_uses_manual_slices() -> None:
    """A Service without selector gets no controller-managed slices; users attach their own by label."""
    svc = service(selector={})
    manual = endpoint_slice(
        "web-manual", endpoints=[endpoint("192.0.2.10")], ports=[{"name": "http", "port": 80}]
    )
    other_ns = endpoint_slice("web-x", endpoints=[endpoint("192.0.2.11")], ns="other")
    ir = build(svc, manual, other_ns)
    assert targets(backends(ir)) == ["192.0.2.10:80"]
    assert backends(ir).sources == (ObjectKey("EndpointSlice", "shop", "web-manual"), WEB)


def legacy(*subsets: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": list(subsets),
    }


def test_legacy_endpoints_used_without_any_slice() -> None:
    """core/v1 Endpoints: notReadyAddresses are kept, marked not ready."""
    eps = legacy(
        {
            "addresses": [{"ip": "10.0.0.5"}],
            "notReadyAddresses": [{"ip": "10.0.0.6"}],
            "ports": [{"name": "http", "port": 8080}],
        }
    )
    bs = backends(build(service(), eps))
    assert targets(bs) == ["10.0.0.5:8080", "10.0.0.6:8080"]
    assert [b.conditions.ready for b in bs.backends] == [True, False]
    assert bs.sources == (ObjectKey("Endpoints", "shop", "web"), WEB)


def test_legacy_endpoints_ignored_when_a_slice_exists() -> None:
    eps = legacy({"addresses": [{"ip": "10.0.0.5"}], "ports": [{"name": "http", "port": 8080}]})
    empty_slice = endpoint_slice("web-a", endpoints=[])
    bs = backends(build(service(), eps, empty_slice))
    assert bs.backends == () and bs.reject
    assert ObjectKey("Endpoints", "shop", "web") not in bs.sources


def test_local_backends_point_at_their_pod() -> None:
    ir = build(
        service(),
        pod("web-1", "10.0.0.5"),
        endpoint_slice("web-a", endpoints=[endpoint("10.0.0.5"), endpoint("10.0.1.9")]),
    )
    b1, b2 = backends(ir).backends
    assert (b1.local, b1.pod) == (True, ObjectKey("Pod", "shop", "web-1"))
    assert (b2.local, b2.pod) == (False, None)


def test_sctp_service() -> None:
    svc = service(ports=[{"name": "sig", "port": 3868, "protocol": "SCTP"}])
    slc = endpoint_slice(
        "web-a", endpoints=[endpoint("10.0.0.5")], ports=[{"name": "sig", "port": 3868, "protocol": "SCTP"}]
    )
    ir = build(svc, slc)
    assert [f.protocol for f in ir.frontends] == [Protocol.SCTP]
    assert targets(backends(ir, "sig")) == ["10.0.0.5:3868"]


def _external_service() -> dict[str, Any]:
    svc = service(
        type="LoadBalancer",
        ports=[
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "https", "port": 443, "nodePort": 30443},
        ],
        externalIPs=["192.0.2.1", "2001:db8::1"],
        sessionAffinity="ClientIP",
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
    )
    svc["status"] = {
        "loadBalancer": {
            "ingress": [
                {"ip": "203.0.113.5", "ipMode": "VIP"},
                {"ip": "203.0.113.6", "ipMode": "Proxy"},
                {"hostname": "lb.example"},
            ]
        }
    }
    return svc


def test_external_frontends() -> None:
    """Service API reference: a NodePort Service is reachable on every node IP at spec.ports[].nodePort;
    spec.externalIPs and status.loadBalancer.ingress[].ip are reachable on the service port. An
    ingress with ipMode Proxy is not captured by the node (kube-proxy skips it: the load balancer
    proxies to the node). Addresses of a family the Service lacks have no endpoints: reported."""
    facts = dataclasses.replace(
        DEFAULT_NODE_FACTS,
        node_name="node-a",
        node_ips=(ipaddress.ip_address("192.168.0.10"), ipaddress.ip_address("fd00::10")),
    )
    ir = build(_external_service(), facts=facts)
    found = [(str(f.vip), f.port, f.kind.value) for f in ir.frontends]
    assert found == [
        ("10.96.0.10", 80, "ClusterIP"),
        ("10.96.0.10", 443, "ClusterIP"),
        ("192.0.2.1", 80, "ExternalIP"),
        ("192.0.2.1", 443, "ExternalIP"),
        ("192.168.0.10", 30080, "NodePort"),
        ("192.168.0.10", 30443, "NodePort"),
        ("203.0.113.5", 80, "LoadBalancer"),
        ("203.0.113.5", 443, "LoadBalancer"),
    ]
    assert warnings(ir) == [
        "warning: Service shop/web: addresses 2001:db8::1 are of an IP family the Service does not have; "
        "ignored"
    ]
    (node,) = ir.services
    assert (node.external_local, node.internal_local, node.affinity_timeout) == (True, True, 10800)


def test_node_ports_need_node_ips() -> None:
    """Without nodeIPs in the node facts there is no address to catch node ports on."""
    ir = build(_external_service())
    assert "192.168.0.10" not in {str(f.vip) for f in ir.frontends}
    assert len(ir.frontends) == 6
    assert warnings(ir)[-1] == (
        "warning: Service shop/web: type LoadBalancer: node facts give no nodeIPs, so node ports are not "
        "offloaded"
    )


def test_external_ip_colliding_with_another_frontend() -> None:
    """Hand-written input may reuse an address; the cluster IP wins and the other Service is told."""
    other = service("other", ips=("10.96.0.11",), externalIPs=["10.96.0.10"])
    ir = build(service(), other)
    assert [(str(f.vip), f.service.name) for f in ir.frontends] == [
        ("10.96.0.10", "web"),
        ("10.96.0.11", "other"),
    ]
    assert warnings(ir) == [
        "warning: Service shop/other: ExternalIP 10.96.0.10 TCP/80 is also a ClusterIP frontend of "
        "Service shop/web; ignored here"
    ]


def test_service_without_cluster_ip_is_reported() -> None:
    ir = build(service(ips=()))
    assert warnings(ir) == [
        "warning: Service shop/web: spec.clusterIP: no cluster IP allocated; there is nothing to offload"
    ]


def test_useless_endpoint_objects_are_reported() -> None:
    ir = build(
        service(),
        endpoint_slice("orphan", "nope", endpoints=[]),
        endpoint_slice("nolabel", None, endpoints=[]),
        endpoint_slice("names", endpoints=[{"addresses": ["db.example.com"]}], address_type="FQDN"),
        endpoint_slice("allports", endpoints=[], ports=[{"name": "http"}]),
        legacy() | {"metadata": {"name": "gone", "namespace": "shop"}},
    )
    assert warnings(ir) == [
        "warning: EndpointSlice shop/allports: port http has no number (all ports); ignored",
        "warning: EndpointSlice shop/names: addressType FQDN is not offloaded; ignored",
        "warning: EndpointSlice shop/nolabel: no label kubernetes.io/service-name; ignored",
        "warning: EndpointSlice shop/orphan: label kubernetes.io/service-name names Service 'nope', which is "
        "absent; ignored",
        "warning: Endpoints shop/gone: no Service of the same name; ignored",
    ]


def test_shared_vip_is_an_error() -> None:
    with pytest.raises(ManifestErrors) as exc:
        build(service("a"), service("b"))
    assert [str(e) for e in exc.value.errors] == [
        "test.yaml: document 2: Service shop/b: spec.clusterIPs[0]: 10.96.0.10 is also the cluster IP of "
        "Service shop/a"
    ]


def test_vip_is_parsed_address() -> None:
    ir = build(service(ips=("fd00:0:0::10",), ipFamilies=["IPv6"]))
    assert ir.frontends[0].vip == ipaddress.ip_address("fd00::10")
