"""Small random Kubernetes objects as the API server returns them, parsed by the real front end.

The pools are small on purpose: IPs, VIPs and labels collide often, so shared backends, shared
groups, IP conflicts, selector hits and misses all happen in short event sequences.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import strategies as st

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.loader import KubeObject, parse_object
from k8s_offload.compiler.frontend.nodefacts import NodeFacts, parse_node_facts
from k8s_offload.compiler.frontend.sources import RawObject

NAMESPACES = ("a", "b")
PODS = tuple(f"p{i}" for i in range(6))
SERVICES = ("s0", "s1", "s2")
POD_IPS = tuple(f"10.0.0.{i}" for i in range(1, 13))
VIPS = ("10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4")
APPS = ("x", "y")


def parse(body: dict[str, Any]) -> KubeObject:
    errors: list[Any] = []
    obj = parse_object(RawObject(Location("test"), body), errors, Counter())
    assert obj is not None, errors
    return obj


def facts(
    node: str = "n0", zone: str | None = None, node_ips: tuple[str, ...] = ("192.168.0.1",)
) -> NodeFacts:
    """Node n0 with ports for the first four pods of namespace a (some run elsewhere: warnings);
    `zone` for topology hints; an IPv6 node IP only leaves IPv4 external frontends unmasqueradable."""
    raw: dict[str, Any] = {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": node,
        "nodeIPs": list(node_ips),
        "gateway": {"ipv4": "169.254.1.1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": [
            {"namespace": "a", "name": name, "port": 16 + i, "mac": f"02:00:00:00:00:{16 + i:02x}"}
            for i, name in enumerate(PODS[:4])
        ],
    }
    if zone is not None:
        raw["zone"] = zone
    return parse_node_facts(raw, Location("facts"))


def namespace(name: str, team: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": team}}}


def pod(ns: str, name: str, app: str, ip: str, node: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "http"}]}],
        },
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def service(
    ns: str,
    name: str,
    vip: str,
    port: int = 80,
    affinity: int | bool = False,
    type_: str = "ClusterIP",
    external_local: bool = False,
    internal_local: bool = False,
    external_ips: bool = False,
    two_ports: bool = False,
    topology: bool = False,
) -> dict[str, Any]:
    """`affinity`: False (None), True (ClientIP, default timeout) or a timeout in seconds. External
    addresses and node ports are derived from (namespace, name) so that Services never share one."""
    index = NAMESPACES.index(ns) * len(SERVICES) + SERVICES.index(name) if name in SERVICES else 9
    ports: list[dict[str, Any]] = [{"name": "http", "port": port, "targetPort": "http"}]
    if two_ports:
        ports.append({"name": "alt", "port": 8443, "targetPort": 9091})
    if type_ != "ClusterIP":
        for i, p in enumerate(ports):
            p["nodePort"] = 30000 + 10 * index + i
    spec: dict[str, Any] = {"clusterIP": vip, "ports": ports, "type": type_}
    if affinity is not False:
        spec["sessionAffinity"] = "ClientIP"
        if affinity is not True and affinity is not None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    if external_local and (type_ != "ClusterIP" or external_ips):
        spec["externalTrafficPolicy"] = "Local"
    if internal_local:
        spec["internalTrafficPolicy"] = "Local"
    if external_ips:
        spec["externalIPs"] = [f"172.20.0.{index + 1}"]
    if topology:
        spec["trafficDistribution"] = "PreferClose"
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    if type_ == "LoadBalancer":
        body["status"] = {"loadBalancer": {"ingress": [{"ip": f"172.21.0.{index + 1}"}]}}
    return body


Endpoint = tuple[str, bool] | tuple[str, bool, bool, bool, str | None, str | None]
"""(ip, ready) or (ip, ready, serving, terminating, nodeName, hinted zone)."""


def endpoint_slice(
    ns: str, name: str, svc: str, endpoints: list[Endpoint], port: int = 8080, alt: bool = False
) -> dict[str, Any]:
    body_eps: list[dict[str, Any]] = []
    for ep in endpoints:
        if len(ep) == 2:
            body_eps.append({"addresses": [ep[0]], "conditions": {"ready": ep[1]}})
            continue
        ip, ready, serving, terminating, node, zone = ep
        raw: dict[str, Any] = {
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        }
        if node is not None:
            raw["nodeName"] = node
        if zone is not None:
            raw["hints"] = {"forZones": [{"name": zone}]}
        body_eps.append(raw)
    ports = [{"name": "http", "port": port, "protocol": "TCP"}]
    if alt:
        ports.append({"name": "alt", "port": 9091, "protocol": "TCP"})
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": body_eps,
    }


def endpoints(ns: str, name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}]
        if ips
        else [],
    }


def policy(
    ns: str, name: str, target: str, peer_app: str | None, peer_team: str | None, named: bool = False
) -> dict[str, Any]:
    peer: dict[str, Any] = {}
    if peer_app is not None:
        peer["podSelector"] = {"matchLabels": {"app": peer_app}}
    if peer_team is not None:
        peer["namespaceSelector"] = {"matchLabels": {"team": peer_team}}
    rule: dict[str, Any] = {"ports": [{"port": 8080}]}
    if peer:
        rule["from"] = [peer, {"ipBlock": {"cidr": "172.16.0.0/12"}}]
    egress = {"to": [peer] if peer else [], "ports": [{"port": "http" if named else 8080}]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"app": target}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [rule],
            "egress": [egress],
        },
    }


ns_names = st.sampled_from(NAMESPACES)
apps = st.sampled_from(APPS)
maybe_app = st.none() | apps
maybe_team = st.none() | st.sampled_from(("t1", "t2"))

namespaces = st.builds(namespace, ns_names, st.sampled_from(("t1", "t2")))
pods = st.builds(
    pod,
    ns_names,
    st.sampled_from(PODS),
    apps,
    st.sampled_from(POD_IPS),
    st.sampled_from(("n0", "n1")),
    st.sampled_from(("Running", "Running", "Running", "Succeeded")),
)
services = st.builds(
    service,
    ns_names,
    st.sampled_from(SERVICES),
    st.sampled_from(VIPS),
    st.sampled_from((80, 443)),
    st.sampled_from((False, False, True, 60)),
    st.sampled_from(("ClusterIP", "ClusterIP", "NodePort", "LoadBalancer")),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
endpoint = st.tuples(st.sampled_from(POD_IPS), st.booleans()) | st.tuples(
    st.sampled_from(POD_IPS),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from((None, "n0", "n1")),
    st.sampled_from((None, "z0", "z1")),
)
slices = st.builds(
    endpoint_slice,
    ns_names,
    st.sampled_from(("e0", "e1", "e2", "e3")),
    st.sampled_from(SERVICES),
    st.lists(endpoint, max_size=4),
    st.sampled_from((8080, 9090)),
    st.booleans(),
)
legacy = st.builds(
    endpoints,
    ns_names,
    st.sampled_from(SERVICES),
    st.lists(st.sampled_from(POD_IPS), max_size=3, unique=True),
)
policies = st.builds(
    policy, ns_names, st.sampled_from(("np0", "np1")), apps, maybe_app, maybe_team, st.booleans()
)
any_object = st.one_of(namespaces, pods, pods, pods, services, slices, slices, legacy, policies, policies)
