"""The policy stages composed into one verdict per local pod: which (peer, protocol, port) it allows.

The tables of a direction (`*_pod`, `*_peer_host` then `*_peer_class` on a miss, `*_peer_rules`,
`*_port_rules`) only compute `(peer_rules | any_peer_rules) & (port_rules | any_port_rules) != 0`
(p4src/README.md, "Policy classification"). Composing them removes the internal numbering (rule-set ids, peer
classes, rule bits), so two bundles that number them differently still compare equal, and the
result can be compared with the resolved NetworkPolicy rules directly.

The cluster policy tiers (`*_tier_*`, `*_admin`, `*_baseline`) are composed the same way, rule bit
by rule bit, then with the first-match ternary tables, into the three-tier verdict of the API
(admin tier, then NetworkPolicy, then for a pod no NetworkPolicy isolates the baseline tier, then
allow): `intended` evaluates the same semantics on the resolved rules (`PodTiers`) as reference.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from k8s_offload.analysis.verify.bdd import BDDNode, Space, any_of, short
from k8s_offload.analysis.verify.tables import Profiles, TableFunction, encode_table, entries_by_table
from k8s_offload.compiler.bundle.model import Bundle, Exact, TableEntry, Ternary
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import MAPPED_PREFIX, PROTOCOL_NUMBERS, mapped, mapped_prefix_len
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.frontend.tiers import Tier, TierAction
from k8s_offload.compiler.ir.rules import PolicyIR, Rule, RuleSet
from k8s_offload.compiler.ir.tiers import PodTiers

L4_WITH_PORTS = (6, 17, 132)  # TCP, UDP, SCTP: the only protocols whose ports the parser reads


@dataclass(frozen=True, slots=True)
class Direction:
    name: str  # "egress" / "ingress"
    prefix: str  # table prefix
    pod_field: str  # the local pod's address
    peer_field: str  # the other end
    drop_reason: int  # DROP_EGRESS_POLICY / DROP_INGRESS_POLICY in p4src/include/defines.p4
    policy_type: PolicyType
    tier_drop_reason: int = 0  # DROP_EGRESS_TIER / DROP_INGRESS_TIER


DIRECTIONS = (
    Direction("egress", "eg", "src_addr", "dst_addr", 4, PolicyType.Egress, 12),
    Direction("ingress", "in", "dst_addr", "src_addr", 5, PolicyType.Ingress, 13),
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
    pods: dict[int, Hashable]
    """address -> what its verdict depends on: (NetworkPolicy set key or None, tier set key or None)."""
    allowed_by_set: dict[Hashable, BDDNode]

    def allowed(self, pod: int) -> BDDNode | None:
        key = self.pods.get(pod)
        return None if key is None else self.allowed_by_set[key]


def _param(params: tuple[tuple[str, int], ...], name: str) -> int:
    return dict(params).get(name, 0)


SetKey = tuple[int, int, int]
"""(set id, any_peer_rules, any_port_rules) of a `*_pod` / `*_tier_pod` entry."""


def _stage_sets(
    space: Space,
    schema: Schema,
    profiles: Profiles,
    entries: Callable[[str], list[TableEntry]],
    prefix: str,
    class_field: str,
) -> tuple[dict[int, SetKey], Callable[[SetKey], list[BDDNode]], list[TableFunction]]:
    """One stage's pod entries and, per set key, the region of each rule bit: the peers whose
    class's mask has the bit (or all, for an any-peer bit) times the ports whose range's mask
    has it (or all). A flow's bit i is set exactly in region i, since the peer mask depends on the
    peer alone and the port mask on (protocol, port) alone."""
    pods: dict[int, SetKey] = {}
    for e in entries(f"{prefix}_pod"):
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
        for name in (f"{prefix}_peer_host", f"{prefix}_peer_class")
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

    masks_of_set: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for e in entries(f"{prefix}_peer_rules"):
        if e.is_default or e.action is None:
            continue
        key = {short(n): m.value for n, m in e.match if isinstance(m, Exact)}
        masks_of_set[key[f"{prefix}_set"]].append((key[class_field], _param(e.action.params, "rules")))

    port_table = encode_table(
        space, schema, profiles, f"{prefix}_port_rules", entries(f"{prefix}_port_rules")
    )
    set_field = f"{prefix}_set"
    done: dict[SetKey, list[BDDNode]] = {}

    def bit_regions(key: SetKey) -> list[BDDNode]:
        if key in done:
            return done[key]
        set_id, any_peer, any_port = key
        peers: dict[int, list[BDDNode]] = defaultdict(list)
        for cls, mask in masks_of_set.get(set_id, []):
            if cls in class_region:
                for i in _bit_list(mask):
                    peers[i].append(class_region[cls])
        ports: dict[int, list[BDDNode]] = defaultdict(list)
        for outcome, region in port_table.outcomes.items():
            params = outcome[2] if outcome[0] == "action" else ()
            assert isinstance(params, tuple)
            mask = _param(params, "rules")
            if not mask:
                continue
            r = space.let(region, {set_field: set_id})
            if r != space.false:
                for i in _bit_list(mask):
                    ports[i].append(r)
        width = max([*peers, *ports, (any_peer | any_port).bit_length() - 1, -1]) + 1
        out = []
        for i in range(width):
            p = space.true if any_peer >> i & 1 else any_of(space, peers.get(i, []))
            q = space.true if any_port >> i & 1 else any_of(space, ports.get(i, []))
            out.append(p & q)
        done[key] = out
        return out

    return pods, bit_regions, [*classifiers, port_table]


def _bit_list(mask: int) -> Iterable[int]:
    return (i for i in range(mask.bit_length()) if mask >> i & 1)


def _decide(
    space: Space, entries: list[TableEntry], set_field: str, hits_field: str
) -> Callable[[int, list[BDDNode]], dict[str, BDDNode]]:
    """A tier's ternary table as regions per action name for one set: entries by priority,
    highest first, each matching where its cared-for bits are as its value says."""
    by_set: dict[int, list[tuple[int, int, int, str]]] = defaultdict(list)
    for e in entries:
        if e.is_default or e.action is None:
            continue
        m = dict(e.match)
        sid = next(v.value for n, v in m.items() if short(n) == set_field and isinstance(v, Exact))
        hits = next((v for n, v in m.items() if short(n) == hits_field), None)
        value, mask = (hits.value, hits.mask) if isinstance(hits, Ternary) else (0, 0)
        by_set[sid].append((e.priority, value, mask, e.action.name.rsplit("_", 1)[-1]))

    def regions(set_id: int, bits: list[BDDNode]) -> dict[str, BDDNode]:
        out: dict[str, BDDNode] = defaultdict(lambda: space.false)
        taken = space.false
        for _, value, mask, action in sorted(by_set.get(set_id, []), key=lambda x: -x[0]):
            u = space.true
            for i in _bit_list(mask):
                b = bits[i] if i < len(bits) else space.false
                u = u & (b if value >> i & 1 else ~b)
            out[action] |= u & ~taken
            taken |= u
        return out

    return regions


def three_tiers(
    space: Space,
    admin: Mapping[str, BDDNode] | None,
    np_allowed: BDDNode | None,
    baseline: Mapping[str, BDDNode] | None,
) -> BDDNode:
    """The API's evaluation order for one pod and direction: admin Allow or Deny is final (Pass
    and no match go on), then NetworkPolicy when it isolates the pod, else the baseline tier
    (Deny denies; Allow, Pass and no match allow)."""
    later = (
        np_allowed
        if np_allowed is not None
        else ~baseline.get("deny", space.false)
        if baseline
        else space.true
    )
    if admin is None:
        return later
    allow, deny = admin.get("allow", space.false), admin.get("deny", space.false)
    return allow | (~allow & ~deny & later)


def compose_policy(
    space: Space, schema: Schema, bundle: Bundle, d: Direction, profiles: Profiles | None = None
) -> tuple[PolicyFunction, list[TableFunction]]:
    """The direction's verdict per pod, and the encoded tables (for their ambiguity reports)."""
    profiles = profiles or Profiles(schema, bundle)
    by_table = entries_by_table(bundle)

    def entries(alias: str) -> list[TableEntry]:
        return by_table.get(schema.table(alias).name, [])

    np_pods, np_bits, fns = _stage_sets(space, schema, profiles, entries, d.prefix, f"{d.prefix}_peer_class")
    tier_pods: dict[int, SetKey] = {}
    tier_bits: Callable[[SetKey], list[BDDNode]] | None = None
    decide: dict[str, Callable[[int, list[BDDNode]], dict[str, BDDNode]]] = {}
    tp = f"{d.prefix}_tier"
    if schema.has_table(f"{tp}_pod"):
        tier_pods, tier_bits, tier_fns = _stage_sets(
            space, schema, profiles, entries, tp, f"{d.prefix}_peer_class"
        )
        fns += tier_fns
        for tier in ("admin", "baseline"):
            decide[tier] = _decide(space, entries(f"{d.prefix}_{tier}"), f"{tp}_set", f"{tp}_hits")
    pods: dict[int, Hashable] = {}
    allowed: dict[Hashable, BDDNode] = {}
    for pod in set(np_pods) | set(tier_pods):
        key = (np_pods.get(pod), tier_pods.get(pod))
        pods[pod] = key
        if key in allowed:
            continue
        np_key, tier_key = key
        np_allowed = any_of(space, np_bits(np_key)) if np_key is not None else None
        admin = baseline = None
        if tier_key is not None and tier_bits is not None:
            bits = tier_bits(tier_key)
            admin = decide["admin"](tier_key[0], bits)
            baseline = decide["baseline"](tier_key[0], bits)
        allowed[key] = three_tiers(space, admin, np_allowed, baseline)
    return PolicyFunction(d, pods, allowed), fns


def rule_set_bdd(space: Space, d: Direction, rules: RuleSet) -> BDDNode:
    """What the resolved rules allow: some rule whose peers and ports both match."""
    return any_of(space, (rule_bdd(space, d, rule) for rule in rules.rules))


def rule_bdd(space: Space, d: Direction, rule: Rule) -> BDDNode:
    """The traffic one resolved rule matches: its peers and its ports."""
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
    return peers & ports


def first_match(space: Space, d: Direction, pt: PodTiers, tier: Tier) -> dict[str, BDDNode]:
    """The reference evaluation of one tier for one pod: its rules in order, the first that
    matches decides (Allow, Deny or Pass), as the API's text says."""
    out: dict[str, BDDNode] = defaultdict(lambda: space.false)
    taken = space.false
    for e in pt.tier_set.entries:
        if e.tier is not tier:
            continue
        u = rule_bdd(space, d, e.rule)
        out[_ACTION_NAMES[e.action]] |= u & ~taken
        taken |= u
    return out


_ACTION_NAMES = {TierAction.Allow: "allow", TierAction.Deny: "deny", TierAction.Pass: "pass"}


def intended(
    space: Space, policy: PolicyIR, d: Direction, tiers: Iterable[PodTiers] = ()
) -> dict[int, tuple[str, BDDNode]]:
    """Per local pod address: (pod name, allowed region) from the resolved policy IR and the
    resolved tier rules, by the three-tier order (`three_tiers`)."""
    np_by_addr: dict[int, tuple[str, BDDNode]] = {}
    cache: dict[str, BDDNode] = {}
    for iso in policy.isolations:
        if iso.direction is not d.policy_type:
            continue
        ident = iso.rule_set.identity
        if ident not in cache:
            cache[ident] = rule_set_bdd(space, d, iso.rule_set)
        for ip in iso.addresses:
            np_by_addr[mapped(ip)] = (str(iso.pod), cache[ident])
    out = dict(np_by_addr)
    for pt in tiers:
        if pt.direction is not d.policy_type:
            continue
        admin = first_match(space, d, pt, Tier.Admin)
        baseline = first_match(space, d, pt, Tier.Baseline)
        for ip in pt.addresses:
            np = np_by_addr.get(mapped(ip))
            out[mapped(ip)] = (str(pt.pod), three_tiers(space, admin, np[1] if np else None, baseline))
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
