"""Pass: NetworkPolicy objects -> per local pod and direction, a canonical rule set.

Semantics follow the NetworkPolicy API reference (see ../shared/reference/networkpolicy.md, part A):
isolation per pod and direction by podSelector + policyTypes; the union of every selecting
policy's rules; a peer is an ipBlock (cidr minus except, applied to pod IPs too), or pods chosen by
podSelector (own namespace) and/or namespaceSelector; named ports resolve on the pod that receives
the traffic (the local pod for ingress, each destination pod for egress); empty `from`/`to` means
any peer and empty `ports` any protocol and port.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter

from k8s_offload.compiler.frontend.model import IPAddress, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType
from k8s_offload.compiler.ir.model import ClusterIR, NamespaceInfo, PodEndpoint
from k8s_offload.compiler.ir.rules import (
    PORT_MAX,
    PORT_MIN,
    AddressSet,
    Intervals,
    PodIsolation,
    PolicyIR,
    PortRange,
    Rule,
    RuleSet,
)
from tests.reference.passes_cidr import address_set, subtract
from tests.reference.passes_merge_rules import canonical_ports, merge_policy_rules
from tests.reference.passes_selectors import matches


class _Cluster:
    """Indexes the resolution needs: built once per run by `resolve_unmerged`, or kept up to date
    pod by pod by the incremental resolver (k8s_offload/compiler/passes/incremental_resolve.py)."""

    def __init__(self, ir: ClusterIR | None = None) -> None:
        self.namespaces: dict[str, NamespaceInfo] = {}
        self.pods: dict[ObjectKey, PodEndpoint] = {}
        self.pods_by_ns: dict[str, dict[ObjectKey, PodEndpoint]] = defaultdict(dict)
        self.pods_by_label: dict[tuple[str, str], dict[ObjectKey, PodEndpoint]] = defaultdict(dict)
        self._named: dict[tuple[str, Protocol], dict[ObjectKey, tuple[int, tuple[IPAddress, ...]]]] = {}
        """Per named container port (name, protocol) some egress rule asked for: the pods whose
        first port of that name and protocol has a number, with that number and their addresses."""
        self._named_sets: dict[tuple[str, Protocol], list[tuple[int, AddressSet]]] = {}
        """`_named` as address sets per number, in number order; dropped when its pods change."""
        if ir is not None:
            self.namespaces = {ns.key.name: ns for ns in ir.namespaces}
            for pod in ir.pods:
                self.add_pod(pod)

    def add_pod(self, pod: PodEndpoint) -> None:
        if not pod.ips:
            return
        self.pods[pod.key] = pod
        self.pods_by_ns[pod.key.namespace][pod.key] = pod
        for label in pod.labels:
            self.pods_by_label[label][pod.key] = pod
        for name_proto, index in self._named.items():
            number = _named(pod, *name_proto)
            if number is not None:
                index[pod.key] = (number, pod.ips)
                self._named_sets.pop(name_proto, None)

    def remove_pod(self, key: ObjectKey) -> None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return
        in_ns = self.pods_by_ns[key.namespace]
        del in_ns[key]
        if not in_ns:
            del self.pods_by_ns[key.namespace]
        for label in pod.labels:
            with_label = self.pods_by_label[label]
            del with_label[key]
            if not with_label:
                del self.pods_by_label[label]
        for name_proto, index in self._named.items():
            if index.pop(key, None) is not None:
                self._named_sets.pop(name_proto, None)

    def namespace_labels(self, name: str) -> tuple[tuple[str, str], ...]:
        ns = self.namespaces.get(name)
        return ns.labels if ns is not None else (("kubernetes.io/metadata.name", name),)

    def peer_pods(self, policy: NetworkPolicy, peer: PolicyPeer) -> list[PodEndpoint]:
        sel = peer.pod_selector
        if sel is not None and sel.match_labels:
            # Start from the pods carrying the selector's rarest required label, not from all pods.
            fewest = min((self.pods_by_label.get(kv, {}) for kv in sel.match_labels), key=len)
            ns_sel = peer.namespace_selector
            if ns_sel is None:
                ns_ok = {policy.key.namespace}
            else:
                ns_ok = {ns for ns in self.pods_by_ns if matches(ns_sel, self.namespace_labels(ns))}
            return [p for p in fewest.values() if p.key.namespace in ns_ok and matches(sel, p.labels)]
        if peer.namespace_selector is None:
            candidates: Iterable[PodEndpoint] = self.pods_by_ns.get(policy.key.namespace, {}).values()
        else:
            sel = peer.namespace_selector
            candidates = [
                pod
                for ns, pods in self.pods_by_ns.items()
                if matches(sel, self.namespace_labels(ns))
                for pod in pods.values()
            ]
        if peer.pod_selector is None:
            return list(candidates)
        return [pod for pod in candidates if matches(peer.pod_selector, pod.labels)]

    def named_sets(self, name: str, protocol: Protocol) -> list[tuple[int, AddressSet]]:
        """Per port number, in number order, the addresses of the pods that name the port so
        (a pod's first container port of that name and protocol counts)."""
        key = (name, protocol)
        found = self._named_sets.get(key)
        if found is None:
            index = self._named.get(key)
            if index is None:
                index = self._named[key] = {
                    pod.key: (number, pod.ips)
                    for pod in self.pods.values()
                    if (number := _named(pod, name, protocol)) is not None
                }
            by_number: dict[int, list[IPAddress]] = defaultdict(list)
            for number, ips in index.values():
                by_number[number].extend(ips)
            found = self._named_sets[key] = [
                (number, address_set((), by_number[number])) for number in sorted(by_number)
            ]
        return found


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    """The common part of two canonical interval sequences (sorted, disjoint, non-adjacent), in
    canonical form: each interval of the shorter one is looked up in the other by bisection."""
    if len(a) > len(b):
        a, b = b, a
    out: list[int] = []
    end = len(b)
    for k in range(0, len(a), 2):
        lo, hi = a[k], a[k + 1]
        t = bisect_left(b, lo) & ~1  # the first interval of b that does not end before lo
        while t < end and b[t] <= hi:
            out.append(max(lo, b[t]))
            out.append(min(hi, b[t + 1]))
            t += 2
    return tuple(out)


_IPS = attrgetter("ips")


def _peer_set(cluster: _Cluster, policy: NetworkPolicy, peers: Sequence[PolicyPeer]) -> AddressSet | None:
    if not peers:
        return None
    nets = []
    hosts: list[IPAddress] = []
    for peer in peers:
        if peer.ip_block is not None:
            nets.extend(subtract(peer.ip_block.cidr, peer.ip_block.except_))
        else:
            hosts.extend(chain.from_iterable(map(_IPS, cluster.peer_pods(policy, peer))))
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


PeerKey = tuple[str, tuple[PolicyPeer, ...]]
"""(the policy's namespace, a rule's peers): what one rule's peer set depends on besides the
cluster (a podSelector without namespaceSelector means the policy's namespace)."""


def _rule_rules(
    cluster: _Cluster,
    policy: NetworkPolicy,
    rule: PolicyRule,
    direction: PolicyType,
    local: PodEndpoint,
    peer_sets: dict[PeerKey, AddressSet | None] | None = None,
) -> list[Rule]:
    """One API rule as resolved rules: numeric ports together, named egress ports per number.

    `peer_sets` (the incremental resolver's) keeps peer sets across runs: a rule whose ports
    change keeps its peer set object, so the sets equal to it are found by identity, not by
    comparing thousands of networks."""
    if peer_sets is None:
        peers = _peer_set(cluster, policy, rule.peers)
    else:
        pkey = (policy.key.namespace, rule.peers)
        if pkey in peer_sets:
            peers = peer_sets[pkey]
        else:
            peers = peer_sets[pkey] = _peer_set(cluster, policy, rule.peers)
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
        for number, named in cluster.named_sets(p.port, p.protocol):
            if peers is not None:
                named = AddressSet(v4=_intersect(named.v4, peers.v4), v6=_intersect(named.v6, peers.v6))
                if not named:
                    continue
            out.append(Rule(named, (PortRange(p.protocol, number, number),)))
    if numeric:
        out.append(Rule(peers, canonical_ports(numeric)))
    return out


def resolve_policies(ir: ClusterIR) -> PolicyIR:
    """Resolved and merged: what the lowering expects by default (the pipeline's `merge_rules`
    pass is the merging step; this is the shortcut for callers outside the pass pipeline)."""
    return merge_policy_rules(resolve_unmerged(ir))


MemoKey = tuple[ObjectKey, PolicyType, int, tuple[object, ...]]
"""(policy, direction, rule index, the local pod's container ports for ingress): one API rule's
resolved rules depend on the local pod only through its ports, and only for ingress."""


def pod_isolation(
    cluster: _Cluster,
    policies: Iterable[NetworkPolicy],
    pod: PodEndpoint,
    direction: PolicyType,
    memo: dict[MemoKey, list[Rule]],
    used: list[MemoKey] | None = None,
    peer_sets: dict[PeerKey, AddressSet | None] | None = None,
    interned: dict[AddressSet, AddressSet] | None = None,
) -> PodIsolation | None:
    """The unmerged isolation of one local pod in one direction (None: not isolated), from the
    policies of its namespace; rule results come from `memo` or are added to it, and `used` gets
    every memo key read; `peer_sets` is passed to `_rule_rules`, and `interned` (when given)
    makes equal peer sets of new rule results one object."""
    selecting = [
        pol for pol in policies if direction in pol.policy_types and matches(pol.pod_selector, pod.labels)
    ]
    if not selecting:
        return None
    rules: list[Rule] = []
    local = tuple(pod.container_ports) if direction is PolicyType.Ingress else ()
    for pol in selecting:
        api_rules = pol.ingress if direction is PolicyType.Ingress else pol.egress
        for i, rule in enumerate(api_rules):
            key = (pol.key, direction, i, local)
            found = memo.get(key)
            if found is None:
                found = _rule_rules(cluster, pol, rule, direction, pod, peer_sets)
                if interned is not None:
                    found = [
                        r if r.peers is None else Rule(interned.setdefault(r.peers, r.peers), r.ports)
                        for r in found
                    ]
                memo[key] = found
            if used is not None:
                used.append(key)
            rules.extend(found)
    keys: tuple[ObjectKey, ...] = tuple(sorted(pol.key for pol in selecting))
    canonical = tuple(sorted(set(rules), key=lambda r: r.sort_key))
    return PodIsolation(pod.key, direction, pod.ips, RuleSet(canonical), keys)


def resolve_unmerged(ir: ClusterIR) -> PolicyIR:
    """Every API rule as resolved rules, only deduplicated; a rule's result is computed once and
    shared by every local pod it applies to (it depends on the pod only through ingress named ports)."""
    cluster = _Cluster(ir)
    memo: dict[MemoKey, list[Rule]] = {}
    by_ns: dict[str, list[NetworkPolicy]] = defaultdict(list)
    for pol in ir.network_policies:
        by_ns[pol.key.namespace].append(pol)
    isolations: list[PodIsolation] = []
    for direction in (PolicyType.Egress, PolicyType.Ingress):
        for pod in ir.pods:
            if not pod.local or not pod.ips:
                continue
            iso = pod_isolation(cluster, by_ns.get(pod.key.namespace, []), pod, direction, memo)
            if iso is not None:
                isolations.append(iso)
    isolations.sort(key=lambda iso: (iso.direction.value, iso.pod))
    return PolicyIR(tuple(isolations))
