"""Pass: NetworkPolicy objects -> per local pod and direction, a canonical rule set.

Semantics follow the NetworkPolicy API reference (see ../shared/reference/networkpolicy.md, part A):
isolation per pod and direction by podSelector + policyTypes; the union of every selecting
policy's rules; a peer is an ipBlock (cidr minus except, applied to pod IPs too), or pods chosen by
podSelector (own namespace) and/or namespaceSelector; named ports resolve on the pod that receives
the traffic (the local pod for ingress, each destination pod for egress); empty `from`/`to` means
any peer and empty `ports` any protocol and port.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from compiler.frontend.model import ObjectKey, Protocol
from compiler.frontend.policy import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType
from compiler.ir.nodes import ClusterIR, NamespaceNode, PodEndpoint
from compiler.ir.rules import PORT_MAX, PORT_MIN, AddressSet, PodIsolation, PolicyIR, PortRange, Rule, RuleSet
from compiler.passes.cidr import address_set, contains, host_network, subtract, union
from compiler.passes.selectors import matches


class _Cluster:
    """Indexes the resolution needs, built once per run."""

    def __init__(self, ir: ClusterIR) -> None:
        self.namespaces: dict[str, NamespaceNode] = {ns.key.name: ns for ns in ir.namespaces}
        self.pods = tuple(p for p in ir.pods if p.ips)
        self.pods_by_ns: dict[str, list[PodEndpoint]] = defaultdict(list)
        for pod in self.pods:
            self.pods_by_ns[pod.key.namespace].append(pod)

    def namespace_labels(self, name: str) -> tuple[tuple[str, str], ...]:
        ns = self.namespaces.get(name)
        return ns.labels if ns is not None else (("kubernetes.io/metadata.name", name),)

    def peer_pods(self, policy: NetworkPolicy, peer: PolicyPeer) -> list[PodEndpoint]:
        if peer.namespace_selector is None:
            candidates: Iterable[PodEndpoint] = self.pods_by_ns.get(policy.key.namespace, [])
        else:
            sel = peer.namespace_selector
            candidates = [pod for pod in self.pods if matches(sel, self.namespace_labels(pod.key.namespace))]
        if peer.pod_selector is None:
            return list(candidates)
        return [pod for pod in candidates if matches(peer.pod_selector, pod.labels)]


def _peer_set(cluster: _Cluster, policy: NetworkPolicy, peers: Sequence[PolicyPeer]) -> AddressSet | None:
    if not peers:
        return None
    nets = []
    for peer in peers:
        if peer.ip_block is not None:
            nets.extend(subtract(peer.ip_block.cidr, peer.ip_block.except_))
        else:
            nets.extend(host_network(ip) for pod in cluster.peer_pods(policy, peer) for ip in pod.ips)
    return address_set(nets)


def _numeric(port: PolicyPort) -> PortRange | None:
    if port.port is None:
        return PortRange(port.protocol, PORT_MIN, PORT_MAX)
    if isinstance(port.port, int):
        return PortRange(port.protocol, port.port, port.end_port if port.end_port is not None else port.port)
    return None


def _named(pod: PodEndpoint, name: str, protocol: Protocol) -> int | None:
    for cp in pod.container_ports:
        if cp.name == name and cp.protocol is protocol:
            return cp.port
    return None


def _rule_rules(
    cluster: _Cluster, policy: NetworkPolicy, rule: PolicyRule, direction: PolicyType, local: PodEndpoint
) -> list[Rule]:
    """One API rule as resolved rules: numeric ports together, named egress ports per number."""
    peers = _peer_set(cluster, policy, rule.peers)
    if peers is not None and not peers.networks:
        return []
    if not rule.ports:
        return [Rule(peers, None)]
    numeric = [r for p in rule.ports if (r := _numeric(p)) is not None]
    out: list[Rule] = []
    for p in rule.ports:
        if not isinstance(p.port, str):
            continue
        if direction is PolicyType.Ingress:
            number = _named(local, p.port, p.protocol)
            if number is not None:
                numeric.append(PortRange(p.protocol, number, number))
            continue
        # Egress: the destination pod names the port; only pods inside the peer set count.
        by_number: dict[int, list[PodEndpoint]] = defaultdict(list)
        for pod in cluster.pods:
            number = _named(pod, p.port, p.protocol)
            if number is None:
                continue
            if peers is None or any(contains(peers, ip) for ip in pod.ips):
                by_number[number].append(pod)
        for number, pods in sorted(by_number.items()):
            ips = [ip for pod in pods for ip in pod.ips if peers is None or contains(peers, ip)]
            out.append(
                Rule(address_set(host_network(ip) for ip in ips), (PortRange(p.protocol, number, number),))
            )
    if numeric:
        out.append(Rule(peers, canonical_ports(numeric)))
    return out


def canonical_ports(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Merge overlapping and adjacent ranges per protocol."""
    out: list[PortRange] = []
    for r in sorted(ranges):
        last = out[-1] if out else None
        if last is not None and last.protocol == r.protocol and r.low <= last.high + 1:
            out[-1] = PortRange(r.protocol, last.low, max(last.high, r.high))
        else:
            out.append(r)
    return tuple(out)


def merge_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Rules with equal peers share one rule (ports unioned), then rules with equal ports do
    (peers unioned): fewer bits, same allowed space."""
    by_peers: dict[AddressSet | None, list[Rule]] = defaultdict(list)
    for r in rules:
        by_peers[r.peers].append(r)
    step: list[Rule] = []
    for peers, group in by_peers.items():
        if any(r.ports is None for r in group):
            step.append(Rule(peers, None))
        else:
            step.append(Rule(peers, canonical_ports(p for r in group for p in r.ports or ())))
    by_ports: dict[tuple[PortRange, ...] | None, list[Rule]] = defaultdict(list)
    for r in step:
        by_ports[r.ports].append(r)
    merged: list[Rule] = []
    for ports, group in by_ports.items():
        if any(r.peers is None for r in group):
            merged.append(Rule(None, ports))
        else:
            merged.append(Rule(union(r.peers for r in group if r.peers is not None), ports))
    return tuple(sorted(set(merged), key=lambda r: r.sort_key))


def resolve_policies(ir: ClusterIR) -> PolicyIR:
    cluster = _Cluster(ir)
    by_ns: dict[str, list[NetworkPolicy]] = defaultdict(list)
    for pol in ir.network_policies:
        by_ns[pol.key.namespace].append(pol)
    isolations: list[PodIsolation] = []
    for direction in (PolicyType.Egress, PolicyType.Ingress):
        for pod in ir.pods:
            if not pod.local or not pod.ips:
                continue
            selecting = [
                pol
                for pol in by_ns.get(pod.key.namespace, [])
                if direction in pol.policy_types and matches(pol.pod_selector, pod.labels)
            ]
            if not selecting:
                continue
            rules: list[Rule] = []
            for pol in selecting:
                api_rules = pol.ingress if direction is PolicyType.Ingress else pol.egress
                for rule in api_rules:
                    rules.extend(_rule_rules(cluster, pol, rule, direction, pod))
            keys: tuple[ObjectKey, ...] = tuple(sorted(pol.key for pol in selecting))
            isolations.append(PodIsolation(pod.key, direction, pod.ips, RuleSet(merge_rules(rules)), keys))
    isolations.sort(key=lambda iso: (iso.direction.value, iso.pod))
    return PolicyIR(tuple(isolations))
