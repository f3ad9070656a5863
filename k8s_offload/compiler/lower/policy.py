"""NetworkPolicy rule sets to the policy stages of p4src (see p4src/README.md, "Policy
classification").

Per direction: each distinct rule set gets a content-derived id (a changed set is a new id, which
lets the loader switch a pod to it with one MODIFY); rule i of a set is bit i of the masks; peer
addresses are classified once for all sets by an LPM table whose classes are the distinct
memberships of addresses in peer sets, a class's id derived from its lowest network (so it survives
changes of the peer sets behind it); ports are disjoint ranges per (set, protocol).
"""

from __future__ import annotations

import hashlib
import ipaddress
from bisect import bisect_left, bisect_right, insort
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from k8s_offload.compiler.bundle.model import Exact, Lpm, Range, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import MAPPED_PREFIX, PROTOCOL_NUMBERS, mapped, mapped_prefix_len
from k8s_offload.compiler.frontend.model import IPAddress, IPNetwork, ObjectKey
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import PORT_MAX, PORT_MIN, AddressSet, PodIsolation, RuleSet
from k8s_offload.compiler.lower.ids import IdAllocator, IdSpace, stable_ids
from k8s_offload.compiler.passes.ortc import DONT_CARE, MISS, Ortc

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.ir.rules import Rule as PolicyRule
    from k8s_offload.compiler.passes.pipeline import Build

WIDTH = 128

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


def peer_rule_entries(
    schema: Schema,
    t: _Tables,
    class_field: str,
    set_id: int,
    rules: Sequence[PolicyRule],
    classes_of: Callable[[AddressSet], Iterable[int]],
    origin: tuple[str, ...],
) -> list[TableEntry]:
    """A set's `*_peer_rules` entries: for each peer class, the mask of the rules whose peers
    contain it (rule i is bit i). `classes_of` gives a peer set's class ids (an engine read, so
    the entries follow regroups). The NetworkPolicy and the tier stages share it."""
    masks: dict[int, int] = defaultdict(int)
    for bit, rule in enumerate(rules):
        if rule.peers is not None:
            for cid in classes_of(rule.peers):
                masks[cid] |= 1 << bit
    p = t.prefix
    return [
        schema.entry(
            f"{p}_peer_rules",
            {f"{p}_set": Exact(set_id), class_field: Exact(cid)},
            f"{p}_set_peer_rules",
            {"rules": mask},
            origin=origin,
        )
        for cid, mask in sorted(masks.items())
    ]


def pod_stage_entries(
    schema: Schema,
    t: _Tables,
    action: str,
    set_id: int,
    rules: Sequence[PolicyRule],
    addresses: Iterable[IPAddress],
    origin: tuple[str, ...],
) -> tuple[TableEntry, ...]:
    """A local pod's entries in a classified stage (`t.pod`, one per address): its set, and the
    masks of its rules without a peer or a port restriction (they match whatever the classifiers
    say). The NetworkPolicy stages (action `isolate`) and the tier stages (`subject`) share it."""
    any_peer = sum(1 << i for i, x in enumerate(rules) if x.peers is None)
    any_port = sum(1 << i for i, x in enumerate(rules) if x.ports is None)
    params = {"set_id": set_id, "any_peer_rules": any_peer, "any_port_rules": any_port}
    return tuple(
        schema.entry(t.pod, {t.pod_key: Exact(mapped(ip))}, f"{t.prefix}_{action}", params, origin=origin)
        for ip in addresses
    )


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


Change = tuple[Hashable, Any, Any]
"""(key, old value, new value) of a `Stateful` table."""
NKey = tuple[int, int, int]
"""(version, network value, prefix length)"""
PEERS_ORIGIN = ("NetworkPolicy peers",)


class PeerClasses:
    """The peer classes of one direction (an engine `Stateful` table over the address sets the
    rule sets use): each network of some set belongs to the class of its membership (the sets
    containing it), a class's id is that of its name, its lowest network (`class_name`), so
    regrouping the sets behind a class keeps its id. `get(address set)` is the ids of its
    classes, `get((value, length))` the class id of a mapped network (the LPM table's input).

    Two ways in, one result (a property test compares them): without tracking (a one-shot
    compile) the first update builds everything with one walk over the sorted networks
    (`_classes`) and `stable_ids`; with tracking, networks move between classes by difference,
    only new networks are looked up, and class ids live in an `IdSpace`."""

    def __init__(self, track: bool) -> None:
        self.track = track
        self.digests: dict[AddressSet, str] = {}
        self.owners: dict[NKey, set[AddressSet]] = {}
        self.nets: dict[NKey, IPNetwork] = {}
        self.keys: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        self.lengths: dict[int, Counter[int]] = {4: Counter(), 6: Counter()}
        self.cls: dict[NKey, str] = {}
        self.class_nets: dict[str, set[NKey]] = defaultdict(set)
        self.class_sets: dict[str, frozenset[AddressSet]] = {}
        self.aset_classes: dict[AddressSet, set[str]] = defaultdict(set)
        self.class_low: dict[str, NKey] = {}
        """Each class's lowest network; `class_name` of it is the class's identity in `class_ids`."""
        self.class_name: dict[str, str] = {}
        self.name_class: dict[str, str] = {}
        self.class_ids = IdSpace(CLASS_ID_BITS)
        self.labels: dict[NKey, int] = {}
        self.lpm_keys: dict[NKey, tuple[int, int]] = {}
        self.built: dict[AddressSet, frozenset[int]] | None = None
        """Without tracking: every set's class ids (the whole result of `_build`)."""
        self.built_labels: dict[tuple[int, int], int] = {}
        self.lpm_labels: dict[tuple[int, int], int] = {}
        """With tracking: each network's class id, by its mapped (value, length)."""

    def get(self, key: Hashable) -> Any:
        if isinstance(key, AddressSet):
            if self.built is not None:
                return self.built.get(key, frozenset())
            ids, names = self.class_ids.ids, self.class_name
            return frozenset(ids[names[c]] for c in self.aset_classes.get(key, ()))
        labels = self.built_labels if self.built is not None else self.lpm_labels
        return labels.get(key)  # type: ignore[call-overload]

    def update(self, changes: Mapping[Hashable, tuple[Any, Any]]) -> list[Change]:
        gone: set[AddressSet] = {a for a, (old, new) in changes.items() if old is not None and new is None}  # type: ignore[misc]
        new: set[AddressSet] = {a for a, (old, now) in changes.items() if old is None and now is not None}  # type: ignore[misc]
        out: list[Change] = []
        if not self.track:
            assert self.built is None, "a one-shot table is built once"
            return self._build(new)
        reached = self._update(gone, new, out)
        out.extend((a, None, None) for a in reached | gone | new)
        return out

    def _build(self, asets: set[AddressSet]) -> list[Change]:
        """Every class at once: memberships by one walk over the sorted networks (`_classes`),
        ids by `stable_ids` over the class names."""
        addr_sets = sorted(asets, key=lambda a: a.sort_key)
        membership = _classes(addr_sets)
        names: dict[frozenset[int], str] = {}
        for nkey, m in membership.items():  # in network order: the first of a class is its lowest
            if m not in names:
                names[m] = class_name(nkey)
        class_ids = stable_ids(names.values(), CLASS_ID_BITS)
        of_set: dict[AddressSet, set[int]] = defaultdict(set)
        for m, name in names.items():
            cid = class_ids[name]
            for i in m:
                of_set[addr_sets[i]].add(cid)
        self.built = {a: frozenset(ids) for a, ids in of_set.items()}
        out: list[Change] = [(a, None, ids) for a, ids in self.built.items()]
        labels = self.built_labels
        for (version, value, plen), m in membership.items():
            key = (MAPPED_PREFIX | value, plen + 96) if version == 4 else (value, plen)
            label = labels[key] = class_ids[names[m]]
            out.append((key, None, label))
        return out

    def _digest(self, aset: AddressSet) -> str:
        found = self.digests.get(aset)
        if found is None:
            found = self.digests[aset] = hashlib.blake2b(str(aset).encode(), digest_size=8).hexdigest()
        return found

    def _update(
        self, gone: set[AddressSet], new: set[AddressSet], relabelled: list[Change]
    ) -> set[AddressSet]:
        """Update networks, memberships, classes and class ids; appends the networks whose label
        changed to `relabelled` and returns the address sets in a class that appeared, vanished or
        changed id."""
        touched: set[NKey] = set()
        # A network's membership is the sets owning it or a network containing it, so a set
        # that vanished (appeared) leaves (joins) exactly the memberships of its networks and
        # their descendants: those move by difference; only networks that appeared in this
        # update are looked up from scratch (`_membership`).
        lost: dict[NKey, list[AddressSet]] = defaultdict(list)
        won: dict[NKey, list[AddressSet]] = defaultdict(list)
        fresh: set[NKey] = set()
        for aset in gone:
            for k in aset.prefixes():  # its networks as (version, address, length)
                owners = self.owners[k]
                owners.discard(aset)
                touched.add(k)
                lost[k].append(aset)
                for d in self._descendants(k):
                    touched.add(d)
                    lost[d].append(aset)
                if not owners:
                    del self.owners[k]
                    del self.nets[k]
                    self._remove_key(k)
            self.digests.pop(aset, None)
        for aset in new:
            for k in aset.prefixes():
                if k not in self.owners:
                    self.owners[k] = set()
                    self.nets[k] = _network(k)
                    self._add_key(k)
                    fresh.add(k)
                self.owners[k].add(aset)
                touched.add(k)
                won[k].append(aset)
                for d in self._descendants(k):
                    touched.add(d)
                    won[d].append(aset)
        lengths = {v: sorted(c) for v, c in self.lengths.items()}
        class_added: set[str] = set()
        class_gone: set[str] = set()
        old_low: dict[str, NKey | None] = {}  # class -> its lowest network before this update
        joined: dict[str, list[NKey]] = defaultdict(list)  # class -> networks that joined it
        # A class's networks share its membership (`class_sets`), so networks are grouped by
        # (class before, sets lost, sets won) and each group moves to its new class at once.
        owned, cls, class_sets, class_nets = self.owners, self.cls, self.class_sets, self.class_nets
        lost_get, won_get = lost.get, won.get
        steps: dict[tuple[str, _Sets, _Sets], list[NKey]] = defaultdict(list)
        moves: dict[tuple[str | None, frozenset[AddressSet] | None], list[NKey]] = defaultdict(list)
        for k in touched:
            old = cls.get(k)
            if k not in owned:
                moves[(old, None)].append(k)
            elif old is None or k in fresh:
                moves[(old, self._membership(k, lengths[k[0]]))].append(k)
            else:
                steps[(old, tuple(lost_get(k, ())), tuple(won_get(k, ())))].append(k)
        for (old, out, into), ks in steps.items():
            moves[(old, class_sets[old].difference(out).union(into))] += ks
        idents: dict[frozenset[AddressSet], str] = {}
        for (old, m), ks in moves.items():
            if old is not None:
                if old not in old_low:
                    old_low[old] = self.class_low.get(old)
                nets = class_nets[old]
                nets.difference_update(ks)
                if not nets:
                    class_gone.add(old)
            if m is None:
                for k in ks:
                    cls.pop(k, None)
                continue
            ident = idents.get(m)
            if ident is None:  # networks of one class share the membership: join its digests once
                ident = idents[m] = "|".join(sorted(self._digest(a) for a in m))
            cls.update(dict.fromkeys(ks, ident))
            if ident not in old_low:
                old_low[ident] = self.class_low.get(ident)
            joined[ident] += ks
            if ident not in class_sets:
                class_sets[ident] = m
            if not class_nets[ident]:
                class_added.add(ident)
            class_nets[ident].update(ks)
        class_gone = {c for c in class_gone if not self.class_nets[c]}
        class_added -= class_gone
        reached: set[AddressSet] = set()
        for ident in class_gone:
            reached |= self.class_sets[ident]
            del self.class_nets[ident]
            for aset in self.class_sets.pop(ident):
                found = self.aset_classes.get(aset)
                if found is not None:
                    found.discard(ident)
                    if not found:
                        del self.aset_classes[aset]
        for ident in class_added:
            for aset in self.class_sets[ident]:
                self.aset_classes[aset].add(ident)
        # Names (lowest networks, `class_name`) of the classes touched, before and after; only a
        # name that vanished or appeared changes the id space.
        renamed: set[str] = set()
        names_before: set[str] = set()
        names_after: set[str] = set()
        for ident, before in old_low.items():
            now = self.class_nets.get(ident)
            after: NKey | None = None
            if now:
                if before is not None and before in now:
                    after = min([before, *joined.get(ident, ())])
                else:
                    after = min(now)
            if before is not None:
                name = class_name(before)
                names_before.add(name)
                if self.name_class.get(name) == ident:
                    del self.name_class[name]
            if after is None:
                self.class_low.pop(ident, None)
                self.class_name.pop(ident, None)
            else:
                self.class_low[ident] = after
                self.class_name[ident] = class_name(after)
                names_after.add(self.class_name[ident])
            if before != after:
                renamed.add(ident)
        for ident in old_low:
            if ident in self.class_name:
                self.name_class[self.class_name[ident]] = ident
        moved_names: set[str] = set()
        for name in names_before - names_after:
            moved_names |= self.class_ids.remove(name)
        for name in names_after - names_before:
            moved_names |= self.class_ids.add(name)
        changed = renamed | {self.name_class[n] for n in moved_names if n in self.name_class}
        for ident in changed:
            if ident in self.class_sets:
                reached |= self.class_sets[ident]
        relabel: set[NKey] = set(touched)
        for ident in changed:
            relabel |= self.class_nets.get(ident, set())
        nets_get, labels_get = self.nets.get, self.labels.get
        ids, names = self.class_ids.ids, self.class_name
        label_of: dict[str, int] = {}  # class -> its id, looked up once per class
        for k in relabel:
            ipnet = nets_get(k)
            label: int | None = None
            if ipnet is not None:
                c = cls[k]
                label = label_of.get(c)
                if label is None:
                    label = label_of[c] = ids[names[c]]
            old_label = labels_get(k)
            if old_label == label:
                continue
            if label is None:
                del self.labels[k]
                lpm_key = self.lpm_keys.pop(k)
                del self.lpm_labels[lpm_key]
            else:
                self.labels[k] = label
                assert ipnet is not None
                lpm_key = (
                    mapped(ipnet.network_address),
                    mapped_prefix_len(ipnet.network_address, ipnet.prefixlen),
                )
                self.lpm_keys[k] = lpm_key
                self.lpm_labels[lpm_key] = label
            relabelled.append((lpm_key, old_label, label))
        return reached

    def _membership(self, k: NKey, lengths: list[int] | None = None) -> frozenset[AddressSet]:
        """The sets owning `k` or a network containing it; `lengths`: the prefix lengths present
        for k's version, sorted (computed here when not given)."""
        version, value, plen = k
        width = 32 if version == 4 else 128
        member: set[AddressSet] = set()
        for length in sorted(self.lengths[version]) if lengths is None else lengths:
            if length > plen:
                break
            found = self.owners.get((version, value >> (width - length) << (width - length), length))
            if found:
                member |= found
        return frozenset(member)

    def _add_key(self, k: NKey) -> None:
        insort(self.keys[k[0]], (k[1], k[2]))
        self.lengths[k[0]][k[2]] += 1

    def _remove_key(self, k: NKey) -> None:
        keys = self.keys[k[0]]
        del keys[bisect_left(keys, (k[1], k[2]))]
        lengths = self.lengths[k[0]]
        lengths[k[2]] -= 1
        if not lengths[k[2]]:
            del lengths[k[2]]

    def _descendants(self, k: NKey) -> list[NKey]:
        version, value, plen = k
        width = 32 if version == 4 else 128
        if plen == width:
            return []
        keys = self.keys[version]
        hi = value + (1 << (width - plen)) - 1
        i = bisect_left(keys, (value, plen + 1))
        j = bisect_right(keys, (hi, width + 1))
        return [(version, v, p) for v, p in keys[i:j]]

    # ---- entries ------------------------------------------------------------------------------


def _network(k: NKey) -> IPNetwork:
    """The `ipaddress` network of a key (built only for networks new to the section)."""
    version, value, plen = k
    if version == 4:
        return ipaddress.IPv4Network((value, plen))
    return ipaddress.IPv6Network((value, plen))


HOST_MIN_LEN = 127
"""Networks of this (mapped, 128-bit) prefix length and longer, i.e. IPv4 /31 and /32 and IPv6 /127
and /128, go to the exact `*_peer_host` table with the `exact_hosts` pass, one entry per address:
measured on the benchmark's M cluster (docs/benchmarks.md), moving /32s alone left 38% of the
passes-off TCAM, /31s too 20%, for about 2.2 exact entries per LPM entry saved."""


class PeerLpm:
    """The peer-class tables of one direction (an engine `Stateful` table over `PeerClasses'`
    network labels), as entries. With `lpm_compress`, ORTC's fewest LPM entries for the same
    address -> class function (`Ortc`: a batch compress, or kept up to date under tracking);
    without it, one entry per network. With `hosts` (the `exact_hosts` pass), networks of
    `HOST_MIN_LEN` bits and more are instead one exact `*_peer_host` entry per address (the
    class of the longest such network holding it), which the program looks up before the LPM,
    and ORTC treats those addresses as don't care."""

    def __init__(
        self,
        schema: Schema,
        t: _Tables,
        compress: bool,
        track: bool,
        hosts: bool = False,
        origin: tuple[str, ...] = PEERS_ORIGIN,
    ) -> None:
        self.schema, self.t, self.origin = schema, t, origin
        self.ortc = Ortc(WIDTH, track) if compress else None
        self.hosts = hosts
        self.entries: dict[Prefix3, TableEntry] = {}
        self.raw: dict[tuple[int, int], int] = {}
        self.host_nets: dict[tuple[int, int], int] = {}
        """With `hosts`: the label of each network of `HOST_MIN_LEN` bits or more."""
        self.host_entries: dict[int, TableEntry] = {}
        """With `hosts`: the exact entry of each address those networks hold."""
        self.delta: tuple[list[TableEntry], list[TableEntry]] = ([], [])
        self.calls: dict[int, TableEntry] = {}
        self.host_calls: dict[int, TableEntry] = {}

    def get(self, key: Hashable) -> Any:
        return None

    def update(self, changes: Mapping[Hashable, tuple[Any, Any]]) -> list[Change]:
        removed, added = self.delta
        labels = [(k[0], k[1], new) for k, (_, new) in changes.items() if isinstance(k, tuple)]
        if self.hosts:
            labels = self._split_hosts(labels)
        if self.ortc is None:
            for value, plen, label in labels:
                old = self.raw.pop((value, plen), None)
                if old is not None:
                    removed.append(self.entries.pop((value, plen, old)))
                if label is not None:
                    self.raw[(value, plen)] = label
                    e = self.entries[(value, plen, label)] = self._entry(value, plen, label, full_key=True)
                    added.append(e)
        elif labels:
            appeared, vanished = self.ortc.update(labels)
            for p in vanished:
                removed.append(self.entries.pop(p))
            for p in appeared:
                e = self.entries[p] = self._entry(*p, full_key=False)
                added.append(e)
        return []

    def _split_hosts(self, labels: list[tuple[int, int, int | None]]) -> list[tuple[int, int, int | None]]:
        """Apply the label changes of host networks to the exact entries; returns the changes
        left for the LPM (host networks as don't care when ORTC runs, else none)."""
        removed, added = self.delta
        nets = self.host_nets
        rest: list[tuple[int, int, int | None]] = []
        touched: set[int] = set()
        for value, plen, label in labels:
            if plen < HOST_MIN_LEN:
                rest.append((value, plen, label))
                continue
            if label is None:
                nets.pop((value, plen), None)
            else:
                nets[(value, plen)] = label
            touched.update(range(value, value + (1 << (WIDTH - plen))))
            if self.ortc is not None:
                rest.append((value, plen, None if label is None else DONT_CARE))
        for address in sorted(touched):
            label = nets.get((address, WIDTH))
            for plen in range(WIDTH - 1, HOST_MIN_LEN - 1, -1):
                if label is not None:
                    break
                label = nets.get((address >> (WIDTH - plen) << (WIDTH - plen), plen))
            old = self.host_entries.get(address)
            if old is not None:
                assert old.action is not None
                if label == old.action.params[0][1]:
                    continue
                removed.append(self.host_entries.pop(address))
            if label is not None:
                e = self.host_entries[address] = self._host_entry(address, label)
                added.append(e)
        return rest

    def take_output(self) -> tuple[list[TableEntry], list[TableEntry]]:
        out, self.delta = self.delta, ([], [])
        return out

    def _entry(self, value: int, plen: int, label: int, full_key: bool) -> TableEntry:
        """The first entry of a label goes through the schema's checks, the others share its
        table, field and action call (an aligned prefix of 0..128 bits fits)."""
        t = self.t
        label = 0 if label == MISS else label
        proto = self.calls.get(label)
        if proto is None or (full_key and not plen):  # a /0 key is refused, as the schema words it
            proto = self.schema.entry(
                f"{t.prefix}_peer_class",
                {t.peer_key: Lpm(value, plen) if full_key else Lpm(0, WIDTH)},
                f"{t.prefix}_set_peer_class",
                {"peer_class": label},
                origin=self.origin,
            )
            self.calls[label] = proto
        ((field, _),) = proto.match
        match = ((field, Lpm(value, plen)),) if plen or full_key else ()  # a /0 is don't care
        return TableEntry(proto.table, match, proto.action, origin=self.origin)

    def _host_entry(self, address: int, label: int) -> TableEntry:
        """As `_entry`, for the exact table: checked once per label, then shared."""
        proto = self.host_calls.get(label)
        if proto is None:
            t = self.t
            proto = self.host_calls[label] = self.schema.entry(
                f"{t.prefix}_peer_host",
                {t.peer_key: Exact(address)},
                f"{t.prefix}_set_peer_class",
                {"peer_class": label},
                origin=self.origin,
            )
        ((field, _),) = proto.match
        return TableEntry(proto.table, ((field, Exact(address)),), proto.action, origin=self.origin)


Prefix3 = tuple[int, int, int]
_Sets = tuple[AddressSet, ...]


def declare_policy(b: Build) -> None:
    """The policy stages as units, per direction (docs/engine.md): per rule set (by identity)
    its origin, id, port entries and peer-rule entries; per local pod its `*_pod` entries; the
    peer classes and their LPM table as `Stateful` tables."""
    from k8s_offload.compiler.engine.core import Index, Rule, Stateful

    e, schema, config, t = b.engine, b.schema, b.config, b.t
    isolations = t["isolation"]
    set_ids: dict[PolicyType, Any] = {}
    for direction, tables in _TABLES.items():
        p = tables.prefix
        sets = b.add(
            Index(
                e,
                f"{p}_rule_sets",
                isolations,
                _in_direction(direction),
            )
        )

        def rule_set(r: Reads, ident: str, sets: Any = sets) -> tuple[RuleSet, tuple[str, ...]]:
            """A rule set and its origin: the policies behind every pod using it."""
            isos = r.group(sets, ident).values()
            origin = tuple(sorted({str(k) for iso in isos for k in iso.policies}))
            return next(iter(isos)).rule_set, origin

        rule_sets = b.add(Rule(e, f"{p}_rule_set", rule_set, over=sets))
        ids = set_ids[direction] = b.add(Stateful(e, f"{p}_set_ids", sets, IdAllocator(SET_ID_BITS)))
        users = b.add(
            Index(
                e,
                f"{p}_peer_users",
                rule_sets,
                lambda ident, v: (
                    (rule.peers, (ident, bit))
                    for bit, rule in enumerate(v[0].rules)
                    if rule.peers is not None
                ),
            )
        )
        classes = b.add(Stateful(e, f"{p}_peer_classes", users, PeerClasses(e.track)))
        compress = "lpm_compress" in config.enabled
        hosts = "exact_hosts" in config.enabled
        lpm = PeerLpm(schema, tables, compress, e.track, hosts)
        b.add(Stateful(e, f"{p}_peer_lpm", classes, lpm, out="entities"))

        def peer_rules(
            r: Reads,
            ident: str,
            tables: _Tables = tables,
            rule_sets: Any = rule_sets,
            classes: Any = classes,
            ids: Any = ids,
        ) -> tuple[TableEntry, ...]:
            """(set, class) -> the rules whose peers contain the class."""
            rs, origin = r(rule_sets, ident)
            classes_of = partial(r, classes)
            field = f"{tables.prefix}_peer_class"
            return tuple(
                peer_rule_entries(schema, tables, field, r(ids, ident), rs.rules, classes_of, origin)
            )

        b.add(Rule(e, f"{p}_peer_rules", peer_rules, over=rule_sets, out="entities"))

        def port_rules(
            r: Reads, ident: str, tables: _Tables = tables, rule_sets: Any = rule_sets, ids: Any = ids
        ) -> tuple[TableEntry, ...]:
            rs, origin = r(rule_sets, ident)
            return tuple(_port_entries(schema, tables, r(ids, ident), rs, origin))

        ports = b.add(Rule(e, f"{p}_port_rules", port_rules, over=rule_sets))
        b.entry_passes(ports, f"{p}_port_rules")

    def pod_entries(r: Reads, key: tuple[PolicyType, ObjectKey]) -> tuple[TableEntry, ...]:
        """A local pod's set and the masks of its rules without peer or port restriction."""
        iso = r(isolations, key)
        rs = iso.rule_set
        if len(rs.rules) > RULE_BITS:
            return ()
        tables = _TABLES[iso.direction]
        origin = (str(iso.pod), *(str(k) for k in iso.policies))
        sid = r(set_ids[iso.direction], rs.identity)
        return pod_stage_entries(schema, tables, "isolate", sid, rs.rules, iso.addresses, origin)

    b.add(Rule(e, "policy_pod", pod_entries, over=isolations, out="entities"))

    def too_many(r: Reads, key: tuple[PolicyType, ObjectKey]) -> tuple[tuple[Any, str], ...]:
        iso = r(isolations, key)
        n = len(iso.rule_set.rules)
        if n <= RULE_BITS:
            return ()
        message = (
            f"{iso.pod}: {iso.direction.value.lower()} policies give {n} distinct rules after merging; "
            f"the pipeline holds {RULE_BITS} per pod and direction"
        )
        return (((_DIRECTION_ORDER[iso.direction], iso.pod), message),)

    b.add(Rule(e, "policy_rule_bits", too_many, over=isolations, out="lower_errors"))


def _in_direction(d: PolicyType) -> Any:
    """An index function: an isolation of direction `d` under its rule set's identity."""

    def fn(key: Any, iso: PodIsolation) -> tuple[tuple[str, PodIsolation], ...]:
        return ((iso.rule_set.identity, iso),) if iso.direction is d else ()

    return fn


_DIRECTION_ORDER = {PolicyType.Egress: 0, PolicyType.Ingress: 1}
