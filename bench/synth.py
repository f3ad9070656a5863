"""Seeded synthetic clusters as Kubernetes manifests, for the compiler benchmarks (issue 6) and the
live-cluster incremental benchmark.

A cluster is generated from a `Size` and a seed; the same pair always gives the same objects.
Shapes, chosen to resemble a real cluster rather than a best case for the compiler:
- namespaces with `team` and `env` labels; pods on nodes of 110 pods each, node k owning the pod
  CIDR 10.(k >> 8).(k & 255).0/24 (IPv4 only), container ports named `http`, `metrics`, `grpc`;
- Services selecting `app=<name>`: most have one port, some two ports onto the same target port
  (80 and 8080 -> http), and some are aliases of another Service's pods (canary/internal Services),
  so several Service ports share one backend set; endpoints come as EndpointSlices of at most
  100 endpoints, a few not ready or terminating (a pod's conditions are the same in every
  Service's slices, since the EndpointSlice controller derives them from the Pod);
- NetworkPolicies selecting apps, mixing podSelector, namespaceSelector (both alone and together),
  ipBlock with `except`, named ports, numeric ports and `endPort` ranges, ingress and egress, and a
  default deny in some namespaces.
Node facts place the first `local_pods` pods of node 0 on the device (node `node-0`).

Usage: python -m bench.synth SIZE OUTDIR [--seed N]   (writes JSON List files and node.yaml)
In code: `cluster(SIZES["S"], seed=1)` returns the manifests as dicts; `write(...)` writes them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PODS_PER_NODE = 110
"""The kubelet default maxPods; node 0 (the device's node) holds only `local_pods` pods."""
TEAMS = ("payments", "search", "web", "data", "ml", "infra", "mobile", "ads")
ENVS = ("prod", "staging", "dev")
CONTAINER_PORTS = (("http", 8080), ("metrics", 9090), ("grpc", 7070))


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    services: int
    endpoints: int
    policies: int
    local_pods: int = 110
    namespaces: int = 50
    admin_policies: int = 0
    """ClusterNetworkPolicies of the Admin tier (issue 20)."""
    baseline_policies: int = 0
    """ClusterNetworkPolicies of the Baseline tier."""
    base: str = ""
    """The size whose cluster this one is, tier policies added: its random stream is used, so the
    namespaces, pods, Services and NetworkPolicies are exactly that size's."""


SIZES = {
    "XS": Size("XS", services=50, endpoints=400, policies=20, local_pods=30, namespaces=5),
    "P": Size("P", services=100, endpoints=1_100, policies=200, namespaces=10),  # NetworkPolicy issue
    "S": Size("S", services=1_000, endpoints=10_000, policies=100),
    "M": Size("M", services=10_000, endpoints=100_000, policies=1_000),
    "L": Size("L", services=10_000, endpoints=100_000, policies=6_000),
    # M with cluster-wide policy tiers (issue 20): 50 Admin and 20 Baseline ClusterNetworkPolicies.
    "MT": Size("MT", 10_000, 100_000, 1_000, admin_policies=50, baseline_policies=20, base="M"),
    "XST": Size(
        "XST", 50, 400, 20, local_pods=30, namespaces=5, admin_policies=5, baseline_policies=2, base="XS"
    ),
}


def _obj(kind: str, api: str, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    out: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": meta}
    out.update(extra)
    return out


def _place(i: int, local_pods: int) -> tuple[int, int]:
    """(node, host index) of pod i: the first `local_pods` pods fill node 0."""
    if i < local_pods:
        return 0, i
    node, host = divmod(i - local_pods, PODS_PER_NODE)
    return node + 1, host


def _pod_ip(i: int, local_pods: int) -> str:
    node, host = _place(i, local_pods)
    return f"10.{node >> 8}.{node & 255}.{host + 1}"


@dataclass
class _App:
    namespace: str
    name: str
    pods: list[int]  # pod indices
    ports: list[tuple[str, int, str]]  # (service port name, service port, target port name)


def cluster(size: Size, seed: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Manifests by kind: `namespaces`, `pods`, `services`, `endpointslices`, `policies`, and
    `node` (a one-element list holding the node facts)."""
    rng = random.Random(f"{size.base or size.name}/{seed}")
    namespaces = [f"ns-{i}" for i in range(size.namespaces)]
    ns_objs = [
        _obj(
            "Namespace",
            "v1",
            ns,
            metadata_labels={"team": TEAMS[i % len(TEAMS)], "env": ENVS[i % len(ENVS)]},
        )
        for i, ns in enumerate(namespaces)
    ]
    for o in ns_objs:
        o["metadata"]["labels"] = o.pop("metadata_labels")

    # Apps: an alias Service reuses an earlier app's pods (shared backend set); the rest own pods.
    per_app = max(1, round(size.endpoints / size.services * 1.25))
    apps: list[_App] = []
    next_pod = 0
    endpoints = 0
    for s in range(size.services):
        ns = namespaces[s % len(namespaces)]
        two_ports = rng.random() < 0.25
        ports = [("http", 80, "http")] + ([("alt", 8080, "http")] if two_ports else [])
        if apps and rng.random() < 0.2:
            base = rng.choice(apps[-50:])
            apps.append(_App(base.namespace, f"{base.name}-alias{s}", base.pods, ports))
        else:
            n = max(1, min(3 * per_app, int(rng.expovariate(1 / per_app)) + 1))
            apps.append(_App(ns, f"app-{s}", list(range(next_pod, next_pod + n)), ports))
            next_pod += n
        endpoints += len(apps[-1].pods)
    owner: dict[int, _App] = {}
    for app in apps:
        for p in app.pods:
            owner.setdefault(p, app)

    pods: list[dict[str, Any]] = []
    local_facts: list[dict[str, Any]] = []
    for i in range(next_pod):
        app = owner[i]
        node = _place(i, size.local_pods)[0]
        name = f"{app.name}-{i}"
        pod = _obj(
            "Pod",
            "v1",
            name,
            app.namespace,
            spec={
                "nodeName": f"node-{node}",
                "containers": [
                    {
                        "name": "main",
                        "image": "example/app:1",
                        "ports": [{"name": n, "containerPort": p} for n, p in CONTAINER_PORTS],
                    }
                ],
            },
            status={
                "phase": "Running",
                "podIP": _pod_ip(i, size.local_pods),
                "podIPs": [{"ip": _pod_ip(i, size.local_pods)}],
            },
        )
        pod["metadata"]["labels"] = {"app": app.name, "tier": rng.choice(("fe", "be", "db"))}
        pods.append(pod)
        if node == 0:
            port = 16 + len(local_facts)
            local_facts.append(
                {
                    "namespace": app.namespace,
                    "name": name,
                    "port": port,
                    "mac": f"02:00:00:00:{port >> 8:02x}:{port & 255:02x}",
                }
            )

    services: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    conditions: dict[int, dict[str, bool]] = {}
    """Per pod: its endpoint conditions, drawn where its own app's slice lists it first."""
    for s, app in enumerate(apps):
        vip = f"10.96.{(s + 1) >> 8}.{(s + 1) & 255}"
        services.append(
            _obj(
                "Service",
                "v1",
                app.name,
                app.namespace,
                spec={
                    "clusterIP": vip,
                    "clusterIPs": [vip],
                    "selector": {"app": app.name.split("-alias")[0]},
                    "ports": [
                        {"name": n, "protocol": "TCP", "port": p, "targetPort": t} for n, p, t in app.ports
                    ],
                },
            )
        )
        slice_ports = [{"name": n, "protocol": "TCP", "port": 8080} for n, _, _ in app.ports]
        for c in range(0, len(app.pods), 100):
            eps = []
            for p in app.pods[c : c + 100]:
                r = rng.random()  # drawn for every endpoint: the rest of the stream stays as it was
                cond = conditions.setdefault(
                    p,
                    {"ready": True}
                    if r < 0.97
                    else {"ready": False, "serving": r < 0.99, "terminating": True},
                )
                eps.append(
                    {
                        "addresses": [_pod_ip(p, size.local_pods)],
                        "conditions": cond,
                        "nodeName": f"node-{_place(p, size.local_pods)[0]}",
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": app.namespace,
                            "name": f"{owner[p].name}-{p}",
                        },
                    }
                )
            sl = _obj(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                f"{app.name}-{c // 100}",
                app.namespace,
                addressType="IPv4",
                ports=slice_ports,
                endpoints=eps,
            )
            sl["metadata"]["labels"] = {"kubernetes.io/service-name": app.name}
            slices.append(sl)

    local_apps = [a for a in apps if a.pods[0] < size.local_pods]
    policies = [_policy(rng, i, namespaces, apps, local_apps, size.policies) for i in range(size.policies)]
    node = node_facts("node-0", local_facts)
    out = {
        "namespaces": ns_objs,
        "pods": pods,
        "services": services,
        "endpointslices": slices,
        "policies": policies,
    }
    if size.admin_policies or size.baseline_policies:
        # A stream of its own: the base size's objects above stay exactly as they are.
        trng = random.Random(f"{size.base or size.name}/{seed}/tiers")
        n_nodes = _place(max(0, next_pod - 1), size.local_pods)[0] + 1
        out["nodes"] = [_node(k) for k in range(n_nodes)]
        out["tiers"] = [
            _tier_policy(trng, "Admin", i, namespaces, apps, local_apps) for i in range(size.admin_policies)
        ] + [
            _tier_policy(trng, "Baseline", i, namespaces, apps, local_apps)
            for i in range(size.baseline_policies)
        ]
    out["node"] = [node]
    return out


def node_facts(node_name: str, pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The node facts document of `node_name` (node IP 192.168.0.10) with these pod attachments."""
    return {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": node_name,
        "nodeIPs": ["192.168.0.10"],
        "gateway": {"ipv4": "169.254.1.1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": pods,
    }


def _peer(rng: random.Random, namespaces: list[str], apps: list[_App]) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.35:
        return {"podSelector": {"matchLabels": {"app": rng.choice(apps).name.split("-alias")[0]}}}
    if kind < 0.55:
        return {"namespaceSelector": {"matchLabels": {"team": rng.choice(TEAMS)}}}
    if kind < 0.75:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": rng.choice(namespaces)}},
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
        }
    # ipBlock with except: a node range minus one or two of its /24s, or an external range.
    if rng.random() < 0.6:
        second = rng.randrange(0, 4)
        cidr = f"10.{second}.0.0/16"
        excepts = sorted({f"10.{second}.{rng.randrange(256)}.0/24" for _ in range(rng.randint(1, 2))})
    else:
        third = rng.randrange(256)
        cidr = f"192.168.{third}.0/24"
        excepts = [f"192.168.{third}.{rng.randrange(0, 256, 16)}/28"]
    return {"ipBlock": {"cidr": cidr, "except": excepts}}


def _ports(rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.4:
            out.append({"protocol": "TCP", "port": rng.choice(("http", "metrics", "grpc"))})
        elif r < 0.7:
            out.append(
                {"protocol": rng.choice(("TCP", "UDP")), "port": rng.choice((53, 80, 443, 5432, 6379))}
            )
        else:
            low = rng.randrange(1024, 60000)
            out.append({"protocol": "TCP", "port": low, "endPort": low + rng.choice((9, 99, 1000, 4999))})
    return out


def _policy(
    rng: random.Random,
    i: int,
    namespaces: list[str],
    apps: list[_App],
    local_apps: list[_App],
    n_policies: int,
) -> dict[str, Any]:
    # Some policies select pods on the device's node (only those produce entries there): about
    # five per local app, as a node sees a handful of the cluster's policies per workload.
    local_share = min(0.5, 5 * len(local_apps) / max(1, n_policies))
    app = rng.choice(local_apps) if rng.random() < local_share else apps[rng.randrange(len(apps))]
    ns = app.namespace
    if rng.random() < 0.05:
        return _obj(
            "NetworkPolicy",
            "networking.k8s.io/v1",
            f"deny-{i}",
            ns,
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
        )
    selector = {"matchLabels": {"app": app.name.split("-alias")[0]}}
    types = rng.choice((["Ingress"], ["Egress"], ["Ingress", "Egress"]))
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": types}
    for t, side in (("Ingress", "from"), ("Egress", "to")):
        if t not in types:
            continue
        rules = []
        for _ in range(rng.randint(1, 3)):
            rule: dict[str, Any] = {side: [_peer(rng, namespaces, apps) for _ in range(rng.randint(1, 3))]}
            if rng.random() < 0.8:
                rule["ports"] = _ports(rng)
            rules.append(rule)
        spec[t.lower()] = rules
    return _obj("NetworkPolicy", "networking.k8s.io/v1", f"np-{i}", ns, spec=spec)


def _node(k: int) -> dict[str, Any]:
    """Node k: its InternalIP 192.168.0.10 + k (node-0's is the node facts' address), every third
    an `infra` node."""
    address = str(ipaddress.ip_address("192.168.0.10") + k)
    node = _obj("Node", "v1", f"node-{k}", status={"addresses": [{"type": "InternalIP", "address": address}]})
    node["metadata"]["labels"] = {
        "kubernetes.io/os": "linux",
        "node-role": "infra" if k % 3 == 0 else "worker",
    }
    return node


def _tier_peer(rng: random.Random, namespaces: list[str], apps: list[_App], egress: bool) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.3:
        return {"namespaces": {"matchLabels": {"team": rng.choice(TEAMS)}}}
    if kind < 0.45:
        return {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": rng.choice(namespaces)}}}
    if kind < 0.7 or not egress:
        return {
            "pods": {
                "namespaceSelector": {"matchLabels": {"env": rng.choice(ENVS)}},
                "podSelector": {"matchLabels": {"app": rng.choice(apps).name.split("-alias")[0]}},
            }
        }
    if kind < 0.8:
        return {"nodes": {"matchLabels": {"node-role": rng.choice(("infra", "worker"))}}}
    nets = rng.choice(
        (
            ["0.0.0.0/0"],
            [f"10.{rng.randrange(4)}.0.0/16"],
            [f"192.168.{rng.randrange(256)}.0/24", f"172.16.{rng.randrange(256)}.0/24"],
            [f"203.0.113.{rng.randrange(0, 256, 8)}/29"],
        )
    )
    return {"networks": nets}


def _tier_protocols(rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.3:
            out.append({"destinationNamedPort": rng.choice(("http", "metrics", "grpc"))})
        elif r < 0.7:
            proto = rng.choice(("tcp", "udp"))
            out.append({proto: {"destinationPort": {"number": rng.choice((53, 80, 443, 5432, 6379))}}})
        else:
            low = rng.randrange(1024, 60000)
            out.append(
                {
                    "tcp": {
                        "destinationPort": {"range": {"start": low, "end": low + rng.choice((9, 99, 1000))}}
                    }
                }
            )
    return out


def _tier_policy(
    rng: random.Random, tier: str, i: int, namespaces: list[str], apps: list[_App], local_apps: list[_App]
) -> dict[str, Any]:
    """A ClusterNetworkPolicy (v1alpha2) of `tier`, shaped like cluster guardrails: subjects are
    teams or environments (or one app, often on the device's node), 1 to 4 rules per direction
    mixing Accept/Deny (and Pass in the Admin tier), peers of every kind, a third of the rules
    port-scoped. Priorities are distinct within a tier."""
    r = rng.random()
    if r < 0.35:
        subject: dict[str, Any] = {"namespaces": {"matchLabels": {"team": rng.choice(TEAMS)}}}
    elif r < 0.55:
        subject = {"namespaces": {"matchLabels": {"env": rng.choice(ENVS)}}}
    else:
        app = rng.choice(local_apps) if local_apps and rng.random() < 0.5 else rng.choice(apps)
        subject = {
            "pods": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": app.namespace}},
                "podSelector": {"matchLabels": {"app": app.name.split("-alias")[0]}},
            }
        }
    actions = ("Accept", "Deny", "Pass") if tier == "Admin" else ("Accept", "Deny")
    spec: dict[str, Any] = {"tier": tier, "priority": 10 * (i + 1), "subject": subject}
    for field, side in (("ingress", "from"), ("egress", "to")):
        if rng.random() < 0.25:
            continue
        rules = []
        for k in range(rng.randint(1, 4)):
            egress = field == "egress"
            peers = [_tier_peer(rng, namespaces, apps, egress) for _ in range(rng.randint(1, 2))]
            rule: dict[str, Any] = {"name": f"{field}-{k}", "action": rng.choice(actions), side: peers}
            pods_only = all(key in ("namespaces", "pods") for p in peers for key in p)
            if rng.random() < 0.35:
                protocols = _tier_protocols(rng)
                if not pods_only:  # the CRD forbids named ports next to networks and nodes peers
                    protocols = [p for p in protocols if "destinationNamedPort" not in p] or [
                        {"tcp": {"destinationPort": {"number": 443}}}
                    ]
                rule["protocols"] = protocols
            rules.append(rule)
        spec[field] = rules
    return _obj("ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2", f"{tier.lower()}-{i}", spec=spec)


def write(manifests: dict[str, list[dict[str, Any]]], outdir: Path) -> list[Path]:
    """One JSON List file per kind (JSON loads several times faster than YAML) and node.yaml
    (JSON is valid YAML). Returns the manifest files, without node.yaml."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for kind, objs in manifests.items():
        if kind == "node":
            (outdir / "node.yaml").write_text(json.dumps(objs[0], indent=1) + "\n")
            continue
        path = outdir / f"{kind}.json"
        path.write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, separators=(",", ":"))
        )
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    m = cluster(SIZES[args.size], args.seed)
    write(m, args.outdir)
    counts = ", ".join(f"{len(v)} {k}" for k, v in m.items())
    print(f"wrote {args.outdir}: {counts}")


if __name__ == "__main__":
    main()
