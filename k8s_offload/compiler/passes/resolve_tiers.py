"""Pass: cluster policy tiers -> per local pod and direction, its ordered tier rules (`PodTiers`).

Semantics (kubernetes-sigs/network-policy-api, v1alpha1 AdminNetworkPolicy and
BaselineAdminNetworkPolicy, v1alpha2 ClusterNetworkPolicy): a policy applies to the pods its
subject selects (never host-network pods); its rules apply in written order, its policies in
priority order (lower first), the admin tier before NetworkPolicy and the baseline tier after.
Peers: `namespaces` and `pods` are pod addresses (host-network pods excluded), `nodes` the
InternalIP/ExternalIP addresses of the selected Nodes, `networks` CIDRs. Named ports resolve on the
pod that receives the traffic, as for NetworkPolicy (resolve_policy.py).

Equal priorities: the API lets an implementation apply either policy. We order policies of one
tier by (priority, name, kind): deterministic, and independent of input order; a warning names
two policies at one priority that select the same pod with rules of different actions that can
match the same traffic.

domainNames peers cannot be offloaded: the API's fail-closed reading for a peer an implementation
cannot honour applies: in an Allow/Accept rule the peer matches no traffic; a Deny or Pass rule
with such a peer denies all traffic (the API supports domainNames only in Allow/Accept rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any

from k8s_offload.compiler.frontend.model import ContainerPort, IPAddress, IPNetwork, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyPeer, PolicyType
from k8s_offload.compiler.frontend.tiers import (
    TIER_KINDS,
    ClusterPolicy,
    Node,
    PeerKind,
    Tier,
    TierAction,
    TierPeer,
    TierRule,
    TierSelector,
)
from k8s_offload.compiler.ir.model import Diagnostic, PodEndpoint
from k8s_offload.compiler.ir.rules import AddressSet, PortRange, Rule
from k8s_offload.compiler.ir.tiers import PodTiers, TierEntry, TierSet
from k8s_offload.compiler.passes.cidr import address_set
from k8s_offload.compiler.passes.drop_shadowed import drop_shadowed
from k8s_offload.compiler.passes.merge_rules import canonical_ports
from k8s_offload.compiler.passes.resolve_policy import ResolutionView, intersect_intervals
from k8s_offload.compiler.passes.selectors import matches

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.passes.pipeline import Build

RuleKey = tuple[ObjectKey, PolicyType, int, tuple[ContainerPort, ...]]
"""(policy, direction, rule index, the local pod's container ports for ingress)."""
Selected = tuple[PodTiers, tuple[Diagnostic, ...]]
"""A local pod's tier rules in one direction and the equal-priority warnings about them."""
_TIER_ORDER = {Tier.Admin: 0, Tier.Baseline: 1}
_KIND_ORDER = {kind: i for i, kind in enumerate(TIER_KINDS)}
_PROTOCOLS = tuple(Protocol)


def policy_order(pol: ClusterPolicy) -> tuple[int, int, str, int]:
    """Evaluation order of the policies selecting one pod: tier, priority, then (our choice for
    equal priorities) name and kind."""
    return (_TIER_ORDER[pol.tier], pol.priority, pol.key.name, _KIND_ORDER[pol.key.kind])


def rules_of(pol: ClusterPolicy, direction: PolicyType) -> tuple[TierRule, ...]:
    return pol.ingress if direction is PolicyType.Ingress else pol.egress


class TierView:
    """What tier resolution reads of the cluster: NetworkPolicy's view (namespaces, pods by
    namespace and label, named-port sets), the host-network pods and the Nodes."""

    __slots__ = ("nodes", "pods", "view")

    def __init__(self, r: Reads, t: Any) -> None:
        self.view = ResolutionView(r, t)
        self.pods = t["host_network_pods"]
        self.nodes = t["tier_nodes"]

    def selects(self, sel: TierSelector, pod: PodEndpoint) -> bool:
        if not matches(sel.namespaces, self.view.namespace_labels(pod.key.namespace)):
            return False
        return sel.pods is None or matches(sel.pods, pod.labels)

    def selected_pods(self, sel: TierSelector) -> Iterable[PodEndpoint]:
        """NetworkPolicy's peer selection (namespaces by label, pods through the label index),
        without host-network pods."""
        peer = PolicyPeer(pod_selector=sel.pods, namespace_selector=sel.namespaces, ip_block=None)
        return (p for p in self.view.peer_pods("", peer) if not self.host_network(p.key))

    def host_network(self, key: ObjectKey) -> bool:
        return bool(self.view.r.group(self.pods, key))

    def peer_addresses(self, peer: TierPeer) -> tuple[list[IPNetwork], list[IPAddress]]:
        if peer.kind is PeerKind.networks:
            return list(peer.networks), []
        if peer.kind is PeerKind.nodes:
            assert peer.nodes is not None
            nodes: Iterable[Node] = self.view.r.group(self.nodes, "all").values()
            sel = peer.nodes
            return [], [ip for n in nodes if matches(sel, n.labels) for ip in n.addresses]
        if peer.selector is not None:
            return [], list(chain.from_iterable(p.ips for p in self.selected_pods(peer.selector)))
        return [], []  # domainNames: matches no address


def peer_set(tv: TierView, peers: tuple[TierPeer, ...]) -> AddressSet:
    """The addresses one rule's peers match (domainNames: none)."""
    nets: list[IPNetwork] = []
    hosts: list[IPAddress] = []
    for peer in peers:
        n, h = tv.peer_addresses(peer)
        nets += n
        hosts += h
    return address_set(nets, hosts)


def resolve_rule(
    tv: TierView,
    rule: TierRule,
    direction: PolicyType,
    local_ports: tuple[ContainerPort, ...],
    peers: AddressSet,
) -> tuple[TierAction, list[Rule]]:
    """One API rule as (action, rules): the peers' address set times the ports; ingress named
    ports on the local pod (`local_ports`), egress ones per number, on the destination pods that
    name the port so."""
    action = rule.action
    if any(p.kind is PeerKind.domain_names for p in rule.peers) and action is not TierAction.Allow:
        return TierAction.Deny, [Rule(None, None)]  # fail closed: "Deny all"
    if not peers:
        return action, []
    if rule.ports is None:
        return action, [Rule(peers, None)]
    numeric = [PortRange(p.protocol, p.low, p.high) for p in rule.ports if p.protocol and p.low <= p.high]
    out: list[Rule] = []
    for p in rule.ports:
        if p.name is None:
            continue
        if direction is PolicyType.Ingress:
            seen: set[Protocol] = set()
            for cp in local_ports:
                if cp.name == p.name and cp.protocol not in seen:
                    seen.add(cp.protocol)
                    numeric.append(PortRange(cp.protocol, cp.port, cp.port))
            continue
        for protocol in _PROTOCOLS:
            for number, named in tv.view.named_sets(p.name, protocol):
                inside = AddressSet(
                    v4=intersect_intervals(named.v4, peers.v4), v6=intersect_intervals(named.v6, peers.v6)
                )
                if inside:
                    out.append(Rule(inside, (PortRange(protocol, number, number),)))
    if numeric:
        out.append(Rule(peers, canonical_ports(numeric)))
    return action, out


def _overlap(a: Rule, b: Rule) -> bool:
    """Some traffic matches both rules."""
    if (
        a.peers is not None
        and b.peers is not None
        and not (intersect_intervals(a.peers.v4, b.peers.v4) or intersect_intervals(a.peers.v6, b.peers.v6))
    ):
        return False
    if a.ports is None or b.ports is None:
        return True
    return any(
        x.protocol is y.protocol and x.low <= y.high and y.low <= x.high for x in a.ports for y in b.ports
    )


def conflicts(entries: Iterable[TierEntry], order: dict[ObjectKey, ClusterPolicy]) -> list[Diagnostic]:
    """Warnings for pairs of policies at one tier and priority whose rules of different actions
    can match the same traffic of the pod (the API leaves the winner to the implementation)."""
    by_level: dict[tuple[Tier, int], list[TierEntry]] = {}
    for e in entries:
        by_level.setdefault((e.tier, order[e.policy].priority), []).append(e)
    out: set[tuple[ObjectKey, ObjectKey]] = set()
    for level in by_level.values():
        for i, a in enumerate(level):
            for b in level[i + 1 :]:
                if a.policy != b.policy and a.action is not b.action and _overlap(a.rule, b.rule):
                    out.add((a.policy, b.policy))
    return [
        Diagnostic(
            first,
            f"{second} has the same tier and priority ({order[first].priority}) and selects the same "
            f"pods with rules of other actions for the same traffic; the API lets either apply: "
            f"{first} is applied first (equal priorities are ordered by name, then kind)",
        )
        for first, second in sorted(out)
    ]


def declare_tier_resolution(b: Build) -> None:
    """Tier resolution as units: `tier_policies["all"]` and `tier_nodes["all"]` (indexes over
    the inputs), `tier_selection[(direction, pod)]` per local pod with addresses: its `PodTiers`
    or None (no cluster policy selects it with rules in that direction), and
    `tier_notes[(direction, pod)]`: equal-priority conflicts."""
    from k8s_offload.compiler.engine.core import Rule as Table

    e, t = b.engine, b.t
    policies: Any = t["tier_policies"]
    policy_by_key: Any = t["tier_policy"]
    iso_keys: Any = t["isolation_keys"]
    shadowed = "drop_shadowed" in b.config.enabled
    interned: dict[AddressSet, AddressSet] = b.cache.setdefault("interned peer sets", {})

    def peers_of(r: Reads, peers: tuple[TierPeer, ...]) -> AddressSet:
        """One rule's peer addresses, shared by every rule (of any policy) with the same peers."""
        found = peer_set(TierView(r, t), peers)
        return interned.setdefault(found, found)

    peer_sets = b.add(Table(e, "tier_peer_set", peers_of))

    def rule_result(r: Reads, key: RuleKey) -> tuple[TierAction, tuple[Rule, ...]]:
        """One API rule resolved, shared by every local pod the policy selects (per ingress
        named-port shape, as NetworkPolicy's `rule_result`)."""
        pol_key, direction, index, local_ports = key
        pol = r.group(policy_by_key, pol_key).get(pol_key)
        api = () if pol is None else rules_of(pol, direction)
        if index >= len(api):  # the policy changed under a reader about to drop this unit
            return TierAction.Deny, ()
        rule = api[index]
        action, rules = resolve_rule(TierView(r, t), rule, direction, local_ports, r(peer_sets, rule.peers))
        return action, tuple(rules)

    results = b.add(Table(e, "tier_rule_result", rule_result))

    def selection(r: Reads, key: tuple[PolicyType, ObjectKey]) -> Selected | None:
        direction, pod_key = key
        pod = r.group(iso_keys, key)[pod_key]
        tv = TierView(r, t)
        if tv.host_network(pod_key):
            return None
        selecting = sorted(
            (
                pol
                for pol in r.group(policies, "all").values()
                if rules_of(pol, direction) and tv.selects(pol.subject, pod)
            ),
            key=policy_order,
        )
        if not selecting:
            return None
        entries: list[TierEntry] = []
        local_ports = tuple(pod.container_ports) if direction is PolicyType.Ingress else ()
        for pol in selecting:
            for rule in rules_of(pol, direction):
                action, rules = r(results, (pol.key, direction, rule.index, local_ports))
                entries += (TierEntry(x, action, pol.tier, pol.key, rule.index) for x in rules)
        notes = conflicts(entries, {pol.key: pol for pol in selecting})
        kept = drop_shadowed(tuple(entries)) if shadowed else tuple(entries)
        return PodTiers(pod_key, direction, pod.ips, TierSet(kept)), tuple(notes)

    selections = b.add(Table(e, "tier_selection", selection, over=iso_keys))
    b.add(
        Table(
            e,
            "tier_isolation",
            lambda r, k: None if (found := r(selections, k)) is None else found[0],
            over=selections,
        )
    )
    b.add(
        Table(
            e,
            "tier_conflicts",
            lambda r, k: () if (found := r(selections, k)) is None else found[1],
            over=selections,
            out="diagnostics",  # the IR is complete (and checked) before this step runs
        )
    )
