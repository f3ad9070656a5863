"""Pass: NetworkPolicy objects -> per local pod and direction, a canonical rule set.

Semantics follow the NetworkPolicy API reference (see ../shared/reference/networkpolicy.md, part A):
isolation per pod and direction by podSelector + policyTypes; the union of every selecting
policy's rules; a peer is an ipBlock (cidr minus except, applied to pod IPs too), or pods chosen by
podSelector (own namespace) and/or namespaceSelector; named ports resolve on the pod that receives
the traffic (the local pod for ingress, each destination pod for egress); empty `from`/`to` means
any peer and empty `ports` any protocol and port.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence

from compiler.frontend.model import IPAddress, ObjectKey, Protocol
from compiler.frontend.policy import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType
from compiler.ir.nodes import ClusterIR, NamespaceNode, PodEndpoint
from compiler.ir.rules import PORT_MAX, PORT_MIN, AddressSet, PodIsolation, PolicyIR, PortRange, Rule, RuleSet
from compiler.passes.cidr import address_set, span, subtract
from compiler.passes.merge_rules import canonical_ports, merge_policy_rules
from compiler.passes.selectors import matches


class _Cluster:
    """Indexes the resolution needs, built once per run."""

    def __init__(self, ir: ClusterIR) -> None:
        self.namespaces: dict[str, NamespaceNode] = {ns.key.name: ns for ns in ir.namespaces}
        self.pods = tuple(p for p in ir.pods if p.ips)
        self.pods_by_ns: dict[str, list[PodEndpoint]] = defaultdict(list)
        self.pods_by_label: dict[tuple[str, str], list[PodEndpoint]] = defaultdict(list)
        for pod in self.pods:
            self.pods_by_ns[pod.key.namespace].append(pod)
            for label in pod.labels:
                self.pods_by_label[label].append(pod)

    def namespace_labels(self, name: str) -> tuple[tuple[str, str], ...]:
        ns = self.namespaces.get(name)
        return ns.labels if ns is not None else (("kubernetes.io/metadata.name", name),)

    def peer_pods(self, policy: NetworkPolicy, peer: PolicyPeer) -> list[PodEndpoint]:
        sel = peer.pod_selector
        if sel is not None and sel.match_labels:
            # Start from the pods carrying the selector's rarest required label, not from all pods.
            fewest = min((self.pods_by_label.get(kv, []) for kv in sel.match_labels), key=len)
            ns_sel = peer.namespace_selector
            if ns_sel is None:
                ns_ok = {policy.key.namespace}
            else:
                ns_ok = {ns for ns in self.pods_by_ns if matches(ns_sel, self.namespace_labels(ns))}
            return [p for p in fewest if p.key.namespace in ns_ok and matches(sel, p.labels)]
        if peer.namespace_selector is None:
            candidates: Iterable[PodEndpoint] = self.pods_by_ns.get(policy.key.namespace, [])
        else:
            sel = peer.namespace_selector
            candidates = [
                pod
                for ns, pods in self.pods_by_ns.items()
                if matches(sel, self.namespace_labels(ns))
                for pod in pods
            ]
        if peer.pod_selector is None:
            return list(candidates)
        return [pod for pod in candidates if matches(peer.pod_selector, pod.labels)]

    def addresses_in(self, aset: AddressSet) -> list[tuple[IPAddress, PodEndpoint]]:
        """Pod addresses inside the set, by bisection over all pod addresses sorted once."""
        if not hasattr(self, "_by_addr"):
            self._by_addr = sorted(((ip.version, int(ip)), ip, pod) for pod in self.pods for ip in pod.ips)
            self._keys = [k for k, _, _ in self._by_addr]
        out: list[tuple[IPAddress, PodEndpoint]] = []
        for net in aset.networks:
            lo, hi = span(net)
            i = bisect_left(self._keys, (net.version, lo))
            j = bisect_right(self._keys, (net.version, hi))
            out.extend((ip, pod) for _, ip, pod in self._by_addr[i:j])
        return out


def _peer_set(cluster: _Cluster, policy: NetworkPolicy, peers: Sequence[PolicyPeer]) -> AddressSet | None:
    if not peers:
        return None
    nets = []
    hosts: list[IPAddress] = []
    for peer in peers:
        if peer.ip_block is not None:
            nets.extend(subtract(peer.ip_block.cidr, peer.ip_block.except_))
        else:
            hosts.extend(ip for pod in cluster.peer_pods(policy, peer) for ip in pod.ips)
    return address_set(nets, hosts)


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
        # Egress: the destination pod names the port; only pod addresses inside the peer set count.
        by_number: dict[int, list[IPAddress]] = defaultdict(list)
        candidates = (
            [(ip, pod) for pod in cluster.pods for ip in pod.ips]
            if peers is None
            else cluster.addresses_in(peers)
        )
        for ip, pod in candidates:
            number = _named(pod, p.port, p.protocol)
            if number is not None:
                by_number[number].append(ip)
        for number, ips in sorted(by_number.items()):
            out.append(Rule(address_set((), ips), (PortRange(p.protocol, number, number),)))
    if numeric:
        out.append(Rule(peers, canonical_ports(numeric)))
    return out


def resolve_policies(ir: ClusterIR) -> PolicyIR:
    """Resolved and merged: what the lowering expects by default (the pipeline's `merge_rules`
    pass is the merging step; this is the shortcut for callers outside the pass pipeline)."""
    return merge_policy_rules(resolve_unmerged(ir))


def resolve_unmerged(ir: ClusterIR) -> PolicyIR:
    """Every API rule as resolved rules, only deduplicated; a rule's result is computed once and
    shared by every local pod it applies to (it depends on the pod only through ingress named ports)."""
    cluster = _Cluster(ir)
    memo: dict[tuple[ObjectKey, PolicyType, int, tuple[object, ...]], list[Rule]] = {}
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
                for i, rule in enumerate(api_rules):
                    local = pod.container_ports if direction is PolicyType.Ingress else ()
                    key = (pol.key, direction, i, tuple(local))
                    if key not in memo:
                        memo[key] = _rule_rules(cluster, pol, rule, direction, pod)
                    rules.extend(memo[key])
            keys: tuple[ObjectKey, ...] = tuple(sorted(pol.key for pol in selecting))
            canonical = tuple(sorted(set(rules), key=lambda r: r.sort_key))
            isolations.append(PodIsolation(pod.key, direction, pod.ips, RuleSet(canonical), keys))
    isolations.sort(key=lambda iso: (iso.direction.value, iso.pod))
    return PolicyIR(tuple(isolations))
