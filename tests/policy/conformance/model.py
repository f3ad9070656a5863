"""The cluster of the upstream NetworkPolicy e2e tests, written as manifests, and its probes.

Model (kubernetes/kubernetes test/e2e/network/netpol/model.go): namespaces x, y, z labelled
`ns=<name>`; pods a, b, c in each, labelled `pod=<name>`, with one container per (port, protocol) in
{80, 81} x {TCP, UDP, SCTP} whose port is named `serve-<port>-<proto>`; a ClusterIP Service
`s-<ns>-<pod>` per pod exposing the same ports (target port = port). Reachability follows the
upstream matrix API (reachability.go): default allowed, then `Expect*` calls; loopback is left out
(kubernetes/kubernetes#95879).

Variants: the address family the probes (and the Services) use, pods being dual-stack in both; and
one node holding every pod, or x on the compiled node and y, z on two others (the tracer compiles
those with default placements).
"""

from __future__ import annotations

import functools
import io
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_offload.analysis.trace import Probe, Tracer, Verdict
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in POD_NAMES)
SERVED_PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")
NODE_OF_NAMESPACE = {"x": "node-a", "y": "node-b", "z": "node-c"}
FLOW_EXPIRY_US = 3 * 3600 * 10**6  # longer than the flow cache's longest timeout (about 2 h 6 min)

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Topology:
    family: int  # 4 or 6: the family probes and Services use (pods are dual-stack)
    multi_node: bool  # x on node-a (compiled with node facts), y on node-b, z on node-c
    modes: tuple[bool, ...] = (False, True)  # probe pod IPs (False), through the Services (True)

    @property
    def id(self) -> str:
        mode = "" if len(self.modes) == 2 else ("-svc" if self.modes[0] else "-pods")
        return f"ipv{self.family}-{'3nodes' if self.multi_node else '1node'}{mode}"


# Probes cost about 5 ms each (scapy frames), so by default not every combination runs: IPv4 on
# one node in both probe modes, and IPv6 across three nodes through the Services (which also crosses
# the policy stages with pod addresses, after DNAT). CONFORMANCE_ALL_TOPOLOGIES=1 runs all four
# family x node layouts in both modes (about three times as long).
TOPOLOGIES = (
    tuple(Topology(f, m) for f in (4, 6) for m in (False, True))
    if os.environ.get("CONFORMANCE_ALL_TOPOLOGIES")
    else (Topology(4, False), Topology(6, True, (True,)))
)


def _index(ref: str) -> tuple[int, int]:
    ns, pod = ref.split("/")
    return NAMESPACES.index(ns) + 1, POD_NAMES.index(pod) + 10


def pod_ip(ref: str, family: int) -> str:
    n, p = _index(ref)
    return f"10.244.{n}.{p}" if family == 4 else f"fd00:244:{n}::{p:x}"


def host_cidr(ref: str, family: int) -> str:
    return f"{pod_ip(ref, family)}/{32 if family == 4 else 128}"


def wide_cidr(ref: str, family: int) -> str:
    """The /4 around a pod's address, as upstream's makeLargeCIDRForIP builds it."""
    return str(ipaddress.ip_network(f"{pod_ip(ref, family)}/4", strict=False))


def service_ip(ref: str, family: int) -> str:
    n, p = _index(ref)
    return f"10.96.{n}.{p}" if family == 4 else f"fd00:96:{n}::{p:x}"


def addresses(family: int) -> dict[str, str]:
    """Placeholders of cases.yaml: `host_x_b` (the pod's /32 or /128), `wide_x_b` (its /4)."""
    out: dict[str, str] = {}
    for ref in PODS:
        key = ref.replace("/", "_")
        out[f"host_{key}"] = host_cidr(ref, family)
        out[f"wide_{key}"] = wide_cidr(ref, family)
    return out


def container_ports() -> list[Obj]:
    return [
        {"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
        for port in SERVED_PORTS
        for proto in PROTOCOLS
    ]


def cluster_objects(
    topology: Topology,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Obj]:
    """Namespaces, pods, Services and EndpointSlices of the model; labels are added to the defaults."""
    pod_labels = pod_labels or {}
    ns_labels = ns_labels or {}
    fam = topology.family
    out: list[Obj] = []
    for ns in NAMESPACES:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"ns": ns, **ns_labels.get(ns, {})}},
            }
        )
    for ref in PODS:
        ns, name = ref.split("/")
        node = NODE_OF_NAMESPACE[ns] if topology.multi_node else "node-a"
        ips = [pod_ip(ref, 4), pod_ip(ref, 6)]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"pod": name, **pod_labels.get(ref, {})},
                },
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": f"cont-{cp['containerPort']}-{cp['protocol'].lower()}", "ports": [cp]}
                        for cp in container_ports()
                    ],
                },
                "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]},
            }
        )
        svc = f"s-{ns}-{name}"
        ports = [
            {"name": f"service-port-{proto.lower()}-{port}", "protocol": proto, "port": port}
            for port in SERVED_PORTS
            for proto in PROTOCOLS
        ]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc, "namespace": ns},
                "spec": {
                    "clusterIP": service_ip(ref, fam),
                    "clusterIPs": [service_ip(ref, fam)],
                    "ipFamilies": [f"IPv{fam}"],
                    "selector": {"pod": name},
                    "ports": ports,
                },
            }
        )
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc}-v{fam}",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": svc},
                },
                "addressType": f"IPv{fam}",
                "ports": ports,
                "endpoints": [
                    {
                        "addresses": [pod_ip(ref, fam)],
                        "conditions": {"ready": True},
                        "nodeName": node,
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": name},
                    }
                ],
            }
        )
    return out


def node_facts(topology: Topology) -> str | None:
    """node-a's facts when pods span nodes (x/a, x/b, x/c on ports 10..12), else None."""
    if not topology.multi_node:
        return None
    pods = [
        {"namespace": "x", "name": name, "port": 10 + i, "mac": f"02:00:00:00:00:{10 + i:02x}"}
        for i, name in enumerate(POD_NAMES)
    ]
    facts = {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": "node-a",
        "nodeIPs": ["192.168.10.11", "fd00:10::11"],
        "gateway": {"ipv4": "169.254.1.1", "ipv6": "fe80::1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": pods,
    }
    return yaml.safe_dump(facts)


def manifests(objects: Iterable[Obj]) -> str:
    return yaml.safe_dump_all(list(objects))


@functools.lru_cache(maxsize=8)  # a case's states; a tracer with its interpreters is a few MB
def tracer_for(text: str, facts: str | None) -> Tracer:
    """Compile one cluster state once; every matrix of that state runs against this tracer."""
    with tempfile.TemporaryDirectory() as tmp:
        node = None
        if facts is not None:
            node = Path(tmp) / "node.yaml"
            node.write_text(facts)
        result = compile_sources(["-"], node, stdin=io.StringIO(text))
    sim = interpreter_with(result.schema, result.lowered.bundle)
    return Tracer(result.manifests, result.ir, result.schema, sim)


class Reachability:
    """Expected verdicts for every ordered pair of distinct pods, as upstream's Reachability."""

    def __init__(self, default: bool = True) -> None:
        self.cells = {(a, b): default for a in PODS for b in PODS if a != b}

    @staticmethod
    def _selects(peer: str, ref: str) -> bool:
        """An upstream Peer: "" any pod, "x" any pod of namespace x, "x/a" that pod."""
        return peer in ("", ref, ref.split("/")[0])

    def expect_peer(self, src: str, dst: str, allowed: bool) -> Reachability:
        for a, b in self.cells:
            if self._selects(src, a) and self._selects(dst, b):
                self.cells[(a, b)] = allowed
        return self

    def expect(self, src: str, dst: str, allowed: bool) -> Reachability:
        self.cells[(src, dst)] = allowed
        return self

    def expect_all_ingress(self, pod: str, allowed: bool) -> Reachability:
        return self.expect_peer("", pod, allowed)

    def expect_all_egress(self, pod: str, allowed: bool) -> Reachability:
        return self.expect_peer(pod, "", allowed)


def render(cells: Mapping[tuple[str, str], bool]) -> str:
    """Upstream's table: rows are clients, columns servers; '.' allowed, 'X' denied, '-' loopback."""
    lines = ["-\t" + "\t".join(PODS)]
    for a in PODS:
        row = ["-" if a == b else ("." if cells[(a, b)] else "X") for b in PODS]
        lines.append(a + "\t" + "\t".join(row))
    return "\n".join(lines)


def probe_target(dst: str, family: int, via_service: bool) -> str:
    ns, name = dst.split("/")
    return f"svc:{ns}/s-{ns}-{name}" if via_service else pod_ip(dst, family)


def observe(
    tracer: Tracer, family: int, port: int, protocol: str, *, via_service: bool
) -> dict[tuple[str, str], Verdict]:
    """Probe every ordered pair of distinct pods; flows of earlier matrices have expired first."""
    tracer.clock += FLOW_EXPIRY_US
    out: dict[tuple[str, str], Verdict] = {}
    for a in PODS:
        for b in PODS:
            if a != b:
                out[(a, b)] = tracer.run(
                    Probe(a, probe_target(b, family, via_service), port, Protocol(protocol))
                )
    return out


def compare(expected: Reachability, observed: Mapping[tuple[str, str], Verdict]) -> str | None:
    """None when equal, else both tables and the differing pairs with the tracer's reasons."""
    got = {pair: v.allowed for pair, v in observed.items()}
    wrong = [pair for pair, ok in expected.cells.items() if got[pair] != ok]
    if not wrong:
        return None
    details = "\n".join(
        f"  {a} -> {b}: expected {'allowed' if expected.cells[(a, b)] else 'denied'}, "
        f"got {'allowed' if got[(a, b)] else 'denied'} ({observed[(a, b)].reason})"
        for a, b in wrong
    )
    return f"expected:\n{render(expected.cells)}\nobserved:\n{render(got)}\ndifferences:\n{details}"
