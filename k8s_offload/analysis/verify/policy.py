"""The policy stages composed into one verdict per local pod: which (peer, protocol, port) it allows.

The tables of a direction (`*_pod`, `*_peer_host` then `*_peer_class` on a miss, `*_peer_rules`,
`*_port_rules`) only compute `(peer_rules | any_peer_rules) & (port_rules | any_port_rules) != 0`
(p4src/README.md, "Policy classification"). Composing them removes the internal numbering (rule-set ids, peer
classes, rule bits), so two bundles that number them differently still compare equal, and the
result can be compared with the resolved NetworkPolicy rules directly.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from k8s_offload.analysis.verify.bdd import BDDNode, Space, any_of, short
from k8s_offload.analysis.verify.tables import Profiles, TableFunction, encode_table, entries_by_table
from k8s_offload.compiler.bundle.model import Bundle, Exact, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import MAPPED_PREFIX, PROTOCOL_NUMBERS, mapped, mapped_prefix_len
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import PolicyIR, RuleSet

L4_WITH_PORTS = (6, 17, 132)  # TCP, UDP, SCTP: the only protocols whose ports the parser reads


@dataclass(frozen=True, slots=True)
class Direction:
    name: str  # "egress" / "ingress"
    prefix: str  # table prefix
    pod_field: str  # the local pod's address
    peer_field: str  # the other end
    drop_reason: int  # DROP_EGRESS_POLICY / DROP_INGRESS_POLICY in p4src/include/defines.p4
    policy_type: PolicyType


DIRECTIONS = (
    Direction("egress", "eg", "src_addr", "dst_addr", 4, PolicyType.Egress),
    Direction("ingress", "in", "dst_addr", "src_addr", 5, PolicyType.Ingress),
)


def is_mapped(addr: int) -> bool:
    return addr >> 32 == MAPPED_PREFIX >> 32


def address_text(addr: int) -> str:
    if is_mapped(addr):
        return str(ipaddress.IPv4Address(addr & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(addr))


def ports_care(space: Space) -> BDDNode:
    """Reachable (protocol, port) pairs: the port is 0 unless TCP, UDP or SCTP was parsed."""
    with_ports = any_of(space, (space.exact("l4_proto", p) for p in L4_WITH_PORTS))
    return with_ports | space.exact("dport", 0)


def family_care(space: Space, field: str, v4: bool) -> BDDNode:
    """Addresses of one family: IPv4 packets carry mapped addresses, IPv6 packets never do."""
    u = space.prefix(field, MAPPED_PREFIX, 96)
    return u if v4 else ~u


@dataclass(slots=True)
class PolicyFunction:
    """Per local pod address: None (not isolated: everything allowed) or the allowed region over
    (peer address, l4_proto, dport)."""

    direction: Direction
    pods: dict[int, tuple[int, int, int]]  # address -> (set id, any_peer, any_port)
    allowed_by_set: dict[tuple[int, int, int], BDDNode]

    def allowed(self, pod: int) -> BDDNode | None:
        key = self.pods.get(pod)
        return None if key is None else self.allowed_by_set[key]


def _param(params: tuple[tuple[str, int], ...], name: str) -> int:
    return dict(params).get(name, 0)


def compose_policy(
    space: Space, schema: Schema, bundle: Bundle, d: Direction, profiles: Profiles | None = None
) -> tuple[PolicyFunction, list[TableFunction]]:
    """The direction's verdict per pod, and the encoded tables (for their ambiguity reports)."""
    profiles = profiles or Profiles(schema, bundle)
    by_table = entries_by_table(bundle)

    def entries(alias: str) -> list[TableEntry]:
        return by_table.get(schema.table(alias).name, [])

    pods: dict[int, tuple[int, int, int]] = {}
    for e in entries(f"{d.prefix}_pod"):
        if e.is_default or e.action is None:
            continue
        (_, m), *_ = e.match
        assert isinstance(m, Exact)
        p = e.action.params
        pods[m.value] = (_param(p, "set_id"), _param(p, "any_peer_rules"), _param(p, "any_port_rules"))

    # The peer's class: the exact host table's when it hits, else the LPM's (p4src: `if
    # (!*_peer_host.apply().hit) *_peer_class.apply()`); a program without the host table has
    # only the LPM.
    classifiers = [
        encode_table(space, schema, profiles, name, entries(name))
        for name in (f"{d.prefix}_peer_host", f"{d.prefix}_peer_class")
        if schema.has_table(name)
    ]
    class_region: dict[int, BDDNode] = defaultdict(lambda: space.false)
    answered = space.false  # keys an earlier classifier's entry hit
    for fn in classifiers:
        last = fn is classifiers[-1]
        for outcome, region in fn.outcomes.items():
            if not last:
                region = region & fn.hit  # a miss goes on to the next table
            elif answered != space.false:
                region = region & ~answered
            params = outcome[2] if outcome[0] == "action" else ()
            assert isinstance(params, tuple)
            class_region[_param(params, "peer_class")] |= region
        answered = answered | fn.hit

    peer_masks: dict[tuple[int, int], int] = {}
    for e in entries(f"{d.prefix}_peer_rules"):
        if e.is_default or e.action is None:
            continue
        key = {short(n): m.value for n, m in e.match if isinstance(m, Exact)}
        peer_masks[(key[f"{d.prefix}_set"], key[f"{d.prefix}_peer_class"])] = _param(e.action.params, "rules")

    port_table = encode_table(
        space, schema, profiles, f"{d.prefix}_port_rules", entries(f"{d.prefix}_port_rules")
    )
    set_field = f"{d.prefix}_set"

    peer_by_set: dict[int, dict[int, BDDNode]] = {}
    port_by_set: dict[int, dict[int, BDDNode]] = {}

    masks_of_set: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (set_id, cls), mask in peer_masks.items():
        masks_of_set[set_id].append((cls, mask))

    def peer_regions(set_id: int) -> dict[int, BDDNode]:
        """Rule mask -> peers; only the set's own peer_rules entries are visited, and every
        other class (most of them, in a large cluster) gets mask 0 as the complement."""
        if set_id not in peer_by_set:
            out: dict[int, list[BDDNode]] = defaultdict(list)
            for cls, mask in masks_of_set.get(set_id, []):
                if cls in class_region:
                    out[mask].append(class_region[cls])
            regions = {m: any_of(space, rs) for m, rs in out.items()}
            rest = ~any_of(space, regions.values())
            regions[0] = regions.get(0, space.false) | rest
            peer_by_set[set_id] = regions
        return peer_by_set[set_id]

    def port_regions(set_id: int) -> dict[int, BDDNode]:
        if set_id not in port_by_set:
            out: dict[int, list[BDDNode]] = defaultdict(list)
            for outcome, region in port_table.outcomes.items():
                params = outcome[2] if outcome[0] == "action" else ()
                assert isinstance(params, tuple)
                r = space.let(region, {set_field: set_id})
                if r != space.false:
                    out[_param(params, "rules")].append(r)
            port_by_set[set_id] = {m: any_of(space, rs) for m, rs in out.items()}
        return port_by_set[set_id]

    allowed: dict[tuple[int, int, int], BDDNode] = {}
    for pod_key in set(pods.values()):
        set_id, any_peer, any_port = pod_key
        parts = [
            pr & qr
            for pm, pr in peer_regions(set_id).items()
            for qm, qr in port_regions(set_id).items()
            if (pm | any_peer) & (qm | any_port)
        ]
        allowed[pod_key] = any_of(space, parts)
    return PolicyFunction(d, pods, allowed), [*classifiers, port_table]


def rule_set_bdd(space: Space, d: Direction, rules: RuleSet) -> BDDNode:
    """What the resolved rules allow: some rule whose peers and ports both match."""
    parts = []
    for rule in rules.rules:
        if rule.peers is None:
            peers = space.true
        else:
            peers = any_of(
                space,
                (
                    space.prefix(
                        d.peer_field,
                        mapped(n.network_address),
                        mapped_prefix_len(n.network_address, n.prefixlen),
                    )
                    if mapped_prefix_len(n.network_address, n.prefixlen)
                    else space.true
                    for n in rule.peers.networks
                ),
            )
        if rule.ports is None:
            ports = space.true
        else:
            ports = any_of(
                space,
                (
                    space.exact("l4_proto", PROTOCOL_NUMBERS[p.protocol.value.lower()])
                    & space.in_range("dport", p.low, p.high)
                    for p in rule.ports
                ),
            )
        parts.append(peers & ports)
    return any_of(space, parts)


def intended(space: Space, policy: PolicyIR, d: Direction) -> dict[int, tuple[str, BDDNode]]:
    """Per local pod address: (pod name, allowed region) from the resolved policy IR."""
    out: dict[int, tuple[str, BDDNode]] = {}
    cache: dict[str, BDDNode] = {}
    for iso in policy.isolations:
        if iso.direction is not d.policy_type:
            continue
        ident = iso.rule_set.identity
        if ident not in cache:
            cache[ident] = rule_set_bdd(space, d, iso.rule_set)
        for ip in iso.addresses:
            out[mapped(ip)] = (str(iso.pod), cache[ident])
    return out


def policy_fields(d: Direction) -> tuple[str, ...]:
    return (d.pod_field, d.peer_field, "l4_proto", "dport")


def care_for_pod(space: Space, d: Direction, pod: int, ports: BDDNode | None = None) -> BDDNode:
    return family_care(space, d.peer_field, is_mapped(pod)) & (
        ports if ports is not None else ports_care(space)
    )


def pod_names(policy: PolicyIR | None) -> Mapping[int, str]:
    if policy is None:
        return {}
    return {mapped(ip): str(iso.pod) for iso in policy.isolations for ip in iso.addresses}
