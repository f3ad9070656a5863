"""NetworkPolicy rule sets to the policy stages of p4src (see p4src/README.md, "Policy
classification").

Per direction: each distinct rule set gets a content-derived id (a changed set is a new id, which
lets the loader switch a pod to it with one MODIFY); rule i of a set is bit i of the masks; peer
addresses are classified once for all sets by an LPM table whose classes are the distinct
memberships of addresses in peer sets, a class's id derived from its lowest network (so it survives
changes of the peer sets behind it); ports are disjoint ranges per (set, protocol).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from k8s_offload.compiler.bundle.model import Exact, Lpm, Range, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.bundle.values import MAPPED_PREFIX, PROTOCOL_NUMBERS, mapped
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import PORT_MAX, PORT_MIN, AddressSet, PolicyIR, RuleSet
from tests.reference.lower_ids import stable_ids

RULE_BITS = 64
SET_ID_BITS = 16
CLASS_ID_BITS = 16


@dataclass(frozen=True, slots=True)
class _Tables:
    prefix: str  # "eg" or "in"
    pod: str
    pod_key: str
    peer_key: str


_TABLES = {
    PolicyType.Egress: _Tables("eg", "eg_pod", "src_addr", "dst_addr"),
    PolicyType.Ingress: _Tables("in", "in_pod", "dst_addr", "src_addr"),
}


@dataclass
class PolicyLowering:
    entries: list[TableEntry] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


Prefix = tuple[int, int, int]
"""(version, network address as int, prefix length): `AddressSet.prefixes()`."""


def class_name(nkey: Prefix) -> str:
    """A peer class's identity (for `stable_ids`): its lowest network, in (version, address,
    length) order, e.g. "4:a000000/8"."""
    version, value, plen = nkey
    return f"{version}:{value:x}/{plen}"


def _classes(addr_sets: list[AddressSet]) -> dict[Prefix, frozenset[int]]:
    """For every network that appears in some set: the indices of the sets containing it, in
    (version, address, length) order.

    The LPM's longest match for an address is the deepest such network containing it, and the
    sets containing that network are exactly the sets containing the address, since every set
    network containing the address is an ancestor of it. Networks either nest or are disjoint,
    so in that order a stack of the networks enclosing the current one gives its ancestors.
    """
    owners: dict[Prefix, list[int]] = defaultdict(list)
    for i, aset in enumerate(addr_sets):
        for nkey in aset.prefixes():
            owners[nkey].append(i)
    out: dict[Prefix, frozenset[int]] = {}
    stack: list[tuple[int, int, frozenset[int]]] = []  # (version, last address, membership)
    for nkey in sorted(owners):
        version, value, plen = nkey
        while stack and (stack[-1][0] != version or stack[-1][1] < value):
            stack.pop()
        own = owners[nkey]
        member = stack[-1][2].union(own) if stack else frozenset(own)
        out[nkey] = member
        stack.append((version, value + (1 << ((32 if version == 4 else 128) - plen)) - 1, member))
    return out


def _port_entries(
    schema: Schema, t: _Tables, set_id: int, rule_set: RuleSet, origin: tuple[str, ...]
) -> list[TableEntry]:
    bounds: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for bit, rule in enumerate(rule_set.rules):
        for pr in rule.ports or ():
            bounds[pr.protocol.value.lower()].append((pr.low, pr.high, bit))
    out: list[TableEntry] = []
    for proto, spans in sorted(bounds.items()):
        cuts = sorted({lo for lo, _, _ in spans} | {hi + 1 for _, hi, _ in spans})
        atoms: list[tuple[int, int, int]] = []
        for lo, nxt in pairwise(cuts):
            hi = nxt - 1
            mask = 0
            for s_lo, s_hi, bit in spans:
                if s_lo <= lo and hi <= s_hi:
                    mask |= 1 << bit
            if not mask:
                continue
            if atoms and atoms[-1][2] == mask and atoms[-1][1] + 1 == lo:
                atoms[-1] = (atoms[-1][0], hi, mask)
            else:
                atoms.append((lo, hi, mask))
        for lo, hi, mask in atoms:
            key: dict[str, Exact | Range] = {
                f"{t.prefix}_set": Exact(set_id),
                "l4_proto": Exact(PROTOCOL_NUMBERS[proto]),
            }
            if not (lo == PORT_MIN and hi == PORT_MAX):
                key["dport"] = Range(lo, hi)
            out.append(
                schema.entry(
                    f"{t.prefix}_port_rules",
                    key,
                    f"{t.prefix}_set_port_rules",
                    {"rules": mask},
                    priority=1,
                    origin=origin,
                )
            )
    return out


def lower_direction(schema: Schema, pir: PolicyIR, direction: PolicyType, out: PolicyLowering) -> None:
    t = _TABLES[direction]
    isolations = [iso for iso in pir.isolations if iso.direction is direction]
    if not isolations:
        return
    sets = pir.rule_sets(direction)
    set_ids = stable_ids((s.identity for s in sets), SET_ID_BITS)
    set_origin: dict[str, set[str]] = defaultdict(set)
    for iso in isolations:
        set_origin[iso.rule_set.identity].update(str(k) for k in iso.policies)

    # Pods -> their set and the masks of rules without peer or port restriction.
    for iso in isolations:
        rs = iso.rule_set
        if len(rs.rules) > RULE_BITS:
            raise BundleError(
                f"{iso.pod}: {direction.value.lower()} policies give {len(rs.rules)} distinct rules "
                f"after merging; the pipeline holds {RULE_BITS} per pod and direction"
            )
        any_peer = sum(1 << i for i, r in enumerate(rs.rules) if r.peers is None)
        any_port = sum(1 << i for i, r in enumerate(rs.rules) if r.ports is None)
        origin = (str(iso.pod), *(str(k) for k in iso.policies))
        for ip in iso.addresses:
            out.entries.append(
                schema.entry(
                    t.pod,
                    {t.pod_key: Exact(mapped(ip))},
                    f"{t.prefix}_isolate",
                    {"set_id": set_ids[rs.identity], "any_peer_rules": any_peer, "any_port_rules": any_port},
                    origin=origin,
                )
            )

    # Peer classes, shared by all sets of this direction.
    addr_sets: list[AddressSet] = sorted(
        {r.peers for s in sets for r in s.rules if r.peers is not None}, key=lambda a: a.sort_key
    )
    index = {a: i for i, a in enumerate(addr_sets)}
    membership = _classes(addr_sets)

    # A class is named by its lowest network: unique (every network has exactly one membership,
    # hence one class) and unchanged while the partition of networks into classes is, however the
    # peer sets behind the memberships are regrouped (docs/ir.md, "Peer class ids").
    names: dict[frozenset[int], str] = {}
    for nkey, m in membership.items():  # in network order: the first of a class is its lowest
        if m not in names:
            names[m] = class_name(nkey)

    def class_identity(m: frozenset[int]) -> str:
        return names[m]

    class_ids = stable_ids(names.values(), CLASS_ID_BITS)
    # One entry per network: the first of each class goes through the schema's checks, the
    # others share its table, field and action call (an aligned prefix of 1..128 bits fits).
    first: dict[int, TableEntry] = {}
    origin = ("NetworkPolicy peers",)
    for (version, value, plen), m in membership.items():
        cid = class_ids[class_identity(m)]
        key = Lpm(MAPPED_PREFIX | value, plen + 96) if version == 4 else Lpm(value, plen)
        proto = first.get(cid)
        if proto is None or not key.prefix_len:
            entry = schema.entry(
                f"{t.prefix}_peer_class",
                {t.peer_key: key},
                f"{t.prefix}_set_peer_class",
                {"peer_class": cid},
                origin=origin,
            )
            first.setdefault(cid, entry)
        else:
            entry = TableEntry(proto.table, ((proto.match[0][0], key),), proto.action, origin=origin)
        out.entries.append(entry)
    # (set, class) -> rules whose peers contain the class.
    users: dict[int, list[tuple[int, int]]] = defaultdict(list)  # addr set index -> (set id, bit)
    for s in sets:
        for bit, rule in enumerate(s.rules):
            if rule.peers is not None:
                users[index[rule.peers]].append((set_ids[s.identity], bit))
    masks: dict[tuple[int, int], int] = defaultdict(int)
    identity_of_set = {set_ids[s.identity]: s.identity for s in sets}
    for m in set(membership.values()):
        cid = class_ids[class_identity(m)]
        for ai in m:
            for sid, bit in users[ai]:
                masks[(sid, cid)] |= 1 << bit
    for (sid, cid), mask in sorted(masks.items()):
        out.entries.append(
            schema.entry(
                f"{t.prefix}_peer_rules",
                {f"{t.prefix}_set": Exact(sid), f"{t.prefix}_peer_class": Exact(cid)},
                f"{t.prefix}_set_peer_rules",
                {"rules": mask},
                origin=tuple(sorted(set_origin[identity_of_set[sid]])),
            )
        )
    for s in sets:
        out.entries.extend(
            _port_entries(schema, t, set_ids[s.identity], s, tuple(sorted(set_origin[s.identity])))
        )
    out.stats[f"{t.prefix} rule sets"] = len(sets)
    out.stats[f"{t.prefix} peer classes"] = len(class_ids)


def lower_policies(schema: Schema, pir: PolicyIR) -> PolicyLowering:
    out = PolicyLowering()
    for direction in (PolicyType.Egress, PolicyType.Ingress):
        lower_direction(schema, pir, direction, out)
    return out
