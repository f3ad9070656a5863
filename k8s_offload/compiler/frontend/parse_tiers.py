"""Cluster policy tiers and Nodes, validated as their CRDs (kubernetes-sigs/network-policy-api
v0.1.x v1alpha1, and the v1alpha2 ClusterNetworkPolicy) and the API server validate them.

One reader serves the three kinds; `_Dialect` holds what differs between them (limits, action
names, port spelling, which peers exist), so each check is written once.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from dataclasses import dataclass

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import read_meta, read_protocol, unsupported
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.limits import MAX_SHOWN_CHARS
from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork, Protocol, net_sort_key
from k8s_offload.compiler.frontend.parse_policy import read_selector
from k8s_offload.compiler.frontend.policy import LabelSelector
from k8s_offload.compiler.frontend.tiers import (
    ANP_KIND,
    BANP_KIND,
    CNP_KIND,
    ClusterPolicy,
    Node,
    PeerKind,
    Tier,
    TierAction,
    TierPeer,
    TierPort,
    TierRule,
    TierSelector,
)

BANP_NAME = "default"
MAX_PRIORITY = 1000
MAX_RULE_NAME = 100
MAX_NETWORKS = 25
MAX_DOMAIN_NAMES = 25
MAX_CIDR_CHARS = 43
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")

_DOMAIN_NAME = re.compile(
    r"^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$"
)
"""The CRD's DomainName pattern, verbatim (its `A-z` range included)."""


@dataclass(frozen=True, slots=True)
class _Dialect:
    kind: str
    max_rules: int
    """Per direction (MaxItems of spec.ingress, spec.egress)."""
    max_peers: int
    max_ports: int
    actions: dict[str, TierAction]
    egress_peers: tuple[PeerKind, ...]
    ports_key: str
    """"ports" (v1alpha1) or "protocols" (v1alpha2)."""
    namespace_selector_required: bool
    """NamespacedPod.namespaceSelector: required in v1alpha1, optional in v1alpha2."""


_INGRESS_PEERS = (PeerKind.namespaces, PeerKind.pods)
_ALL_EGRESS = (PeerKind.namespaces, PeerKind.pods, PeerKind.nodes, PeerKind.networks, PeerKind.domain_names)
_ANP = _Dialect(
    ANP_KIND,
    100,
    100,
    100,
    {"Allow": TierAction.Allow, "Deny": TierAction.Deny, "Pass": TierAction.Pass},
    _ALL_EGRESS,
    "ports",
    True,
)
_BANP = _Dialect(
    BANP_KIND,
    100,
    100,
    100,
    {"Allow": TierAction.Allow, "Deny": TierAction.Deny},
    _ALL_EGRESS[:4],
    "ports",
    True,
)
_CNP = _Dialect(
    CNP_KIND,
    25,
    25,
    25,
    {"Accept": TierAction.Allow, "Deny": TierAction.Deny, "Pass": TierAction.Pass},
    _ALL_EGRESS,
    "protocols",
    False,
)


def parse_admin_network_policy(c: Checker, raw: Raw, location: Location) -> ClusterPolicy:
    return _parse(c, raw, location, _ANP)


def parse_baseline_admin_network_policy(c: Checker, raw: Raw, location: Location) -> ClusterPolicy:
    return _parse(c, raw, location, _BANP)


def parse_cluster_network_policy(c: Checker, raw: Raw, location: Location) -> ClusterPolicy:
    return _parse(c, raw, location, _CNP)


def _parse(c: Checker, raw: Raw, location: Location, d: _Dialect) -> ClusterPolicy:
    key, labels = read_meta(c, raw, d.kind, namespaced=False, name_rule=validation.dns1123_subdomain)
    if d is _BANP and key.name and key.name != BANP_NAME:
        c.fail(
            "metadata.name",
            f"Invalid value: {_quoted(key.name)}: Only one baseline admin network policy with "
            f'metadata.name="{BANP_NAME}" can be created in the cluster',
        )
    if raw.get("spec") is None:
        c.fail("spec", "Required value")
    spec = c.mapping(raw, "spec", "")
    tier = Tier.Baseline if d is _BANP else Tier.Admin
    if d is _CNP:
        text = c.string(spec, "tier", "spec", required=True)
        if text is not None:
            if text in (Tier.Admin.value, Tier.Baseline.value):
                tier = Tier(text)
            else:
                c.fail("spec.tier", unsupported(text, (t.value for t in Tier)))
    priority = 0
    if d is not _BANP:
        value = c.integer(spec, "priority", "spec", required=True)
        if value is not None:
            if 0 <= value <= MAX_PRIORITY:
                priority = value
            else:
                c.fail("spec.priority", f"must be between 0 and {MAX_PRIORITY}, got {value}")
    subject = _subject(c, spec, d)
    ingress = _rules(c, spec, "ingress", "from", _INGRESS_PEERS, d)
    egress = _rules(c, spec, "egress", "to", d.egress_peers, d)
    return ClusterPolicy(key, labels, tier, priority, subject, ingress, egress, location)


def _quoted(text: str) -> str:
    """A value in messages, as the API server quotes it, cut like `unsupported` cuts it."""
    if len(text) > MAX_SHOWN_CHARS:
        text = f"{text[:MAX_SHOWN_CHARS]}...({len(text)} characters)"
    return f'"{text}"'


def _one_of(c: Checker, raw: Raw, path: str, keys: tuple[str, ...]) -> str | None:
    """MinProperties=1, MaxProperties=1: the one key that is set, or None (reported)."""
    present = [k for k in keys if raw.get(k) is not None]
    if len(present) != 1:
        names = ", ".join(f"`{k}`" for k in keys)
        got = "none" if not present else ", ".join(f"`{k}`" for k in present)
        c.fail(path, f"must specify exactly one of {names}, got {got}")
        return None
    return present[0]


def _subject(c: Checker, spec: Raw, d: _Dialect) -> TierSelector:
    if spec.get("subject") is None:
        c.fail("spec.subject", "Required value")
        return TierSelector(LabelSelector((), ()), None)
    raw = c.mapping(spec, "subject", "spec")
    return _selector_peer(c, raw, "spec.subject", _one_of(c, raw, "spec.subject", ("namespaces", "pods")), d)


def _selector_peer(c: Checker, raw: Raw, path: str, which: str | None, d: _Dialect) -> TierSelector:
    """`namespaces: LabelSelector` or `pods: {namespaceSelector, podSelector}`."""
    if which == "pods":
        ppath = at(path, "pods")
        pods = c.mapping(raw, "pods", path)
        if d.namespace_selector_required and pods.get("namespaceSelector") is None:
            c.fail(at(ppath, "namespaceSelector"), "Required value")
        if pods.get("podSelector") is None:
            c.fail(at(ppath, "podSelector"), "Required value")
        return TierSelector(
            read_selector(c, pods, "namespaceSelector", ppath), read_selector(c, pods, "podSelector", ppath)
        )
    return TierSelector(read_selector(c, raw, "namespaces", path), None)


def _limit(c: Checker, path: str, items: Sized, most: int, least: int) -> None:
    if len(items) > most:
        c.fail(path, f"Too many: {len(items)}: must have at most {most} items")
    elif len(items) < least:
        c.fail(path, f"Invalid value: {len(items)}: must have at least {least} items")


def _rules(
    c: Checker, spec: Raw, key: str, peers_key: str, kinds: tuple[PeerKind, ...], d: _Dialect
) -> tuple[TierRule, ...]:
    entries = c.objects(spec, key, "spec")
    _limit(c, at("spec", key), entries, d.max_rules, 0)
    out: list[TierRule] = []
    for index, (path, raw) in enumerate(entries[: d.max_rules]):
        name = c.string(raw, "name", path) or ""
        if len(name) > MAX_RULE_NAME:
            c.fail(at(path, "name"), f"Too long: may not be more than {MAX_RULE_NAME} bytes, got {len(name)}")
        action: TierAction | None = None
        text = c.string(raw, "action", path, required=True)
        if text is not None:
            action = d.actions.get(text)
            if action is None:
                c.fail(at(path, "action"), unsupported(text, d.actions))
        if raw.get(peers_key) is None:
            c.fail(at(path, peers_key), "Required value")
        peer_entries = c.objects(raw, peers_key, path)
        _limit(c, at(path, peers_key), peer_entries, d.max_peers, 1)
        peers = tuple(_peer(c, ppath, p, kinds, d) for ppath, p in peer_entries[: d.max_peers])
        ports = _ports(c, raw, path, d)
        if ports is not None and any(p.name is not None for p in ports):
            no_named = [
                p for p in peers if p is not None and p.kind not in (PeerKind.namespaces, PeerKind.pods)
            ]
            if no_named:
                kinds_text = "/".join(k.value for k in kinds[2:])
                c.fail(
                    path,
                    f"Invalid value: {kinds_text} peer cannot be set with named ports since there are no "
                    f"named ports for {kinds_text}",
                )
        out.append(TierRule(index, name, action or TierAction.Deny, tuple(p for p in peers if p), ports))
    return tuple(out)


def _peer(c: Checker, path: str, raw: Raw, kinds: tuple[PeerKind, ...], d: _Dialect) -> TierPeer | None:
    which = _one_of(c, raw, path, tuple(k.value for k in kinds))
    if which is None:
        return None
    kind = PeerKind(which)
    if kind in (PeerKind.namespaces, PeerKind.pods):
        return TierPeer(kind, selector=_selector_peer(c, raw, path, which, d))
    if kind is PeerKind.nodes:
        return TierPeer(kind, nodes=read_selector(c, raw, "nodes", path))
    if kind is PeerKind.networks:
        return TierPeer(kind, networks=_networks(c, raw, path))
    names = _set_of_strings(c, raw, "domainNames", path, MAX_DOMAIN_NAMES)
    for npath, name in names:
        if not _DOMAIN_NAME.match(name):
            reason = "must be a domain name, optionally prefixed by `*.`"
            c.fail(npath, f"Invalid value: {_quoted(name)}: {reason}")
    return TierPeer(kind, domain_names=tuple(n for _, n in names))


def _set_of_strings(c: Checker, raw: Raw, key: str, path: str, most: int) -> list[tuple[str, str]]:
    """A +listType=set list of strings, 1..most items, no duplicates."""
    entries = c.strings(raw, key, path)
    _limit(c, at(path, key), entries, most, 1)
    seen: set[str] = set()
    for epath, text in entries:
        if text in seen:
            c.fail(epath, f"Duplicate value: {_quoted(text)}")
        seen.add(text)
    return entries


def _networks(c: Checker, raw: Raw, path: str) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for npath, text in _set_of_strings(c, raw, "networks", path, MAX_NETWORKS):
        if len(text) > MAX_CIDR_CHARS:
            c.fail(npath, f"Too long: may not be more than {MAX_CIDR_CHARS} bytes, got {len(text)}")
            continue
        cidr = validation.parse_cidr(text)
        if isinstance(cidr, str):
            c.fail(npath, f"Invalid CIDR format provided: {cidr}")
        else:
            out.append(cidr)
    return tuple(sorted(set(out), key=net_sort_key))


def _ports(c: Checker, raw: Raw, path: str, d: _Dialect) -> tuple[TierPort, ...] | None:
    if raw.get(d.ports_key) is None:
        return None
    entries = c.objects(raw, d.ports_key, path)
    _limit(c, at(path, d.ports_key), entries, d.max_ports, 1)
    read = _anp_port if d.ports_key == "ports" else _cnp_protocol
    ports = [read(c, ppath, p) for ppath, p in entries[: d.max_ports]]
    return tuple(dict.fromkeys(p for p in ports if p is not None))


def _port_number(c: Checker, raw: Raw, key: str, path: str) -> int | None:
    value = c.integer(raw, key, path, required=True)
    if value is not None and (reason := validation.port_number(value)) is not None:
        c.fail(at(path, key), reason)
        return None
    return value


def _range(c: Checker, raw: Raw, path: str, protocol: Protocol, *, strict: bool) -> TierPort | None:
    start = _port_number(c, raw, "start", path)
    end = _port_number(c, raw, "end", path)
    if start is None or end is None:
        return None
    if strict and start >= end:
        c.fail(path, f"Invalid value: Start port must be less than End port, got start {start}, end {end}")
        return None
    return TierPort(protocol, start, end)


def _anp_port(c: Checker, path: str, raw: Raw) -> TierPort | None:
    """v1alpha1 AdminNetworkPolicyPort: portNumber, namedPort or portRange. Its CRD does not check
    start < end of a portRange; an empty range matches nothing."""
    which = _one_of(c, raw, path, ("portNumber", "namedPort", "portRange"))
    if which == "namedPort":
        name = c.string(raw, "namedPort", path, required=True)
        return TierPort(None, 0, 0, name) if name else None
    if which is None:
        return None
    sub_path = at(path, which)
    sub = c.mapping(raw, which, path)
    protocol = read_protocol(c, sub, sub_path)
    if which == "portRange":
        return _range(c, sub, sub_path, protocol, strict=False)
    port = _port_number(c, sub, "port", sub_path)
    return TierPort(protocol, port, port) if port is not None else None


def _cnp_protocol(c: Checker, path: str, raw: Raw) -> TierPort | None:
    """v1alpha2 ClusterNetworkPolicyProtocol: tcp, udp or sctp with destinationPort {number |
    range}, or destinationNamedPort."""
    which = _one_of(c, raw, path, ("tcp", "udp", "sctp", "destinationNamedPort"))
    if which == "destinationNamedPort":
        name = c.string(raw, "destinationNamedPort", path, required=True)
        return TierPort(None, 0, 0, name) if name else None
    if which is None:
        return None
    protocol = Protocol(which.upper())
    sub_path = at(path, which)
    sub = c.mapping(raw, which, path)
    if sub.get("destinationPort") is None:
        c.fail(at(sub_path, "destinationPort"), "Required value")
        return None
    dpath = at(sub_path, "destinationPort")
    dport = c.mapping(sub, "destinationPort", sub_path)
    kind = _one_of(c, dport, dpath, ("number", "range"))
    if kind == "range":
        return _range(c, c.mapping(dport, "range", dpath), at(dpath, "range"), protocol, strict=True)
    if kind == "number":
        port = _port_number(c, dport, "number", dpath)
        return TierPort(protocol, port, port) if port is not None else None
    return None


def parse_node(c: Checker, raw: Raw, location: Location) -> Node:
    key, labels = read_meta(c, raw, "Node", namespaced=False, name_rule=validation.dns1123_subdomain)
    status = c.mapping(raw, "status", "")
    addresses: list[IPAddress] = []
    for apath, entry in c.objects(status, "addresses", "status"):
        kind = c.string(entry, "type", apath, required=True)
        text = c.string(entry, "address", apath, required=True)
        if kind not in NODE_ADDRESS_TYPES or text is None:
            continue  # Hostname, InternalDNS, ExternalDNS: names, not peers
        parsed = validation.parse_ip(text)
        if isinstance(parsed, str):
            c.fail(at(apath, "address"), parsed)
        elif parsed not in addresses:
            addresses.append(parsed)
    return Node(key, labels, tuple(addresses), location)
