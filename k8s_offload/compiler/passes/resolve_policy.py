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
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from k8s_offload.compiler.frontend.model import ContainerPort, IPAddress, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyPeer, PolicyPort, PolicyRule, PolicyType
from k8s_offload.compiler.ir.model import ClusterIR, PodEndpoint
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
    RuleSource,
)
from k8s_offload.compiler.passes.cidr import address_set, subtract
from k8s_offload.compiler.passes.merge_rules import canonical_ports
from k8s_offload.compiler.passes.selectors import matches

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.passes.pipeline import Build


NAME_LABEL = "kubernetes.io/metadata.name"


class ResolutionView:
    """What resolution reads of the cluster, through a unit's reads: namespaces' labels, pods by
    namespace and by label (pods with addresses only), and the named-port address sets."""

    __slots__ = ("by_label", "by_ns", "ips_by_ns", "named", "namespaces", "r")

    def __init__(self, r: Reads, t: Mapping[str, Any]) -> None:
        self.r = r
        self.namespaces = t["namespace_ir"]
        self.by_ns = t["pods_by_namespace"]
        self.ips_by_ns = t["pod_ips_by_namespace"]
        self.by_label = t["pods_by_label"]
        self.named = t["named_port_sets"]

    def namespace_labels(self, name: str) -> tuple[tuple[str, str], ...]:
        ns = self.r(self.namespaces, name)
        return ns.labels if ns is not None else ((NAME_LABEL, name),)

    def peer_addresses(self, policy_ns: str, peer: PolicyPeer) -> Iterable[IPAddress]:
        """The addresses of the pods a peer selects. A peer without podSelector takes every pod
        of its namespaces: it reads only their addresses, so relabelling a pod does not touch it."""
        if peer.pod_selector is None:
            r = self.r
            if peer.namespace_selector is None:
                namespaces: Iterable[str] = (policy_ns,)
            else:
                sel = peer.namespace_selector
                namespaces = [ns for ns in r.keys(self.ips_by_ns) if matches(sel, self.namespace_labels(ns))]
            return chain.from_iterable(
                ips for ns in namespaces for ips in r.group(self.ips_by_ns, ns).values()
            )
        return chain.from_iterable(map(_IPS, self.peer_pods(policy_ns, peer)))

    def peer_pods(self, policy_ns: str, peer: PolicyPeer) -> list[PodEndpoint]:
        r = self.r
        sel = peer.pod_selector
        ns_sel = peer.namespace_selector
        if ns_sel is None:
            ns_ok: Iterable[str] = (policy_ns,)
        else:
            ns_ok = [ns for ns in r.keys(self.by_ns) if matches(ns_sel, self.namespace_labels(ns))]
        if sel is not None and sel.match_labels:
            # Start from the pods carrying the selector's rarest required label, not from all pods.
            fewest = min((r.group(self.by_label, kv) for kv in sel.match_labels), key=len)
            allowed = set(ns_ok)
            return [p for p in fewest.values() if p.key.namespace in allowed and matches(sel, p.labels)]
        candidates = [pod for ns in ns_ok for pod in r.group(self.by_ns, ns).values()]
        if sel is None:
            return candidates
        return [pod for pod in candidates if matches(sel, pod.labels)]

    def named_sets(self, name: str, protocol: Protocol) -> list[tuple[int, AddressSet]]:
        return self.r(self.named, (name, protocol))  # type: ignore[no-any-return]


def intersect_intervals(a: Intervals, b: Intervals) -> Intervals:
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


def _peer_set(view: ResolutionView, policy_ns: str, peers: Sequence[PolicyPeer]) -> AddressSet | None:
    """The addresses one rule's peers allow (None: any); ipBlocks minus their excepts, and the
    selected pods' addresses."""
    if not peers:
        return None
    nets = []
    hosts: list[IPAddress] = []
    for peer in peers:
        if peer.ip_block is not None:
            nets.extend(subtract(peer.ip_block.cidr, peer.ip_block.except_))
        else:
            hosts.extend(view.peer_addresses(policy_ns, peer))
    return address_set(nets, hosts)


def _numeric(port: PolicyPort) -> PortRange | None:
    if port.port is None:
        return PortRange(port.protocol, PORT_MIN, PORT_MAX)
    if isinstance(port.port, int):
        return PortRange(port.protocol, port.port, port.end_port if port.end_port is not None else port.port)
    return None


PeerKey = tuple[str, tuple[PolicyPeer, ...]]
"""(the policy's namespace, a rule's peers): what one rule's peer set depends on besides the
cluster (a podSelector without namespaceSelector means the policy's namespace)."""

MemoKey = tuple[ObjectKey, PolicyType, int, tuple[ContainerPort, ...]]
"""(policy, direction, rule index, the local pod's container ports for ingress): one API rule's
resolved rules depend on the local pod only through its ports, and only for ingress."""


def _rule_rules(
    view: ResolutionView,
    rule: PolicyRule,
    direction: PolicyType,
    local_ports: tuple[ContainerPort, ...],
    peers: AddressSet | None,
) -> list[Rule]:
    """One API rule as resolved rules: numeric ports together, named egress ports per number."""
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
            number = named_port_number(local_ports, p.port, p.protocol)
            if number is not None:
                numeric.append(PortRange(p.protocol, number, number))
            continue
        # Egress: the destination pod names the port; only pod addresses inside the peer set count.
        for number, named in view.named_sets(p.port, p.protocol):
            if peers is not None:
                named = AddressSet(
                    v4=intersect_intervals(named.v4, peers.v4), v6=intersect_intervals(named.v6, peers.v6)
                )
                if not named:
                    continue
            out.append(Rule(named, (PortRange(p.protocol, number, number),)))
    if numeric:
        out.append(Rule(peers, canonical_ports(numeric)))
    return out


DIRECTIONS = (PolicyType.Egress, PolicyType.Ingress)
Selection = tuple[tuple[MemoKey, ...], tuple[ObjectKey, ...], tuple[IPAddress, ...]]
"""What applies to a local pod in one direction: rule memo keys, policies, the pod's addresses."""


def declare_resolution(b: Build) -> None:
    """NetworkPolicy resolution as units (docs/engine.md):

    - `peer_set[(namespace, peers)]`, on demand: one rule's peer addresses, shared by every rule
      with the same peers in the namespace (a policy whose ports change keeps it);
    - `named_port_sets[(name, protocol)]`, on demand: per port number the pods naming it so;
    - `rule_result[MemoKey]`, on demand: one API rule's resolved rules (shared by every local pod
      the policy selects, per ingress named-port shape);
    - `canonical[memo keys]`, on demand: the sorted union of some rule results (local pods
      selected by the same policies share it);
    - `policy_selection[(direction, pod)]` per local pod with addresses: the rules and policies
      that apply to it (None: not isolated in that direction);
    - `isolation_unmerged[(direction, pod)]`: its isolation before the policy passes.
    """
    from k8s_offload.compiler.engine.core import Index
    from k8s_offload.compiler.engine.core import Rule as Table

    e, t = b.engine, b.t
    pods, policies = t["pod_ir"], t["policy_ir"]
    b.add(Index(e, "pods_by_namespace", pods, lambda k, p: ((k.namespace, p),) if p.ips else ()))
    b.add(Index(e, "pods_by_label", pods, lambda k, p: ((kv, p) for kv in p.labels) if p.ips else ()))
    b.add(Index(e, "pod_ips_by_namespace", pods, lambda k, p: ((k.namespace, p.ips),) if p.ips else ()))
    by_port = b.add(Index(e, "pods_by_port_name", pods, _port_names))
    by_ns = b.add(Index(e, "policies_by_namespace", policies, lambda k, pol: ((k.namespace, pol),)))
    interned: dict[AddressSet, AddressSet] = b.cache.setdefault("interned peer sets", {})

    def named_sets(r: Reads, key: tuple[str, Protocol]) -> list[tuple[int, AddressSet]]:
        """Per port number, in number order, the addresses of the pods that name the port so (a
        pod's first container port of that name and protocol counts)."""
        by_number: dict[int, list[IPAddress]] = defaultdict(list)
        for number, ips in r.group(by_port, key).values():
            by_number[number].extend(ips)
        return [(number, address_set((), by_number[number])) for number in sorted(by_number)]

    b.add(Table(e, "named_port_sets", named_sets))

    def peer_set(r: Reads, key: PeerKey) -> AddressSet | None:
        found = _peer_set(ResolutionView(r, t), *key)
        return found if found is None else interned.setdefault(found, found)

    peer_sets = b.add(Table(e, "peer_set", peer_set))

    def rule_result(r: Reads, key: MemoKey) -> tuple[Rule, ...]:
        pol_key, direction, i, local_ports = key
        pol = r(policies, pol_key)
        api = () if pol is None else pol.ingress if direction is PolicyType.Ingress else pol.egress
        if i >= len(api):  # the policy changed under a reader about to drop this unit
            return ()
        peers = r(peer_sets, (pol_key.namespace, api[i].peers))
        found = _rule_rules(ResolutionView(r, t), api[i], direction, local_ports, peers)
        return tuple(
            x if x.peers is None else Rule(interned.setdefault(x.peers, x.peers), x.ports) for x in found
        )

    results = b.add(Table(e, "rule_result", rule_result))

    def canonical(r: Reads, keys: tuple[MemoKey, ...]) -> tuple[Rule, ...]:
        rules = {x for key in keys for x in r(results, key)}
        return tuple(sorted(rules, key=lambda x: x.sort_key))

    canon = b.add(Table(e, "canonical_rules", canonical))
    iso_keys = b.add(
        Index(
            e,
            "isolation_keys",
            t["local_pods"],
            _isolation_keys,
        )
    )

    def selection(r: Reads, key: tuple[PolicyType, ObjectKey]) -> Selection | None:
        """The rules (memo keys) and policies that apply to one local pod in one direction, from
        the policies of its namespace that select it (None: not isolated). Every policy change
        in the namespace re-runs it; the resolution below runs only when its result changed."""
        direction, pod_key = key
        pod = r.group(iso_keys, key)[pod_key]
        selecting = sorted(
            (
                pol
                for pol in r.group(by_ns, pod_key.namespace).values()
                if direction in pol.policy_types and matches(pol.pod_selector, pod.labels)
            ),
            key=lambda pol: pol.key,
        )
        if not selecting:
            return None
        local_ports = tuple(pod.container_ports) if direction is PolicyType.Ingress else ()
        keys = tuple(
            (pol.key, direction, i, local_ports)
            for pol in selecting
            for i in range(len(pol.ingress if direction is PolicyType.Ingress else pol.egress))
        )
        return keys, tuple(pol.key for pol in selecting), pod.ips

    selections = b.add(Table(e, "policy_selection", selection, over=iso_keys))

    def isolation(r: Reads, key: tuple[PolicyType, ObjectKey]) -> PodIsolation | None:
        """The unmerged isolation of one local pod in one direction (None: not isolated)."""
        found = r(selections, key)
        if found is None:
            return None
        keys, policies, ips = found
        # Provenance for trace (compare=False: equal isolations stay equal, so early cut-off holds).
        sources = tuple(RuleSource(k[0], k[2], r(results, k)) for k in keys)
        return PodIsolation(key[1], key[0], ips, RuleSet(r(canon, keys)), policies, sources)

    b.add(Table(e, "isolation_unmerged", isolation, over=selections))


def _isolation_keys(key: ObjectKey, local: Mapping[Any, PodEndpoint]) -> list[tuple[Any, PodEndpoint]]:
    """(direction, pod) of a local pod with addresses (`local_pods` groups hold the one pod)."""
    (pod,) = local.values()
    return [((d, key), pod) for d in DIRECTIONS] if pod.ips else []


def _port_names(
    key: ObjectKey, pod: PodEndpoint
) -> list[tuple[tuple[str, Protocol], tuple[int, tuple[IPAddress, ...]]]]:
    """A pod's first container port of each (name, protocol), with the pod's addresses."""
    if not pod.ips:
        return []
    seen: dict[tuple[str, Protocol], int] = {}
    for cp in pod.container_ports:
        if cp.name:
            seen.setdefault((cp.name, cp.protocol), cp.port)
    return [(np, (number, pod.ips)) for np, number in seen.items()]


def named_port_number(ports: tuple[ContainerPort, ...], name: str, protocol: Protocol) -> int | None:
    """The number a pod's container ports give `name` for `protocol` (None: not named there);
    shared with bench/peers.py, which models the peers' named-port sets from the same rule."""
    for cp in ports:
        if cp.name == name and cp.protocol is protocol:
            return cp.port
    return None


def resolve_unmerged(ir: ClusterIR) -> PolicyIR:
    """Every local pod's isolation per direction before the policy passes: the resolution units
    run once on an IR (callers outside the pipeline: tests, benchmarks)."""
    from k8s_offload.compiler.compilation import Compilation

    c = Compilation(None, None, track=False, ir=ir, until="resolve_policy")  # type: ignore[arg-type]
    c.run()
    out = c.policy("isolation_unmerged")
    c.release()
    return out


def resolve_policies(ir: ClusterIR) -> PolicyIR:
    """Resolved and merged (`merge_rules` only): the NetworkPolicy reference tests compare."""
    from k8s_offload.compiler.compilation import Compilation
    from k8s_offload.compiler.passes.pipeline import PassConfig

    c = Compilation(None, None, PassConfig(frozenset({"merge_rules"})), track=False, ir=ir, until="isolation")  # type: ignore[arg-type]
    c.run()
    out = c.policy()
    c.release()
    return out
