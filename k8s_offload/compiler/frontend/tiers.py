"""Typed cluster policy tiers (SIG Network Policy API, policy.networking.k8s.io).

AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1) and ClusterNetworkPolicy (v1alpha2)
say the same thing in two spellings, so all three become one `ClusterPolicy`: a tier, a priority,
a subject and ordered rules whose action is Allow, Deny or Pass (v1alpha2's Accept is Allow). The
kind stays in the key, so every message and trace names the object as the user wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork, Labels, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import LabelSelector

ANP_KIND = "AdminNetworkPolicy"
BANP_KIND = "BaselineAdminNetworkPolicy"
CNP_KIND = "ClusterNetworkPolicy"
TIER_KINDS = (ANP_KIND, BANP_KIND, CNP_KIND)


class Tier(StrEnum):
    """Evaluation order per direction: Admin, then NetworkPolicy, then Baseline, then allow."""

    Admin = "Admin"
    Baseline = "Baseline"


class TierAction(StrEnum):
    Allow = "Allow"
    """v1alpha1 Allow and v1alpha2 Accept: final, stateful (replies pass)."""
    Deny = "Deny"
    Pass = "Pass"
    """Admin tier only: skip the tier's remaining rules; the next tier decides."""


class PeerKind(StrEnum):
    namespaces = "namespaces"
    pods = "pods"
    nodes = "nodes"
    networks = "networks"
    domain_names = "domainNames"


@dataclass(frozen=True, slots=True)
class TierSelector:
    """Pods of the namespaces `namespaces` selects, narrowed by `pods` (None: all their pods).
    Subjects and the namespaces/pods peers share it; host-network pods never match it."""

    namespaces: LabelSelector
    pods: LabelSelector | None


@dataclass(frozen=True, slots=True)
class TierPeer:
    """Exactly one kind; the field of that kind is set."""

    kind: PeerKind
    selector: TierSelector | None = None
    """namespaces, pods."""
    nodes: LabelSelector | None = None
    networks: tuple[IPNetwork, ...] = ()
    domain_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TierPort:
    """A destination port: a protocol and a closed range, or a container port's name (matched per
    pod, on the protocol the container port declares). An empty range (v1alpha1 allows start > end)
    matches nothing."""

    protocol: Protocol | None
    low: int
    high: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TierRule:
    """One rule; `index` is its 0-based position in spec.ingress/spec.egress (messages say
    index + 1: "rule 2"); `ports` None means every port and protocol."""

    index: int
    name: str
    action: TierAction
    peers: tuple[TierPeer, ...]
    ports: tuple[TierPort, ...] | None


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    key: ObjectKey
    """kind AdminNetworkPolicy, BaselineAdminNetworkPolicy or ClusterNetworkPolicy; no namespace."""
    labels: Labels
    tier: Tier
    priority: int
    """0..1000, lower first; the BaselineAdminNetworkPolicy singleton has 0."""
    subject: TierSelector
    ingress: tuple[TierRule, ...]
    egress: tuple[TierRule, ...]
    location: Location = field(compare=False, repr=False)

    @property
    def has_domain_names(self) -> bool:
        return any(p.kind is PeerKind.domain_names for r in self.egress for p in r.peers)


@dataclass(frozen=True, slots=True)
class Node:
    """A v1 Node: its labels (for `nodes` peers) and the addresses of status.addresses that are
    IPs (InternalIP, ExternalIP), in API order."""

    key: ObjectKey
    labels: Labels
    addresses: tuple[IPAddress, ...]
    location: Location = field(compare=False, repr=False)


API_VERSIONS = {
    ANP_KIND: "policy.networking.k8s.io/v1alpha1",
    BANP_KIND: "policy.networking.k8s.io/v1alpha1",
    CNP_KIND: "policy.networking.k8s.io/v1alpha2",
}


def _selector(sel: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator.value, **({"values": list(r.values)} if r.values else {})}
            for r in sel.match_expressions
        ]
    return out


def _subject(sel: TierSelector) -> dict[str, Any]:
    if sel.pods is None:
        return {"namespaces": _selector(sel.namespaces)}
    return {"pods": {"namespaceSelector": _selector(sel.namespaces), "podSelector": _selector(sel.pods)}}


def _peer(peer: TierPeer) -> dict[str, Any]:
    if peer.selector is not None:
        return _subject(peer.selector)
    if peer.nodes is not None:
        return {"nodes": _selector(peer.nodes)}
    if peer.kind is PeerKind.networks:
        return {"networks": [str(n) for n in peer.networks]}
    return {"domainNames": list(peer.domain_names)}


def _port(kind: str, p: TierPort) -> dict[str, Any]:
    if kind == CNP_KIND:
        if p.name is not None:
            return {"destinationNamedPort": p.name}
        assert p.protocol is not None
        dport = {"number": p.low} if p.low == p.high else {"range": {"start": p.low, "end": p.high}}
        return {p.protocol.value.lower(): {"destinationPort": dport}}
    if p.name is not None:
        return {"namedPort": p.name}
    assert p.protocol is not None
    if p.low == p.high:
        return {"portNumber": {"protocol": p.protocol.value, "port": p.low}}
    return {"portRange": {"protocol": p.protocol.value, "start": p.low, "end": p.high}}


def to_manifest(policy: ClusterPolicy) -> dict[str, Any]:
    """The object in its API form: what the front end reads back into an equal `ClusterPolicy`
    (the textual IR carries cluster policies so, docs/ir.md)."""
    kind = policy.key.kind
    accept = "Accept" if kind == CNP_KIND else "Allow"

    def rules(items: tuple[TierRule, ...], peers_key: str) -> list[dict[str, Any]]:
        out = []
        for r in items:
            rule: dict[str, Any] = {"name": r.name} if r.name else {}
            rule["action"] = accept if r.action is TierAction.Allow else r.action.value
            rule[peers_key] = [_peer(p) for p in r.peers]
            if r.ports is not None:
                rule["protocols" if kind == CNP_KIND else "ports"] = [_port(kind, p) for p in r.ports]
            out.append(rule)
        return out

    spec: dict[str, Any] = {}
    if kind == CNP_KIND:
        spec["tier"] = policy.tier.value
    if kind != BANP_KIND:
        spec["priority"] = policy.priority
    spec["subject"] = _subject(policy.subject)
    if policy.ingress:
        spec["ingress"] = rules(policy.ingress, "from")
    if policy.egress:
        spec["egress"] = rules(policy.egress, "to")
    meta: dict[str, Any] = {"name": policy.key.name}
    if policy.labels:
        meta["labels"] = dict(policy.labels)
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta, "spec": spec}
