"""The upstream network-policy-api conformance cluster as manifests, and the transcribed cases.

Model (kubernetes-sigs/network-policy-api conformance/base/manifests.yaml): five namespaces
`network-policy-conformance-<house>` labelled `conformance-house: <house>` (and, as the API server
adds it, `kubernetes.io/metadata.name`); in each a StatefulSet of two pods `<name>-0`, `<name>-1`
labelled `conformance-house: <house>` (plus the controller's `statefulset.kubernetes.io/pod-name`),
serving TCP 80 (named `web`) and 8080, UDP 53 (named `dns`) and 5353, SCTP 9003 and 9005. The
`forbidden-forrest` pods (centaur) are host-network pods serving the suite's HostNetworkPorts
(34345..34352: TCP 34345 `web-34345`, 34346 `web-34346`, UDP 34347 `dns-34347`, 34349 `dns-34349`,
SCTP 34351, 34352), so each sits on its own node and its podIP is that node's address.

Upstream's namespaces and pods do not map onto tests/policy/conformance/model.py (x, y, z with a,
b, c): the policies select by `conformance-house` and by namespace name, and the node-peer tests
need host-network pods, so the upstream cluster is built here as a second model, as it is. Nodes
(node-a, node-b) are labelled `kubernetes.io/os: linux` like every Linux node; centaur-0 runs on
node-a and centaur-1 on node-b (their host ports cannot share a node); the regular pods all on
node-a, or spread as a scheduler would (the -0 pods on node-a, compiled with its node facts, the
-1 pods on node-b) so that the two sides of a connection are decided on different nodes.
Pods and nodes are dual-stack; `family` chooses the addresses the probes use (upstream probes
`status.podIP`, the first of the pod's addresses in a single-stack cluster of either family).
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

HERE = Path(__file__).parent
PREFIX = "network-policy-conformance-"
HOUSES = {
    "gryffindor": "harry-potter",
    "slytherin": "draco-malfoy",
    "hufflepuff": "cedric-diggory",
    "ravenclaw": "luna-lovegood",
    "forbidden-forrest": "centaur",
}
HOST_NETWORK_HOUSE = "forbidden-forrest"
HOST_NETWORK_PORTS = tuple(range(34345, 34353))
NODES = {"node-a": ("192.168.10.11", "fd00:10::11"), "node-b": ("192.168.10.12", "fd00:10::12")}
PODS = tuple(f"{house}/{name}-{i}" for house, name in HOUSES.items() for i in (0, 1))
VERSIONS = ("v1alpha1", "v1alpha2")


def namespace(house: str) -> str:
    return PREFIX + house


def node_of(ref: str, spread: bool = False) -> str:
    """centaur-1 on node-b, the other host-network pod on node-a; the regular pods on node-a, or,
    `spread`, the -1 pods on node-b (then node-a is compiled with its node facts)."""
    house, name = ref.split("/")
    if house == HOST_NETWORK_HOUSE or spread:
        return "node-b" if name.endswith("-1") else "node-a"
    return "node-a"


def pod_ips(ref: str) -> tuple[str, str]:
    """(IPv4, IPv6) of a pod: its node's for the host-network pods."""
    house, name = ref.split("/")
    if house == HOST_NETWORK_HOUSE:
        return NODES[node_of(ref)]
    n = list(HOUSES).index(house) + 1
    i = int(name.rsplit("-", 1)[1]) + 10
    return f"10.244.{n}.{i}", f"fd00:244:{n}::{i:x}"


def pod_ip(ref: str, family: int) -> str:
    return pod_ips(ref)[0 if family == 4 else 1]


def _containers(house: str, name: str) -> list[Obj]:
    if house == HOST_NETWORK_HOUSE:
        p = HOST_NETWORK_PORTS
        served = [(p[0], "TCP", f"web-{p[0]}"), (p[1], "TCP", f"web-{p[1]}"), (p[2], "UDP", f"dns-{p[2]}")]
        served += [(p[4], "UDP", f"dns-{p[4]}"), (p[6], "SCTP", None), (p[7], "SCTP", None)]
    else:
        served = [(80, "TCP", "web"), (8080, "TCP", None), (5353, "UDP", None), (53, "UDP", "dns")]
        served += [(9003, "SCTP", None), (9005, "SCTP", None)]
    out: list[Obj] = [{"name": f"{name}-client"}]
    for port, proto, port_name in served:
        c: Obj = {"name": f"{name}-{port}-{proto.lower()}"}
        if port_name is not None:  # upstream declares only the named ports
            c["ports"] = [{"containerPort": port, "protocol": proto, "name": port_name}]
        out.append(c)
    return out


def base_objects(spread: bool = False) -> list[Obj]:
    """Namespaces, Nodes and Pods of conformance/base/manifests.yaml (StatefulSets expanded)."""
    out: list[Obj] = []
    for house in HOUSES:
        ns = namespace(house)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "labels": {"conformance-house": house, "kubernetes.io/metadata.name": ns},
                },
            }
        )
    for node, ips in NODES.items():
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": node},
                },
                "status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]},
            }
        )
    for ref in PODS:
        house, pod = ref.split("/")
        name = HOUSES[house]
        spec: Obj = {"nodeName": node_of(ref, spread), "containers": _containers(house, name)}
        if house == HOST_NETWORK_HOUSE:
            spec["hostNetwork"] = True
        ips = pod_ips(ref)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod,
                    "namespace": namespace(house),
                    "labels": {"conformance-house": house, "statefulset.kubernetes.io/pod-name": pod},
                },
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "podIP": ips[0],
                    "podIPs": [{"ip": ip} for ip in ips],
                    "hostIP": NODES[node_of(ref, spread)][0],
                },
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class ProbeCase:
    client: str  # <house>/<pod>
    server: str
    protocol: str
    port: int
    expected: bool


@dataclass(frozen=True, slots=True)
class Step:
    run: str
    mutations: tuple[Obj, ...]
    probes: tuple[ProbeCase, ...]


@dataclass(frozen=True, slots=True)
class UpstreamTest:
    version: str
    name: str
    source: str
    objects: tuple[Obj, ...]
    steps: tuple[Step, ...]

    @property
    def id(self) -> str:
        return f"{self.version}-{self.name}"


def load(version: str) -> list[UpstreamTest]:
    raw = yaml.safe_load((HERE / f"upstream_{version}.yaml").read_text(encoding="utf-8"))
    tests = []
    for t in raw["tests"]:
        steps = tuple(
            Step(
                s["run"],
                tuple(s.get("mutations") or ()),
                tuple(ProbeCase(c, sv, proto, int(port), bool(ok)) for c, sv, proto, port, ok in s["probes"]),
            )
            for s in t["steps"]
        )
        tests.append(UpstreamTest(version, t["test"], t["source"], tuple(t["objects"]), steps))
    return tests


UPSTREAM = [t for v in VERSIONS for t in load(v)]


def _fill(value: Any, family: int) -> Any:
    """Replace `$host_cidr:<house>/<pod>` with the pod's /32 or /128."""
    if isinstance(value, dict):
        return {k: _fill(v, family) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, family) for v in value]
    if isinstance(value, str) and value.startswith("$host_cidr:"):
        ip = pod_ip(value.split(":", 1)[1], family)
        return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"
    return value


def _find(objects: list[Obj], kind: str, name: str, ns: str | None = None) -> Obj:
    for o in objects:
        meta = o["metadata"]
        if o["kind"] == kind and meta["name"] == name and meta.get("namespace") == ns:
            return o
    raise KeyError(f"{kind} {ns}/{name}")


def _walk(obj: Obj, path: list[Any]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def apply(objects: list[Obj], mutation: Obj, family: int) -> None:
    """Apply one transcribed mutation (see the data files' header) in place."""
    ((op, arg),) = mutation.items()
    if op == "swap":
        rules = _find(objects, arg["kind"], arg["name"])["spec"][arg["field"]]
        rules[arg["i"]], rules[arg["j"]] = rules[arg["j"]], rules[arg["i"]]
    elif op == "set":
        target = _walk(_find(objects, arg["kind"], arg["name"]), arg["path"][:-1])
        target[arg["path"][-1]] = _fill(copy.deepcopy(arg["value"]), family)
    elif op == "insert":
        target = _walk(_find(objects, arg["kind"], arg["name"]), arg["path"])
        target.insert(arg["index"], _fill(copy.deepcopy(arg["value"]), family))
    elif op == "delete":
        objects.remove(_find(objects, arg["kind"], arg["name"], arg.get("namespace")))
    elif op == "namespace_labels":
        meta = _find(objects, "Namespace", arg["name"])["metadata"]
        meta["labels"] = {**arg["labels"], "kubernetes.io/metadata.name": arg["name"]}
    else:
        raise ValueError(f"unknown mutation {op!r}")


def node_facts(spread: bool) -> str | None:
    """node-a's facts when the pods are spread (its regular pods on ports 10.., host-network pods
    have no device port), else None (every pod on the compiled node, default placements)."""
    if not spread:
        return None
    local = [r for r in PODS if node_of(r, True) == "node-a" and not r.startswith(HOST_NETWORK_HOUSE)]
    pods = [
        {
            "namespace": namespace(r.split("/")[0]),
            "name": r.split("/")[1],
            "port": 10 + i,
            "mac": f"02:00:00:00:01:{10 + i:02x}",
        }
        for i, r in enumerate(local)
    ]
    facts = {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": "node-a",
        "nodeIPs": list(NODES["node-a"]),
        "gateway": {"ipv4": "169.254.1.1", "ipv6": "fe80::1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": pods,
    }
    return yaml.safe_dump(facts)


def states(test: UpstreamTest, family: int, spread: bool = False) -> list[tuple[Step, list[Obj]]]:
    """Each step with the cluster's objects as that step probes them (mutations accumulate)."""
    objects = base_objects(spread) + [copy.deepcopy(o) for o in test.objects]
    out = []
    for step in test.steps:
        for m in step.mutations:
            apply(objects, m, family)
        out.append((step, copy.deepcopy(objects)))
    return out


def pod_object(objects: list[Obj], ref: str) -> Obj:
    house, name = ref.split("/")
    return _find(objects, "Pod", name, namespace(house))
