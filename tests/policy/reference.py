"""A NetworkPolicy evaluator written straight from the API reference, independent of the compiler.

It reads plain manifest dicts (not the compiler's model) and answers one question: is a
connection from a source to a destination pod IP, protocol and port allowed? It exists only to
check the compiler (property tests), so it favours being obviously right over being fast.

Sources: networking.k8s.io/v1 NetworkPolicySpec, NetworkPolicyPeer, NetworkPolicyPort and
IPBlock field documentation; meta/v1 LabelSelector.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    ip: str
    pod: Obj | None  # the Pod owning ip, or None for an address outside the cluster


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _ns(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def selector_matches(sel: Obj | None, labels: dict[str, str]) -> bool:
    """LabelSelector: matchLabels AND matchExpressions; an empty selector matches everything."""
    sel = sel or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In" and (key not in labels or labels[key] not in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Cluster:
    def __init__(self, objects: list[Obj]) -> None:
        self.pods = [o for o in objects if o["kind"] == "Pod"]
        self.policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        self.ns_labels: dict[str, dict[str, str]] = {}
        for o in objects:
            if o["kind"] == "Namespace":
                name = o["metadata"]["name"]
                self.ns_labels[name] = {**_labels(o), "kubernetes.io/metadata.name": name}

    def namespace_labels(self, name: str) -> dict[str, str]:
        return self.ns_labels.get(name, {"kubernetes.io/metadata.name": name})

    def pod_by_ip(self, ip: str) -> Obj | None:
        for p in self.pods:
            if ip in [x["ip"] for x in p.get("status", {}).get("podIPs", [])]:
                return p
        return None

    @staticmethod
    def policy_types(pol: Obj) -> list[str]:
        """Defaulting (API reference, policyTypes): Ingress, plus Egress if there are egress rules."""
        spec = pol["spec"]
        if spec.get("policyTypes"):
            return list(spec["policyTypes"])
        return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]

    def selecting(self, pod: Obj, direction: str) -> list[Obj]:
        return [
            pol
            for pol in self.policies
            if _ns(pol) == _ns(pod)
            and direction in self.policy_types(pol)
            and selector_matches(pol["spec"].get("podSelector"), _labels(pod))
        ]

    def peer_matches(self, pol: Obj, peer: Obj, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            ip = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            cidr = ipaddress.ip_network(block["cidr"])
            if ip.version != cidr.version or ip not in cidr:
                return False
            return not any(
                ip.version == ipaddress.ip_network(e).version and ip in ipaddress.ip_network(e)
                for e in block.get("except") or []
            )
        if other.pod is None:
            return False  # selectors only ever select pods
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.namespace_labels(_ns(other.pod))):
                return False
        elif _ns(other.pod) != _ns(pol):
            return False
        if "podSelector" in peer:
            return selector_matches(peer["podSelector"], _labels(other.pod))
        return True

    @staticmethod
    def port_matches(port: Obj, protocol: str, number: int, receiver: Obj | None) -> bool:
        if port.get("protocol", "TCP") != protocol:
            return False
        p = port.get("port")
        if p is None:
            return True
        if isinstance(p, int):
            return p <= number <= port.get("endPort", p)
        if receiver is None:
            return False  # a named port needs a pod to name it
        for c in receiver["spec"]["containers"]:
            for cp in c.get("ports") or []:
                if cp.get("name") == p and cp.get("protocol", "TCP") == protocol:
                    return bool(cp["containerPort"] == number)
        return False

    def allowing_rules(
        self, pod: Obj, direction: str, other: Endpoint, protocol: str, number: int
    ) -> list[tuple[str, int]]:
        """The rules of the policies selecting `pod` that allow it, as (namespace/name, index)."""
        receiver = pod if direction == "Ingress" else other.pod
        found = []
        for pol in self.selecting(pod, direction):
            rules = pol["spec"].get("ingress" if direction == "Ingress" else "egress") or []
            for i, rule in enumerate(rules):
                peers = rule.get("from" if direction == "Ingress" else "to") or []
                ports = rule.get("ports") or []
                if peers and not any(self.peer_matches(pol, peer, other) for peer in peers):
                    continue
                if ports and not any(self.port_matches(p, protocol, number, receiver) for p in ports):
                    continue
                found.append((f"{_ns(pol)}/{pol['metadata']['name']}", i))
        return found

    def allows(self, pod: Obj, direction: str, other: Endpoint, protocol: str, number: int) -> bool:
        """Does `pod`'s side allow it? Not isolated: yes; isolated: some rule of some policy."""
        if not self.selecting(pod, direction):
            return True
        return bool(self.allowing_rules(pod, direction, other, protocol, number))
