"""What each peer design would install on one node, for the clusters of our compiler benchmark
(bench/synth.py), beside our own counts from the same run (issue 21, item 6).

Each model is a small function over our IR (`ClusterIR`: the same pods, Services, endpoints and
NetworkPolicies our compiler reads, after the same input checks) and counts what the peer's
documented design installs on the node that holds the IR's local pods. Selector matching, named
ports and endpoint choice come from our own resolution (`passes/resolve_policy.py`,
`lower/services.py`), so the peers and we start from the same Kubernetes semantics; what differs
is the data-plane layout. Sources read for each model (read, never copied):

- Antrea (OVS flows and groups), v1.15+ as described in antrea-io/antrea
  docs/design/ovs-pipeline.md (tables EgressRule, EgressDefaultRule, EgressMetric, IngressRule,
  IngressDefaultRule, IngressMetric, ServiceLB, EndpointDNAT, SessionAffinity) and its code:
  pkg/controller/networkpolicy/networkpolicy_controller.go (processNetworkPolicy: one rule per
  API rule, a deny-all rule for an isolated direction without rules, empty peers as 0.0.0.0/0),
  pkg/agent/controller/networkpolicy/pod_reconciler.go (computeOFRulesForAdd,
  groupMembersByServices, ipBlocksToOFAddresses), pkg/agent/openflow/network_policy.go
  (conjMatchFlowContext: one clause flow per distinct table/priority/match, shared by every rule
  using it; calculateClauses; portsToBitRanges), pkg/agent/openflow/pipeline.go
  (conjunctionActionFlow, allowRulesMetricFlows, serviceLBFlows), pkg/agent/openflow/client.go
  (InstallEndpointFlows) and pkg/agent/proxy/proxier.go (installService: groups per Service port).
- Cilium (BPF map entries): Documentation/network/ebpf/maps.rst (policy map: endpoint scope,
  16k "allowed identity + port + protocol pairs" by default, `--bpf-policy-map-max`; the Service LB
  map sizing section), pkg/maps/policymap/policymap.go (key: identity, direction, protocol,
  destination port with a port prefix length for ranges; MaxEntries 16384) and
  pkg/maps/lbmap/lbmap.go (a master slot 0 and one slot per backend per frontend, a reverse-NAT
  entry per frontend; backends in their own map by backend ID).
- kube-proxy iptables mode: kubernetes/kubernetes pkg/proxy/iptables/proxier.go (syncProxyRules:
  KUBE-SERVICES, KUBE-SVC-/KUBE-SVL-, KUBE-EXT-, KUBE-NODEPORTS, KUBE-SEP- chains;
  writeServiceToEndpointRules).
- Calico (Felix, iptables data plane) for NetworkPolicy: projectcalico/calico
  libcalico-go/lib/backend/k8s/conversion/conversion.go (k8sRuleToCalico: one Calico rule per
  peer and protocol, ports of a protocol merged by SimplifyPorts), felix/calc/rule_scanner.go
  (an IP set per selector, named ports as (IP, port) sets, an empty selector for ingress named
  ports meaning every endpoint), felix/rules/policy.go (ProtoRuleToIptablesRules: match blocks,
  15-slot multiport splits, mark-and-return per allow rule, trailing return stripped) and
  felix/rules/endpoints.go (per-endpoint chains, policy groups).

Simplifications common to all models: only what grows with the cluster is counted (each design's
fixed flows, chains and rules, a few dozen, are left out, as are our own fixed default entries);
IPv4 and IPv6 are counted per family present among the local pods; state learned at run time
(OVS learned affinity flows, Cilium's affinity and conntrack maps, `recent` lists) is not
counted. Each model function states its own further simplifications.

Run: python -m bench.peers [--sizes S,M] [--seed N] [--json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import bundle_counts, cluster_dir
from bench.synth import SIZES
from k8s_offload.compiler.compilation import Compilation
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.engine.core import Reads
from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import NetworkPolicy, PolicyPeer, PolicyPort, PolicyType
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    FrontendKind,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.ir.rules import interval_blocks, merge_intervals
from k8s_offload.compiler.lower.services import cluster_backends, is_local, local_backends
from k8s_offload.compiler.passes.cidr import subtract
from k8s_offload.compiler.passes.resolve_policy import ResolutionView, named_port_number
from k8s_offload.compiler.passes.selectors import matches

POLICY_MAP_MAX = 16_384
"""Cilium's default per-endpoint policy map size (`--bpf-policy-map-max`)."""

DIRECTIONS = (PolicyType.Ingress, PolicyType.Egress)

PeerPods = Callable[[str, PolicyPeer], list[PodEndpoint]]
"""(the policy's namespace, a selector peer) -> the pods with addresses it selects."""

# --- The cluster as the peers see it -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerView:
    """One NetworkPolicyPeer of a rule: selected pods (cluster-wide) or an ipBlock."""

    spec: PolicyPeer
    namespace: str
    """The policy's namespace: the scope of a podSelector without namespaceSelector."""
    pods: tuple[PodEndpoint, ...]
    """Pods with an address the selectors pick, in IR order; () for an ipBlock."""

    @property
    def selector_key(self) -> Hashable:
        """What names this peer's selector in a peer design (a Calico IP set, an Antrea address
        group): the selectors and, for a podSelector alone, the namespace it is scoped to."""
        scope = self.namespace if self.spec.namespace_selector is None else None
        return (scope, self.spec.pod_selector, self.spec.namespace_selector)

    def block_networks(self, families: frozenset[int]) -> list[IPNetwork]:
        """An ipBlock as the fewest networks covering cidr minus except (what Antrea's
        DiffFromCIDRs gives), in the enabled families only; [] for a selector peer."""
        block = self.spec.ip_block
        if block is None or block.cidr.version not in families:
            return []
        return subtract(block.cidr, block.except_)


@dataclass(frozen=True, slots=True)
class RuleView:
    peers: tuple[PeerView, ...] | None
    """None: `from`/`to` empty, any peer."""
    ports: tuple[PolicyPort, ...]
    """(): any protocol and port."""


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A NetworkPolicy that selects at least one local pod: only those reach a node's data plane
    in every design here."""

    key: ObjectKey
    pod_selector: Hashable
    applied: tuple[PodEndpoint, ...]
    """Local pods with an address the podSelector picks, in IR order."""
    ingress: tuple[RuleView, ...] | None
    """None: the policy does not isolate ingress (not in policyTypes)."""
    egress: tuple[RuleView, ...] | None

    def rules(self, direction: PolicyType) -> tuple[RuleView, ...] | None:
        return self.ingress if direction is PolicyType.Ingress else self.egress


def _rule_views(
    peer_pods: PeerPods, policy: NetworkPolicy, direction: PolicyType
) -> tuple[RuleView, ...] | None:
    if direction not in policy.policy_types:
        return None
    api = policy.ingress if direction is PolicyType.Ingress else policy.egress
    out = []
    for rule in api:
        peers = None
        if rule.peers:
            peers = tuple(
                PeerView(
                    peer,
                    policy.key.namespace,
                    () if peer.ip_block is not None else tuple(peer_pods(policy.key.namespace, peer)),
                )
                for peer in rule.peers
            )
        out.append(RuleView(peers, rule.ports))
    return tuple(out)


def policy_views(ir: ClusterIR) -> list[PolicyView]:
    """The policies of `ir` that select a local pod, with every peer's pods chosen by our own
    resolver (`resolve_policy.ResolutionView.peer_pods`, the one definition of peer selection), read once
    from a compilation of `ir` run up to policy resolution."""
    c = Compilation(None, None, track=False, ir=ir, until="resolve_policy")  # type: ignore[arg-type]
    c.run()
    resolver = ResolutionView(Reads(c.engine, None), c.b.t)
    try:
        return _policy_views(ir, resolver.peer_pods)
    finally:
        c.release()


def _policy_views(ir: ClusterIR, peer_pods: PeerPods) -> list[PolicyView]:
    local = [p for p in ir.pods if p.local and p.ips]
    views = []
    for pol in ir.network_policies:
        applied = tuple(
            p for p in local if p.key.namespace == pol.key.namespace and matches(pol.pod_selector, p.labels)
        )
        if applied:
            views.append(
                PolicyView(
                    pol.key,
                    pol.pod_selector,
                    applied,
                    _rule_views(peer_pods, pol, PolicyType.Ingress),
                    _rule_views(peer_pods, pol, PolicyType.Egress),
                )
            )
    return views


def node_families(local: Iterable[PodEndpoint]) -> frozenset[int]:
    """IP versions the node runs (those of its local pods; IPv4 when none): the peers enable a
    family per node."""
    return frozenset(ip.version for p in local for ip in p.ips) or frozenset({4})


def port_blocks(port: PolicyPort) -> list[tuple[int, int]]:
    """A port (range) as (value, prefix length) blocks over 16 bits: how Antrea (portsToBitRanges)
    and Cilium (port prefix keys) match a range; a missing port is one block of length 0."""
    if port.port is None:
        return [(0, 0)]
    assert isinstance(port.port, int), "named ports are resolved before"
    high = port.end_port if port.end_port is not None and port.end_port > port.port else port.port
    return list(interval_blocks((port.port, high), 16))


def resolve_port(port: PolicyPort, pod: PodEndpoint) -> PolicyPort:
    """A named port as `pod` numbers it; the port unchanged when numeric or unknown to the pod."""
    if isinstance(port.port, str):
        number = named_port_number(pod.container_ports, port.port, port.protocol)
        if number is not None:
            return PolicyPort(port.protocol, number, None)
    return port


# --- Antrea --------------------------------------------------------------------------------------


@dataclass
class _OvsRuleTable:
    """One of Antrea's K8s NetworkPolicy rule tables (IngressRule or EgressRule) on one node.

    Every K8s NetworkPolicy rule has the same (normal) priority, so a clause flow is one per
    distinct match in the table whatever the number of rules using it (conjMatchFlowContext)."""

    from_matches: set[Hashable]
    to_matches: set[Hashable]
    service_matches: set[Hashable]
    drop_matches: set[Hashable]
    rules: int = 0

    def add(
        self,
        from_: Iterable[Hashable],
        to: Iterable[Hashable],
        services: Iterable[Hashable] | None,
        drop_side: str,
    ) -> None:
        froms, tos = set(from_), set(to)
        self.rules += 1
        self.from_matches |= froms
        self.to_matches |= tos
        if services is not None:
            self.service_matches.update(services)
        # The applied-to clause (ingress: the destination ports, egress: the source addresses)
        # also installs a default-drop flow per match in the *DefaultRule table.
        self.drop_matches |= tos if drop_side == "to" else froms


def _antrea_services(ports: Sequence[PolicyPort], families: frozenset[int]) -> list[Hashable] | None:
    """The service clause's matches: per enabled family, per numeric port, its bit blocks. None
    (no clause) for a rule without ports; named ports left unresolved are dropped
    (filterUnresolvablePort), which may leave a clause that matches nothing."""
    if not ports:
        return None
    return [
        (fam, p.protocol, block)
        for p in ports
        if not isinstance(p.port, str)
        for block in port_blocks(p)
        for fam in sorted(families)
    ]


def _pod_addresses(pods: Iterable[PodEndpoint], families: frozenset[int]) -> list[Hashable]:
    """Antrea's address clause matches for pods: one per IP (of an enabled family)."""
    return [ip for pod in pods for ip in pod.ips if ip.version in families]


def _selected(peers: Sequence[PeerView]) -> list[PodEndpoint]:
    """The pods a rule's peers select, each once (an AddressGroup's members)."""
    seen: dict[ObjectKey, PodEndpoint] = {}
    for peer in peers:
        for pod in peer.pods:
            seen.setdefault(pod.key, pod)
    return list(seen.values())


def _address_matches(peers: Sequence[PeerView], families: frozenset[int]) -> list[Hashable]:
    """Peer addresses as Antrea's address clause flows: one per pod IP, one per ipBlock network."""
    out = _pod_addresses(_selected(peers), families)
    for peer in peers:
        out.extend(peer.block_networks(families))
    return out


def _any_peer(families: frozenset[int]) -> list[Hashable]:
    """Empty `from`/`to`: Antrea's matchAllPeer, 0.0.0.0/0 and ::/0 (the enabled ones)."""
    return [("any", fam) for fam in sorted(families)]


def antrea_policy(
    views: Sequence[PolicyView], families: frozenset[int], cluster_pods: Sequence[PodEndpoint] = ()
) -> dict[str, int]:
    """OVS flows for K8s NetworkPolicy on one node (docs/design/ovs-pipeline.md, "EgressRule" to
    "IngressMetric"; pkg/agent/openflow/network_policy.go).

    Per direction table: a conjunctive clause flow per distinct source match (nw_src: an IP or a
    CIDR), destination match (ingress: the local pod's OVS port; egress: nw_dst) and service match
    (protocol and port/mask); per OF rule a conj_id action flow and two metric flows (ct new /
    not new) per IP family; per applied-to match a default-drop flow. OF rules per API rule as
    the agent forms them (pod_reconciler.go): ingress rules split by how each local pod resolves
    the named ports, egress rules by how each destination pod does, plus the rule with the
    unresolved ports that carries the ipBlocks (always there for an egress rule with named ports);
    an isolated direction without rules is one deny-all rule (no peers). `cluster_pods` (every
    pod with an address) is the group an egress rule with named ports and no peers resolves them
    on. Simplified: the per-table miss and established-connection flows (fixed) are left out."""
    tables = {d: _OvsRuleTable(set(), set(), set(), set()) for d in DIRECTIONS}
    for view in views:
        for direction in DIRECTIONS:
            api = view.rules(direction)
            if api is None:
                continue
            table = tables[direction]
            ingress = direction is PolicyType.Ingress
            if not api:
                if ingress:
                    table.add((), (("port", p.key) for p in view.applied), None, "to")
                else:
                    table.add(_pod_addresses(view.applied, families), (), None, "from")
                continue
            for rule in api:
                if ingress:
                    _antrea_ingress_rule(table, view, rule, families)
                else:
                    _antrea_egress_rule(table, view, rule, families, cluster_pods)
    out: dict[str, int] = {}
    for direction in DIRECTIONS:
        t = tables[direction]
        name = direction.value.lower()
        out[f"{name}_clause_flows"] = len(t.from_matches) + len(t.to_matches) + len(t.service_matches)
        out[f"{name}_action_flows"] = t.rules * len(families)
        out[f"{name}_metric_flows"] = 2 * t.rules * len(families)
        out[f"{name}_default_drop_flows"] = len(t.drop_matches)
        out[f"{name}_of_rules"] = t.rules
    out["flows"] = sum(v for k, v in out.items() if k.endswith("_flows"))
    return out


def _antrea_ingress_rule(
    table: _OvsRuleTable, view: PolicyView, rule: RuleView, families: frozenset[int]
) -> None:
    from_ = _any_peer(families) if rule.peers is None else _address_matches(rule.peers, families)
    groups: dict[tuple[PolicyPort, ...], list[PodEndpoint]] = defaultdict(list)
    for pod in view.applied:
        groups[tuple(resolve_port(p, pod) for p in rule.ports)].append(pod)
    for ports, pods in groups.items():
        table.add(from_, (("port", p.key) for p in pods), _antrea_services(ports, families), "to")


def _antrea_egress_rule(
    table: _OvsRuleTable,
    view: PolicyView,
    rule: RuleView,
    families: frozenset[int],
    cluster_pods: Sequence[PodEndpoint],
) -> None:
    from_ = _pod_addresses(view.applied, families)
    named = any(isinstance(p.port, str) for p in rule.ports)
    if rule.peers is None:
        # matchAllPeer; with named ports also the group of every pod, to resolve them.
        blocks: list[Hashable] = _any_peer(families)
        members = list(cluster_pods) if named else []
    else:
        blocks = [n for peer in rule.peers for n in peer.block_networks(families)]
        members = _selected(rule.peers)
    groups: dict[tuple[PolicyPort, ...], list[PodEndpoint]] = defaultdict(list)
    if named:
        for pod in members:
            groups[tuple(resolve_port(p, pod) for p in rule.ports)].append(pod)
    else:
        groups[rule.ports] = members
    if rule.ports not in groups:  # the rule for ipBlocks and pods without the named port
        groups[rule.ports] = []
    for ports, pods in groups.items():
        to = _pod_addresses(pods, families)
        if ports == rule.ports:
            to.extend(blocks)
        table.add(from_, to, _antrea_services(ports, families), "from")


# --- Antrea Services -----------------------------------------------------------------------------


def _service_ports(ir: ClusterIR) -> list[tuple[BackendSetKey, list[ServiceFrontend], BackendSet | None]]:
    """Frontends grouped by Service port (backend set key), in IR order, with the backend set."""
    sets = {b.key: b for b in ir.backend_sets}
    by_key: dict[BackendSetKey, list[ServiceFrontend]] = defaultdict(list)
    for fe in ir.frontends:
        by_key[fe.backend_set].append(fe)
    return [(k, fes, sets.get(k)) for k, fes in sorted(by_key.items())]


@dataclass(frozen=True, slots=True)
class _PortEndpoints:
    """kube-proxy's CategorizeEndpoints for one Service port (pkg/proxy/topology.go; Antrea's
    proxier has its own copy, our lowering follows it): cluster and local endpoints, and which
    of them are in use."""

    cluster: tuple[Backend, ...]
    local: tuple[Backend, ...]
    uses_cluster: bool
    uses_local: bool
    external: bool
    """Some frontend is a NodePort, external IP or load-balancer IP."""

    @property
    def reachable(self) -> tuple[Backend, ...]:
        """allLocallyReachableEndpoints: the endpoints of the chains (groups) in use, unique."""
        seen: dict[tuple[IPAddress, int], Backend] = {}
        for b in (self.cluster if self.uses_cluster else ()) + (self.local if self.uses_local else ()):
            seen.setdefault((b.address, b.port), b)
        return tuple(seen.values())


def _port_endpoints(
    ir: ClusterIR, fes: Sequence[ServiceFrontend], bset: BackendSet | None, svc: ServiceInfo | None
) -> _PortEndpoints:
    external = any(fe.external for fe in fes)
    internal_local = svc is not None and svc.internal_local
    external_local = svc is not None and svc.external_local
    if bset is None:
        return _PortEndpoints((), (), not internal_local, internal_local, external)
    return _PortEndpoints(
        cluster_backends(bset, svc, ir.node),
        local_backends(bset, ir.node),
        uses_cluster=not internal_local or (external and not external_local),
        uses_local=internal_local or (external and external_local),
        external=external,
    )


def antrea_services(ir: ClusterIR) -> dict[str, int]:
    """AntreaProxy's OVS flows and groups (ovs-pipeline.md "ServiceLB", "EndpointDNAT",
    "SessionAffinity"; proxier.go installService; pipeline.go serviceLBFlows; client.go
    InstallEndpointFlows).

    Per Service port: a select group for its cluster endpoints and one for its local endpoints
    when a traffic policy is Local, a bucket per endpoint (one no-endpoint bucket for an empty
    group); per frontend a ServiceLB flow (NodePorts match the port only, so one per node port
    whatever the node addresses), one more for externalTrafficPolicy Local (local clients
    short-circuit to the cluster group), one learn flow with session affinity; per distinct
    endpoint (address, port, protocol) an EndpointDNAT flow, shared by every Service using it,
    and a hairpin SNAT flow per local endpoint address. Simplified: the flows learned per client
    for affinity, NodePortMark's per-node-address flows and the fixed flows are left out."""
    svcs = {s.key: s for s in ir.services}
    groups = buckets = lb_flows = learn_flows = 0
    endpoint_keys: set[tuple[IPAddress, int, Protocol]] = set()
    hairpin: set[IPAddress] = set()
    for key, fes, bset in _service_ports(ir):
        svc = svcs.get(key.service)
        eps = _port_endpoints(ir, fes, bset, svc)
        for used, members in ((eps.uses_cluster, eps.cluster), (eps.uses_local, eps.local)):
            if used:
                groups += 1
                buckets += max(1, len(members))
        protocol = fes[0].protocol
        for b in eps.reachable:
            endpoint_keys.add((b.address, b.port, protocol))
            if is_local(b, ir.node):
                hairpin.add(b.address)
        node_ports = {(fe.protocol, fe.port) for fe in fes if fe.kind is FrontendKind.NodePort}
        frontends = len(node_ports) + sum(1 for fe in fes if fe.kind is not FrontendKind.NodePort)
        lb_flows += frontends
        if svc is not None and svc.external_local:
            lb_flows += len(node_ports) + sum(
                1 for fe in fes if fe.external and fe.kind is not FrontendKind.NodePort
            )
        if svc is not None and svc.affinity_timeout is not None:
            learn_flows += frontends
    out = {
        "service_lb_flows": lb_flows,
        "affinity_learn_flows": learn_flows,
        "endpoint_dnat_flows": len(endpoint_keys),
        "hairpin_flows": len(hairpin),
        "groups": groups,
        "buckets": buckets,
    }
    out["flows_and_groups"] = lb_flows + learn_flows + len(endpoint_keys) + len(hairpin) + groups
    return out


# --- Cilium --------------------------------------------------------------------------------------


class _Identities:
    """Cilium security identities: one per distinct set of identity labels (a pod's namespace,
    which stands for its namespace's labels, and its own labels), one per CIDR of a policy
    (its CIDR identity), and 0 for "any" (an L3 wildcard)."""

    def __init__(self) -> None:
        self.ids: dict[Hashable, int] = {}
        self._peers: dict[Hashable, frozenset[int]] = {}

    def of(self, key: Hashable) -> int:
        return self.ids.setdefault(key, len(self.ids) + 1)

    def pod(self, pod: PodEndpoint) -> int:
        return self.of((pod.key.namespace, pod.labels))

    def peer(self, peer: PeerView, families: frozenset[int]) -> frozenset[int]:
        if peer.spec.ip_block is not None:
            return frozenset(self.of(("cidr", n)) for n in peer.block_networks(families))
        key = peer.selector_key
        found = self._peers.get(key)
        if found is None:
            found = self._peers[key] = frozenset(self.pod(p) for p in peer.pods)
        return found


def named_port_numbers(pods: Iterable[PodEndpoint]) -> dict[tuple[str, Protocol], frozenset[int]]:
    """Every number a pod in the cluster gives each (port name, protocol)."""
    out: dict[tuple[str, Protocol], set[int]] = defaultdict(set)
    for pod in pods:
        for cp in pod.container_ports:
            out[(cp.name, cp.protocol)].add(cp.port)
    return {k: frozenset(v) for k, v in out.items()}


def _cilium_port_keys(
    rule: RuleView,
    direction: PolicyType,
    endpoint: PodEndpoint,
    named: dict[tuple[str, Protocol], frozenset[int]],
) -> list[tuple[str, int, int]]:
    """A rule's L4 keys: (protocol, port, prefix length); ("", 0, 0) for no ports (L3 only)."""
    if not rule.ports:
        return [("", 0, 0)]
    keys: list[tuple[str, int, int]] = []
    for port in rule.ports:
        if isinstance(port.port, str):
            if direction is PolicyType.Ingress:
                numbers: Iterable[int] = (
                    [n]
                    if (n := named_port_number(endpoint.container_ports, port.port, port.protocol))
                    else []
                )
            else:
                numbers = sorted(named.get((port.port, port.protocol), ()))
            for number in numbers:
                keys.append((port.protocol.value, number, 16))
            continue
        keys.extend((port.protocol.value, value, plen) for value, plen in port_blocks(port))
    return keys


def cilium_policy(
    views: Sequence[PolicyView], local: Sequence[PodEndpoint], cluster_pods: Sequence[PodEndpoint]
) -> dict[str, int]:
    """Per-endpoint policy map entries (pkg/maps/policymap: key = identity, direction, protocol,
    destination port and port prefix length; Documentation/network/ebpf/maps.rst: 16k per
    endpoint by default).

    For each local endpoint and direction its policies isolate: one entry per distinct
    (remote identity, protocol, port block) its rules allow: selector peers by the identities of
    the pods they select, ipBlocks by one CIDR identity per network of cidr minus except, empty
    peers by the wildcard identity; a port range by its prefix blocks, no ports by one L3 entry.
    Ingress named ports resolve on the endpoint; egress named ports take every number any pod of
    the cluster gives the name (Cilium resolves them cluster-wide). A direction no policy
    isolates is one allow-all entry. Simplified: entries for reserved identities (host, health)
    and for CIDR identities nested in a selected CIDR are left out, and Cilium's behaviour of not
    matching cluster pods by ipBlock is kept (it under-allows compared to the API; our count of
    it is what Cilium installs). Rules shared by endpoints with the same policies are counted
    once per endpoint, as each endpoint has its own map."""
    enabled = node_families(local)
    identities = _Identities()
    named = named_port_numbers(cluster_pods)
    by_pod = _views_by_pod(views)
    cache: dict[Hashable, int] = {}
    total = worst = over = 0
    for endpoint in local:
        in_map = 0
        for direction in DIRECTIONS:
            applying = [(v, r) for v in by_pod.get(endpoint.key, ()) if (r := v.rules(direction)) is not None]
            if not applying:
                in_map += 1
                continue
            ckey = (
                direction,
                tuple(v.key for v, _ in applying),
                endpoint.container_ports if direction is PolicyType.Ingress else (),
            )
            n = cache.get(ckey)
            if n is None:
                allowed: dict[tuple[str, int, int], set[int]] = defaultdict(set)
                for _, rules in applying:
                    for rule in rules:
                        if rule.peers is None:
                            ids: frozenset[int] = frozenset({0})
                        else:
                            ids = frozenset().union(*(identities.peer(p, enabled) for p in rule.peers))
                        for key in _cilium_port_keys(rule, direction, endpoint, named):
                            allowed[key] |= ids
                n = cache[ckey] = sum(len(s) for s in allowed.values())
            in_map += n
        total += in_map
        worst = max(worst, in_map)
        over += in_map > POLICY_MAP_MAX
    return {
        "entries": total,
        "max_per_endpoint": worst,
        "endpoints_over_limit": over,
        "endpoints": len(local),
        "identities": len(identities.ids),
    }


def cilium_services(ir: ClusterIR) -> dict[str, int]:
    """Cilium's LB map entries (pkg/maps/lbmap/lbmap.go; maps.rst "Service LB Map Sizing").

    Per frontend and scope: a master entry (slot 0, the backend count) and one slot per backend
    in `cilium_lb4_services_v2`; per frontend a reverse-NAT entry; per distinct backend (address,
    port, protocol) one `cilium_lb4_backends` entry shared by every Service; with session affinity
    an affinity-match entry per (frontend, backend). A NodePort is a frontend per node address plus
    the 0.0.0.0 surrogate; externalTrafficPolicy Local gives external frontends two scopes (local
    backends for external clients, all for in-cluster ones); internalTrafficPolicy Local gives
    ClusterIPs the local backends. Simplified: the Maglev tables (not the default) and the
    per-client affinity map (learned) are left out."""
    svcs = {s.key: s for s in ir.services}
    slots = masters = revnat = affinity = 0
    backends: set[tuple[IPAddress, int, Protocol]] = set()
    for key, fes, bset in _service_ports(ir):
        svc = svcs.get(key.service)
        eps = _port_endpoints(ir, fes, bset, svc)
        surrogates = {(fe.protocol, fe.port) for fe in fes if fe.kind is FrontendKind.NodePort}
        frontends: list[tuple[bool, Protocol]] = [(fe.external, fe.protocol) for fe in fes]
        frontends += [(True, proto) for proto, _ in sorted(surrogates)]
        for external, protocol in frontends:
            if external:
                scopes = [eps.local, eps.cluster] if svc is not None and svc.external_local else [eps.cluster]
            else:
                scopes = [eps.local if svc is not None and svc.internal_local else eps.cluster]
            masters += len(scopes)
            slots += sum(len(s) for s in scopes)
            revnat += 1
            used = {(b.address, b.port, protocol) for s in scopes for b in s}
            backends |= used
            if svc is not None and svc.affinity_timeout is not None:
                affinity += len(used)
    out = {
        "service_masters": masters,
        "service_slots": slots,
        "backends": len(backends),
        "reverse_nat": revnat,
        "affinity_match": affinity,
    }
    out["entries"] = sum(out.values())
    return out


# --- kube-proxy (iptables) -----------------------------------------------------------------------


def iptables_services(ir: ClusterIR) -> dict[str, int]:
    """kube-proxy's iptables rules (pkg/proxy/iptables/proxier.go, syncProxyRules and
    writeServiceToEndpointRules), per Service port:

    a KUBE-SERVICES rule per cluster IP (a filter REJECT/DROP rule instead when no endpoint serves
    it), per external IP and per load-balancer IP; a KUBE-NODEPORTS rule per node port; in the
    internal chain (KUBE-SVC-, or KUBE-SVL- for internalTrafficPolicy Local) a masquerade rule for
    off-cluster sources, then a probability jump per endpoint (and a `recent --rcheck` rule per
    endpoint with session affinity); a KUBE-EXT- chain for external frontends (masquerade and jump;
    with externalTrafficPolicy Local the pod short-circuit, the two LOCAL-source rules and the
    jump); a KUBE-SEP- chain of two rules (hairpin masquerade, DNAT) per endpoint in use. The
    local-traffic detector is assumed configured (kube-proxy's default with a cluster CIDR).
    Simplified: the fixed chains' rules (KUBE-POSTROUTING, KUBE-FORWARD, ...), the localhost
    node-port variant and loadBalancerSourceRanges firewall chains are left out."""
    svcs = {s.key: s for s in ir.services}
    c: Counter[str] = Counter()
    for key, fes, bset in _service_ports(ir):
        svc = svcs.get(key.service)
        eps = _port_endpoints(ir, fes, bset, svc)
        affinity = svc is not None and svc.affinity_timeout is not None
        internal_local = svc is not None and svc.internal_local
        external_local = svc is not None and svc.external_local
        reachable = eps.reachable
        has_endpoints = bool(reachable)
        has_internal = has_endpoints and bool(eps.local if internal_local else eps.cluster)
        has_external = has_endpoints and bool(eps.local if external_local else eps.cluster)
        for fe in fes:
            if fe.kind is FrontendKind.ClusterIP:
                c["KUBE-SERVICES" if has_internal else "filter"] += 1
        node_ports = {(fe.protocol, fe.port) for fe in fes if fe.kind is FrontendKind.NodePort}
        external_ips = [fe for fe in fes if fe.external and fe.kind is not FrontendKind.NodePort]
        c["KUBE-SERVICES"] += len(external_ips) if has_endpoints else 0
        c["KUBE-NODEPORTS"] += len(node_ports) if has_endpoints else 0
        if not has_external:
            c["filter"] += len(external_ips) + len(node_ports)
        if has_internal:
            c["KUBE-SVC/SVL masquerade"] += 1
        if has_endpoints and eps.external:
            c["KUBE-EXT"] += (3 if external_local else 1) + (1 if has_external else 0)
        per_endpoint = 2 if affinity else 1
        if eps.uses_cluster and eps.cluster:
            c["KUBE-SVC endpoint jumps"] += per_endpoint * len(eps.cluster)
        if eps.uses_local and eps.local:
            c["KUBE-SVL endpoint jumps"] += per_endpoint * len(eps.local)
        c["KUBE-SEP"] += 2 * len(reachable)
    out = {chain: n for chain, n in sorted(c.items()) if n}
    out["rules"] = sum(c.values())
    return out


# --- Calico (Felix, iptables) ----------------------------------------------------------------------


def _calico_port_groups(ports: Sequence[PolicyPort]) -> list[tuple[str, list[PolicyPort] | None]]:
    """k8sRuleToCalico's grouping: one Calico rule per protocol (per peer), with that protocol's
    ports (None: all ports of it); [("", None)] when the rule has no ports (any protocol)."""
    if not ports:
        return [("", None)]
    grouped: dict[str, list[PolicyPort] | None] = {}
    for p in ports:
        proto = p.protocol.value
        if p.port is None:
            grouped[proto] = None
        elif proto not in grouped:
            grouped[proto] = [p]
        elif (have := grouped[proto]) is not None:
            have.append(p)
    return sorted(grouped.items())


def _multiport_splits(ports: Sequence[PolicyPort]) -> int:
    """SplitPortList over the numeric ports after SimplifyPorts (merged into ranges): iptables'
    multiport takes 15 slots, a range costs two."""
    spans = merge_intervals(
        (p.port, p.end_port if p.end_port is not None else p.port) for p in ports if isinstance(p.port, int)
    )
    splits, free = 0, 0
    for i in range(0, len(spans), 2):
        need = 1 if spans[i] == spans[i + 1] else 2
        if free < need:
            splits += 1
            free = 15
        free -= need
    return splits


def _calico_rule_cost(ports: list[PolicyPort] | None, peer: PeerView | None) -> int:
    """iptables rules of one Calico allow rule (ProtoRuleToIptablesRules): a port match block when
    more than one multiport split or named-port set must be ORed (reset rule + one per split
    and per named port), a negated-CIDR block for an ipBlock with excepts (reset rule unless a
    block came first, then one per except), then the match rule setting the accept mark and the
    return on that mark."""
    cost = 2
    using_blocks = False
    named = [p for p in ports or () if isinstance(p.port, str)]
    splits = _multiport_splits(ports or ())
    if splits + len(named) > 1:
        cost += 1 + splits + len(named)
        using_blocks = True
    block = peer.spec.ip_block if peer is not None else None
    if block is not None and block.except_:
        cost += (0 if using_blocks else 1) + len(block.except_)
    return cost


def _named_members(pods: Iterable[PodEndpoint], port: PolicyPort) -> int:
    """Members of a named-port IP set: (address, number) of each pod that names the port."""
    assert isinstance(port.port, str)
    return sum(
        len(p.ips) for p in pods if named_port_number(p.container_ports, port.port, port.protocol) is not None
    )


def calico_policy(
    views: Sequence[PolicyView], local: Sequence[PodEndpoint], cluster_pods: Sequence[PodEndpoint]
) -> dict[str, int]:
    """Felix's iptables rules and IP set members for the K8s NetworkPolicies active on one node.

    Policy chains (cali-pi-/cali-po-, both rendered for every active policy): per API rule one
    Calico rule per peer and protocol (conversion.go k8sRuleToCalico), each costing
    `_calico_rule_cost`; the chain's trailing return rule is stripped; an empty chain keeps one
    placeholder rule. IP sets (rule_scanner.go): one per distinct peer selector (namespace scope
    included), its members the selected pods' addresses, shared across policies; a named port makes
    an (address, port) set of the pods the selector picks that have the port (every pod of the
    cluster for an ingress rule, whose destination selector is empty), and replaces the selector's
    set when the rule has no numeric port. Per-endpoint chains (endpoints.go): per local pod and
    direction, 2 conntrack rules, a mark reset, and when policies apply a tier-start rule, a jump
    and a return per policy group (policies sharing a selector; a group of several gets its own
    chain with one jump per policy and a return every five) and the end-of-tier drop; then the
    namespace and service-account profiles (jump and return each) and the final drop; plus a
    dispatch rule per endpoint and direction. `rules_without_policy_groups` is the same count with
    one jump and return per policy in the endpoint chains (Felix before policy groups).
    Simplified: the fixed chains, the dispatch tree's inner nodes and the encapsulation drops are
    left out; one IP family."""
    ipsets: dict[Hashable, int] = {}
    rules = 0
    for view in views:
        for direction in DIRECTIONS:
            api = view.rules(direction) or ()
            chain = 0
            for rule in api:
                peers: Sequence[PeerView | None] = rule.peers if rule.peers is not None else [None]
                for _, ports in _calico_port_groups(rule.ports):
                    numeric = any(isinstance(p.port, int) for p in ports or ())
                    named = [p for p in ports or () if isinstance(p.port, str)]
                    for peer in peers:
                        chain += _calico_rule_cost(ports, peer)
                        sel = peer if peer is not None and peer.spec.ip_block is None else None
                        if sel is not None and (direction is PolicyType.Ingress or numeric or not named):
                            ipsets.setdefault(sel.selector_key, sum(len(p.ips) for p in sel.pods))
                        for port in named:
                            # Ingress: the destination is the local pod, whose selector is empty.
                            scoped = sel if direction is PolicyType.Egress else None
                            key = (
                                "named",
                                scoped.selector_key if scoped else "all",
                                port.port,
                                port.protocol,
                            )
                            if key not in ipsets:
                                ipsets[key] = _named_members(scoped.pods if scoped else cluster_pods, port)
            rules += max(1, chain - 1 if chain else 0)
    # Per-endpoint chains, with Felix's policy groups and (for comparison) one jump per policy.
    by_pod = _views_by_pod(views)
    endpoint = ungrouped = 0
    group_chains: set[Hashable] = set()
    for pod in local:
        for direction in DIRECTIONS:
            pols = [v for v in by_pod.get(pod.key, ()) if v.rules(direction) is not None]
            fixed = 2 + 1 + 2 * 2 + 1 + 1  # conntrack, mark reset, 2 profiles (jump, return), drop, dispatch
            endpoint += fixed
            ungrouped += fixed
            if not pols:
                continue
            groups: dict[Hashable, int] = Counter(v.pod_selector for v in pols)
            endpoint += 1 + 2 * len(groups) + 1  # tier start, jump and return per group, end-of-tier drop
            ungrouped += 1 + 2 * len(pols) + 1
            for selector, n in groups.items():
                gkey = (direction, pod.key.namespace, selector)
                if n > 1 and gkey not in group_chains:
                    group_chains.add(gkey)
                    endpoint += n + (n - 1) // 5
    return {
        "rules": rules + endpoint,
        "policy_chain_rules": rules,
        "endpoint_chain_rules": endpoint,
        "rules_without_policy_groups": rules + ungrouped,
        "ipsets": len(ipsets),
        "ipset_members": sum(ipsets.values()),
    }


def _views_by_pod(views: Sequence[PolicyView]) -> dict[ObjectKey, list[PolicyView]]:
    """Per local pod, the policies that select it."""
    by_pod: dict[ObjectKey, list[PolicyView]] = defaultdict(list)
    for view in views:
        for pod in view.applied:
            by_pod[pod.key].append(view)
    return by_pod


# --- Us, side by side ----------------------------------------------------------------------------


def ours(result: Any) -> dict[str, int]:
    """Our counts from the compiled bundle: policy entries and their TCAM part (bench/run.py's
    definitions), and Service entities (entries of the Service tables, members and groups)."""
    counts = bundle_counts(result)
    keys = ("policy_entries", "policy_tcam", "service_entries", "members", "groups", "service_entities")
    return {k: counts[k] for k in keys}


def compare(result: Any) -> dict[str, Any]:
    """Every peer model and our own counts for one compiled cluster."""
    ir: ClusterIR = result.ir
    start = time.process_time()
    views = policy_views(ir)
    local = [p for p in ir.pods if p.local and p.ips]
    cluster_pods = [p for p in ir.pods if p.ips]
    row: dict[str, Any] = {
        "pods": len(ir.pods),
        "local_pods": len(local),
        "services": len(ir.services),
        "policies": len(ir.network_policies),
        "policies_on_node": len(views),
        "us": ours(result),
        "antrea_policy": antrea_policy(views, node_families(local), cluster_pods),
        "antrea_services": antrea_services(ir),
        "cilium_policy": cilium_policy(views, local, cluster_pods),
        "cilium_services": cilium_services(ir),
        "calico_policy": calico_policy(views, local, cluster_pods),
        "iptables_services": iptables_services(ir),
    }
    row["model_cpu_seconds"] = round(time.process_time() - start, 2)
    us = row["us"]
    policy_peers = {
        "antrea": row["antrea_policy"]["flows"],
        "cilium": row["cilium_policy"]["entries"],
        "iptables": row["calico_policy"]["rules"] + row["calico_policy"]["ipset_members"],
    }
    service_peers = {
        "antrea": row["antrea_services"]["flows_and_groups"],
        "cilium": row["cilium_services"]["entries"],
        "iptables": row["iptables_services"]["rules"],
    }
    row["ratio_policy"] = {k: round(us["policy_entries"] / max(1, v), 3) for k, v in policy_peers.items()}
    row["ratio_services"] = {
        k: round(us["service_entities"] / max(1, v), 3) for k, v in service_peers.items()
    }
    return row


def _n(x: int) -> str:
    return f"{x:,}"


def markdown(size: str, row: dict[str, Any]) -> str:
    """The docs/benchmarks.md table for one size."""
    us, ap, asv = row["us"], row["antrea_policy"], row["antrea_services"]
    cp, cs, kp, ks = (
        row["cilium_policy"],
        row["cilium_services"],
        row["calico_policy"],
        row["iptables_services"],
    )
    rp, rs = row["ratio_policy"], row["ratio_services"]
    cilium_note = (
        f"max {_n(cp['max_per_endpoint'])} per endpoint; {cp['endpoints_over_limit']} of {cp['endpoints']} "
        f"endpoints over {_n(POLICY_MAP_MAX)}"
    )
    lines = [
        f"Size {size}: {_n(row['services'])} Services, {_n(row['pods'])} pods, {_n(row['policies'])} "
        f"NetworkPolicies ({row['policies_on_node']} select a pod of the node), "
        f"{row['local_pods']} local pods.",
        "",
        "| | k8s-offload | Antrea (OVS flows + groups) | Cilium (BPF map entries) "
        "| iptables rules + ipset members (Calico / kube-proxy) |",
        "|---|---|---|---|---|",
        f"| NetworkPolicy | {_n(us['policy_entries'])} entries ({_n(us['policy_tcam'])} TCAM) "
        f"| {_n(ap['flows'])} flows | {_n(cp['entries'])} entries ({cilium_note}) "
        f"| {_n(kp['rules'])} rules + {_n(kp['ipset_members'])} members ({_n(kp['ipsets'])} sets) |",
        f"| Services | {_n(us['service_entities'])} entities ({_n(us['service_entries'])} entries, "
        f"{_n(us['members'])} members, {_n(us['groups'])} groups) "
        f"| {_n(asv['flows_and_groups'])} flows + groups ({_n(asv['buckets'])} buckets) "
        f"| {_n(cs['entries'])} entries | {_n(ks['rules'])} rules |",
        f"| us / peer, NetworkPolicy | | {rp['antrea']:.3f} | {rp['cilium']:.4f} | {rp['iptables']:.3f} |",
        f"| us / peer, Services | | {rs['antrea']:.3f} | {rs['cilium']:.3f} | {rs['iptables']:.3f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S", help="comma-separated, of " + ",".join(SIZES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--workdir", type=Path, help="where generated manifests are kept (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for size in (s.strip() for s in args.sizes.split(",")):
            d = cluster_dir(size, args.seed, workdir)
            cpu = time.process_time()
            result = compile_sources(sorted(str(p) for p in d.glob("*.json")), str(d / "node.yaml"))
            row = compare(result)
            row["compile_cpu_seconds"] = round(time.process_time() - cpu - row["model_cpu_seconds"], 2)
            rows[size] = row
            del result
            if not args.json:
                print(f"== size {size} (seed {args.seed})")
                print(markdown(size, row))
                print(
                    "  details: "
                    + json.dumps({k: v for k, v in row.items() if isinstance(v, dict) and k != "us"})
                )
                print(
                    f"  compile {row['compile_cpu_seconds']} s CPU, models {row['model_cpu_seconds']} s CPU"
                )
                sys.stdout.flush()
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
