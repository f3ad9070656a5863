"""The three policy tiers evaluated straight from the API text, independent of the compiler.

It reads plain manifest dicts and answers: does a connection from one endpoint to another, on a
protocol and destination port, pass the cluster's policies? It exists only to check the compiler
(conformance data and property tests), so it is written to be obviously right, not fast.

Sources (kubernetes-sigs/network-policy-api): v1alpha1 AdminNetworkPolicy and
BaselineAdminNetworkPolicy types (apis/v1alpha1), v1alpha2 ClusterNetworkPolicy types
(apis/v1alpha2, the `Tier` and `Action` field documentation):
- per direction, the admin tier (policies by ascending priority, rules in written order) decides
  first; Allow/Accept and Deny are final, Pass skips the rest of the admin tier;
- then NetworkPolicy: if any NetworkPolicy selects the pod for that direction, it decides
  (tests/policy/reference.py, the NetworkPolicy evaluator, is reused for this tier);
- then the baseline tier (the BaselineAdminNetworkPolicy `default`, or Baseline-tier
  ClusterNetworkPolicies by ascending priority); then the Kubernetes default, allow;
- a connection needs the client's egress and the server's ingress to allow it;
- host-network pods are never subjects and never `namespaces`/`pods` peers; `nodes` peers match
  the addresses in a Node's status.addresses; `networks` match any address, pods' included;
- `domainNames` cannot be honoured here: such a peer matches nothing (the API's fail-closed rule:
  for an Accept rule, "treat the rule as matching no traffic"; a Deny or Pass rule with a peer it
  cannot honour is treated as "Deny all").

Equal priorities: the API lets an implementation apply either policy; this evaluator orders by
(priority, kind, name), and the tests that rely on an order use distinct priorities.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from tests.policy.reference import Cluster, Endpoint, selector_matches

Obj = dict[str, Any]

ADMIN_KINDS = ("AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy")
PEERS_V1ALPHA1_PODS = ("namespaces", "pods")
KNOWN_PEERS = ("namespaces", "pods", "nodes", "networks", "domainNames")


@dataclass(frozen=True, slots=True)
class Decision:
    """What decided one direction: the tier ("admin", "networkpolicy", "baseline", "default")
    and, for the policy tiers, the policy (kind, name) and the 1-based rule number."""

    allowed: bool
    tier: str
    kind: str = ""
    policy: str = ""
    rule: int = 0


@dataclass(frozen=True, slots=True)
class Peer:
    """One side of a connection: its address, and the Pod owning it unless the address is a
    host-network pod's (the node's) or outside the cluster."""

    ip: str
    pod: Obj | None


def _meta(obj: Obj) -> Obj:
    return dict(obj.get("metadata") or {})


def _labels(obj: Obj) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def host_network(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def tier_of(obj: Obj) -> str:
    """ "admin" or "baseline" for the three kinds."""
    if obj["kind"] == "AdminNetworkPolicy":
        return "admin"
    if obj["kind"] == "BaselineAdminNetworkPolicy":
        return "baseline"
    return "admin" if obj["spec"]["tier"] == "Admin" else "baseline"


def normal_action(action: str) -> str:
    """v1alpha2 Accept is v1alpha1 Allow."""
    return "Allow" if action == "Accept" else action


class TierCluster:
    """The cluster's objects: pods, namespaces, nodes, NetworkPolicies and the tier policies."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects
        self.np = Cluster(objects)
        self.pods = [o for o in objects if o["kind"] == "Pod"]
        self.nodes = [o for o in objects if o["kind"] == "Node"]
        tiered = [o for o in objects if o["kind"] in ADMIN_KINDS]
        key = lambda o: (int(o["spec"].get("priority", 0)), o["kind"], o["metadata"]["name"])  # noqa: E731
        self.admin = sorted((o for o in tiered if tier_of(o) == "admin"), key=key)
        self.baseline = sorted((o for o in tiered if tier_of(o) == "baseline"), key=key)

    # -- endpoints ---------------------------------------------------------------------------

    def peer_at(self, ip: str) -> Peer:
        """The endpoint owning an address: a (non host-network) pod, or nothing."""
        addr = ipaddress.ip_address(ip)
        for pod in self.pods:
            if host_network(pod):
                continue
            for entry in (pod.get("status") or {}).get("podIPs") or []:
                if ipaddress.ip_address(entry["ip"]) == addr:
                    return Peer(ip, pod)
        return Peer(ip, None)

    def node_addresses(self, node: Obj) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return {
            ipaddress.ip_address(a["address"])
            for a in (node.get("status") or {}).get("addresses") or []
            if a.get("type") in ("InternalIP", "ExternalIP")
        }

    # -- selection ---------------------------------------------------------------------------

    def _ns_labels(self, pod: Obj) -> dict[str, str]:
        return self.np.namespace_labels(str(_meta(pod).get("namespace") or "default"))

    def _pods_selector_matches(self, sel: Obj, pod: Obj) -> bool:
        return selector_matches(sel.get("namespaceSelector"), self._ns_labels(pod)) and selector_matches(
            sel.get("podSelector"), _labels(pod)
        )

    def subject_matches(self, pol: Obj, pod: Obj) -> bool:
        if host_network(pod):
            return False
        subject = pol["spec"]["subject"]
        if "namespaces" in subject:
            return selector_matches(subject["namespaces"], self._ns_labels(pod))
        if "pods" in subject:
            return self._pods_selector_matches(subject["pods"], pod)
        return False

    def peer_matches(self, peer: Obj, other: Peer) -> bool:
        if "namespaces" in peer:
            return other.pod is not None and selector_matches(peer["namespaces"], self._ns_labels(other.pod))
        if "pods" in peer:
            return other.pod is not None and self._pods_selector_matches(peer["pods"], other.pod)
        addr = ipaddress.ip_address(other.ip)
        if "nodes" in peer:
            return any(
                selector_matches(peer["nodes"], _labels(node)) and addr in self.node_addresses(node)
                for node in self.nodes
            )
        if "networks" in peer:
            for cidr in peer["networks"]:
                net = ipaddress.ip_network(cidr, strict=False)
                if net.version == addr.version and addr in net:
                    return True
            return False
        return False  # domainNames (or a field this evaluator does not know): matches nothing

    # -- ports -------------------------------------------------------------------------------

    @staticmethod
    def _named(receiver: Obj | None, name: str, protocol: str, port: int) -> bool:
        if receiver is None:
            return False  # a named port needs a pod to name it (not a node, not a network)
        for c in (receiver.get("spec") or {}).get("containers") or []:
            for cp in c.get("ports") or []:
                if cp.get("name") == name and cp.get("protocol", "TCP") == protocol:
                    return bool(cp["containerPort"] == port)
        return False

    def ports_match(self, rule: Obj, protocol: str, port: int, receiver: Obj | None) -> bool:
        """v1alpha1 `ports` or v1alpha2 `protocols`; absent means every protocol and port."""
        if "ports" in rule:
            for p in rule["ports"]:
                if "portNumber" in p:
                    n = p["portNumber"]
                    if n.get("protocol", "TCP") == protocol and int(n["port"]) == port:
                        return True
                elif "portRange" in p:
                    r = p["portRange"]
                    if r.get("protocol", "TCP") == protocol and int(r["start"]) <= port <= int(r["end"]):
                        return True
                elif "namedPort" in p and self._named(receiver, p["namedPort"], protocol, port):
                    return True
            return False
        if "protocols" in rule:
            for p in rule["protocols"]:
                if "destinationNamedPort" in p:
                    if self._named(receiver, p["destinationNamedPort"], protocol, port):
                        return True
                    continue
                for key, proto in (("tcp", "TCP"), ("udp", "UDP"), ("sctp", "SCTP")):
                    if key in p and proto == protocol:
                        dest = (p[key] or {}).get("destinationPort")
                        if dest is None:
                            return True
                        if "number" in dest and int(dest["number"]) == port:
                            return True
                        if "range" in dest and int(dest["range"]["start"]) <= port <= int(
                            dest["range"]["end"]
                        ):
                            return True
            return False
        return True

    # -- tiers -------------------------------------------------------------------------------

    def _rule_action(
        self, rule: Obj, peers_key: str, other: Peer, protocol: str, port: int, receiver: Obj | None
    ) -> str | None:
        """The rule's action if it matches the connection, else None."""
        action = normal_action(rule["action"])
        peers = rule.get(peers_key) or []
        unknown = [p for p in peers if not any(k in p for k in KNOWN_PEERS[:4])]
        if unknown and action in ("Deny", "Pass"):
            return "Deny"  # fail closed: a Deny or Pass rule with a peer it cannot honour denies all
        if not any(self.peer_matches(p, other) for p in peers):
            return None
        if not self.ports_match(rule, protocol, port, receiver):
            return None
        return action

    def _tier(
        self, policies: list[Obj], pod: Obj, direction: str, other: Peer, protocol: str, port: int
    ) -> Decision | None:
        """The first matching rule of the tier's policies selecting `pod` (Pass included), or None."""
        field, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        receiver = pod if direction == "Ingress" else other.pod
        tier = tier_of(policies[0]) if policies else ""
        for pol in policies:
            if not self.subject_matches(pol, pod):
                continue
            for i, rule in enumerate(pol["spec"].get(field) or [], 1):
                action = self._rule_action(rule, peers_key, other, protocol, port, receiver)
                if action is not None:
                    return Decision(
                        action == "Allow",
                        tier if action != "Pass" else "pass",
                        pol["kind"],
                        pol["metadata"]["name"],
                        i,
                    )
        return None

    def decide(self, pod: Obj, direction: str, other: Peer, protocol: str, port: int) -> Decision:
        """The decision for `pod`'s side (direction "Ingress" or "Egress") of a connection with
        `other`, walking admin -> NetworkPolicy -> baseline -> default allow."""
        if host_network(pod):
            return Decision(True, "default")  # no policy tier applies to host-network pods
        admin = self._tier(self.admin, pod, direction, other, protocol, port)
        if admin is not None and admin.tier == "admin":
            return admin
        if self.np.selecting(pod, direction):
            np_other = Endpoint(other.ip, other.pod)
            allowed = self.np.allows(pod, direction, np_other, protocol, port)
            return Decision(allowed, "networkpolicy")
        base = self._tier(self.baseline, pod, direction, other, protocol, port)
        if base is not None and base.tier != "pass":
            return base  # a Pass in the baseline tier hands over to the default
        return Decision(True, "default")

    def connection(
        self, client: Obj | None, client_ip: str, server_ip: str, protocol: str, port: int
    ) -> tuple[Decision, Decision]:
        """(client egress, server ingress) decisions; a side that is no pod of the cluster (an
        outside address, a node) is not policed and allows."""
        server = self.peer_at(server_ip)
        client_peer = Peer(client_ip, client if client is not None and not host_network(client) else None)
        egress = (
            self.decide(client, "Egress", server, protocol, port)
            if client is not None
            else Decision(True, "default")
        )
        ingress = (
            self.decide(server.pod, "Ingress", client_peer, protocol, port)
            if server.pod is not None
            else Decision(True, "default")
        )
        return egress, ingress

    def allows(self, client: Obj | None, client_ip: str, server_ip: str, protocol: str, port: int) -> bool:
        egress, ingress = self.connection(client, client_ip, server_ip, protocol, port)
        return egress.allowed and ingress.allowed
