"""The policy stages (lower/policy.py, then `lpm_compress`) kept up to date per local pod.

Input: a local pod's new isolation in one direction, after the policy passes. Per direction the
state mirrors what `lower_direction` computes from scratch:
- rule sets by identity with their pods and the policies behind them (an entry's origin); set
  ids in an `IdSpace`, which always equals `stable_ids` over the current identities;
- the distinct peer address sets with the (set, bit) using them, and every network of them with
  its direct owners; a network's class is the sets owning it or one of its ancestors (keyed here by
  the digests of those sets), and a class's id is that of its name, its lowest network
  (`class_name`), in an `IdSpace`: regrouping the sets behind a class keeps its id;
- the peer-class LPM table as `IncrementalOrtc`, i.e. `lpm_compress`'s output kept up to date.
Units (a pod's `*_pod` entry, a set's port entries, a set's peer-rule entries, the LPM table) are
re-emitted only when something they read changed, and diffed against their previous entries, so
`update` returns only entries that appeared or vanished. Content-derived ids are what make this
possible: a set's or a class's id depends on its own identity (a class's: its lowest network) and
on the identities colliding with it, never on an index among all sets.
"""

from __future__ import annotations

import hashlib
import ipaddress
from bisect import bisect_left, bisect_right, insort
from collections import Counter, defaultdict

from k8s_offload.compiler.bundle.model import ActionCall, Exact, Lpm, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.bundle.values import mapped, mapped_prefix_len
from k8s_offload.compiler.frontend.model import IPNetwork, ObjectKey
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.ir.rules import AddressSet, PodIsolation, RuleSet
from k8s_offload.compiler.lower.idspace import IdSpace
from k8s_offload.compiler.lower.policy import (
    _TABLES,
    CLASS_ID_BITS,
    RULE_BITS,
    SET_ID_BITS,
    _port_entries,
    class_name,
)
from k8s_offload.compiler.passes.incremental_ortc import IncrementalOrtc
from k8s_offload.compiler.passes.lpm_compress import WIDTH
from k8s_offload.compiler.passes.ortc import MISS
from k8s_offload.compiler.passes.pipeline import PASS_NAMES
from k8s_offload.compiler.passes.range_encoding import expand_blocks, range_encoding

NKey = tuple[int, int, int]
"""(version, network value, prefix length)"""
PEERS_ORIGIN = ("NetworkPolicy peers",)
PASS_SET = frozenset(PASS_NAMES)


class DirectionLowerer:
    def __init__(
        self, schema: Schema, direction: PolicyType, passes: frozenset[str] = PASS_SET, profile: str = "bmv2"
    ) -> None:
        """`passes` are the enabled entry passes (`lpm_compress`, `range_encoding`) and `profile`
        the target profile, as `run_entry_passes` applies them to the policy tables."""
        self.schema = schema
        self.compress = "lpm_compress" in passes
        self.range_encoding = "range_encoding" in passes and profile == "dpdk"
        self.dpdk = profile == "dpdk"
        self.t = _TABLES[direction]
        self.direction = direction
        self.isolations: dict[ObjectKey, PodIsolation] = {}
        self.sets: dict[str, RuleSet] = {}
        self.set_pods: dict[str, set[ObjectKey]] = defaultdict(set)
        self.set_policies: dict[str, Counter[str]] = defaultdict(Counter)
        self.set_origin: dict[str, tuple[str, ...]] = {}
        self.set_ids = IdSpace(SET_ID_BITS)
        self.users: dict[AddressSet, set[tuple[str, int]]] = defaultdict(set)
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
        self.ortc = IncrementalOrtc(WIDTH)
        self.units: dict[tuple[str, object], tuple[TableEntry, ...]] = {}
        self._lpm: dict[tuple[int, int, int], TableEntry] = {}
        self._raw_labels: dict[tuple[int, int], int] = {}
        """Without `lpm_compress`: each network's label (its entry is `_lpm[(value, len, label)]`)."""
        self._lpm_delta: tuple[list[TableEntry], list[TableEntry]] = ([], [])

    # ---- update -------------------------------------------------------------------------------

    def update(
        self, changes: dict[ObjectKey, PodIsolation | None]
    ) -> tuple[list[TableEntry], list[TableEntry]]:
        pods: set[ObjectKey] = set()
        touched: set[str] = set()
        for key, iso in changes.items():
            old = self.isolations.pop(key, None)
            if old is not None:
                ident = old.rule_set.identity
                self.set_pods[ident].discard(key)
                self.set_policies[ident].subtract(str(k) for k in old.policies)
                touched.add(ident)
            if iso is not None:
                if len(iso.rule_set.rules) > RULE_BITS:
                    raise BundleError(
                        f"{iso.pod}: {self.direction.value.lower()} policies give {len(iso.rule_set.rules)} "
                        f"distinct rules after merging; the pipeline holds {RULE_BITS} per pod and direction"
                    )
                self.isolations[key] = iso
                ident = iso.rule_set.identity
                self.set_pods[ident].add(key)
                self.set_policies[ident].update(str(k) for k in iso.policies)
                self.sets.setdefault(ident, iso.rule_set)
                touched.add(ident)
            pods.add(key)
        rule_units: set[str] = set()
        port_units: set[str] = set()
        gone_asets: set[AddressSet] = set()
        new_asets: set[AddressSet] = set()
        moved_sets: set[str] = set()
        for ident in touched:
            if not self.set_pods[ident]:
                del self.set_pods[ident]
                del self.set_policies[ident]
                self.set_origin.pop(ident, None)
                rs = self.sets.pop(ident)
                moved_sets |= self.set_ids.remove(ident)
                for bit, rule in enumerate(rs.rules):
                    if rule.peers is not None:
                        users = self.users[rule.peers]
                        users.discard((ident, bit))
                        if not users:
                            del self.users[rule.peers]
                            gone_asets.add(rule.peers)
                rule_units.add(ident)
                port_units.add(ident)
                continue
            if ident not in self.set_ids.ids:
                moved_sets |= self.set_ids.add(ident)
                for bit, rule in enumerate(self.sets[ident].rules):
                    if rule.peers is not None:
                        if rule.peers not in self.users:
                            new_asets.add(rule.peers)
                        self.users[rule.peers].add((ident, bit))
            origin = tuple(sorted(k for k, n in self.set_policies[ident].items() if n > 0))
            if self.set_origin.get(ident) != origin:
                self.set_origin[ident] = origin
                rule_units.add(ident)
                port_units.add(ident)
        both = gone_asets & new_asets
        gone_asets -= both
        new_asets -= both
        for ident in moved_sets:
            if ident in self.sets:
                rule_units.add(ident)
                port_units.add(ident)
                pods |= self.set_pods[ident]
        for aset in self._classes(gone_asets, new_asets) | new_asets:
            rule_units |= {ident for ident, _ in self.users.get(aset, ())}

        added, removed = self._lpm_delta
        self._lpm_delta = ([], [])
        for key in pods:
            self._unit(("pod", key), self._pod_entries(key), added, removed)
        for ident in port_units:
            self._unit(("ports", ident), self._port_entries(ident), added, removed)
        for ident in rule_units:
            self._unit(("rules", ident), self._rule_entries(ident), added, removed)
        return added, removed

    def entries(self) -> list[TableEntry]:
        out = [e for unit in self.units.values() for e in unit]
        out.extend(self._lpm.values())
        return out

    def _unit(
        self,
        name: tuple[str, object],
        new: tuple[TableEntry, ...],
        added: list[TableEntry],
        removed: list[TableEntry],
    ) -> None:
        old = self.units.pop(name, ())
        if new:
            self.units[name] = new
        if old == new:
            return
        kept = set(new)
        before = set(old)
        removed += [e for e in old if e not in kept]
        added += [e for e in new if e not in before]

    # ---- classes ------------------------------------------------------------------------------

    def _digest(self, aset: AddressSet) -> str:
        found = self.digests.get(aset)
        if found is None:
            found = self.digests[aset] = hashlib.blake2b(str(aset).encode(), digest_size=8).hexdigest()
        return found

    def _classes(self, gone: set[AddressSet], new: set[AddressSet]) -> set[AddressSet]:
        """Update networks, memberships, classes and class ids, and the LPM table; returns the
        address sets in a class that appeared, vanished or changed id."""
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
        lpm: list[tuple[int, int, int | None]] = []
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
            if labels_get(k) == label:
                continue
            if label is None:
                del self.labels[k]
                net_value, net_len = self.lpm_keys.pop(k)
            else:
                self.labels[k] = label
                assert ipnet is not None
                net_value = mapped(ipnet.network_address)
                net_len = mapped_prefix_len(ipnet.network_address, ipnet.prefixlen)
                self.lpm_keys[k] = (net_value, net_len)
            lpm.append((net_value, net_len, label))
        if lpm and not self.compress:  # one entry per network, as the lowering emits them
            for net_value, net_len, label in lpm:
                old_label = self._raw_labels.pop((net_value, net_len), None)
                if old_label is not None:
                    self._lpm_delta[1].append(self._lpm.pop((net_value, net_len, old_label)))
                if label is not None:
                    p = (net_value, net_len, label)
                    self._raw_labels[(net_value, net_len)] = label
                    self._lpm[p] = self._raw_entry(p)
                    self._lpm_delta[0].append(self._lpm[p])
        elif lpm:
            appeared, vanished = self.ortc.update(lpm)
            for p in vanished:
                self._lpm_delta[1].append(self._lpm.pop(p))
            for p in appeared:
                self._lpm[p] = self._lpm_entry(p)
                self._lpm_delta[0].append(self._lpm[p])
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

    def _pod_entries(self, key: ObjectKey) -> tuple[TableEntry, ...]:
        iso = self.isolations.get(key)
        if iso is None:
            return ()
        t = self.t
        rs = iso.rule_set
        any_peer = sum(1 << i for i, r in enumerate(rs.rules) if r.peers is None)
        any_port = sum(1 << i for i, r in enumerate(rs.rules) if r.ports is None)
        origin = (str(iso.pod), *(str(k) for k in iso.policies))
        sid = self.set_ids.ids[rs.identity]
        return tuple(
            self.schema.entry(
                t.pod,
                {t.pod_key: Exact(mapped(ip))},
                f"{t.prefix}_isolate",
                {"set_id": sid, "any_peer_rules": any_peer, "any_port_rules": any_port},
                origin=origin,
            )
            for ip in iso.addresses
        )

    def _port_entries(self, ident: str) -> tuple[TableEntry, ...]:
        rs = self.sets.get(ident)
        if rs is None:
            return ()
        out = _port_entries(self.schema, self.t, self.set_ids.ids[ident], rs, self.set_origin[ident])
        if self.range_encoding:  # per (table, set, protocol): one set's entries are a whole input
            out = range_encoding(out, "dpdk")
        if self.dpdk:
            out = expand_blocks(out)
        return tuple(out)

    def _rule_entries(self, ident: str) -> tuple[TableEntry, ...]:
        rs = self.sets.get(ident)
        if rs is None:
            return ()
        t = self.t
        sid = self.set_ids.ids[ident]
        masks: dict[int, int] = defaultdict(int)
        for bit, rule in enumerate(rs.rules):
            if rule.peers is not None:
                for cls in self.aset_classes.get(rule.peers, ()):
                    masks[self.class_ids.ids[self.class_name[cls]]] |= 1 << bit
        return tuple(
            self.schema.entry(
                f"{t.prefix}_peer_rules",
                {f"{t.prefix}_set": Exact(sid), f"{t.prefix}_peer_class": Exact(cid)},
                f"{t.prefix}_set_peer_rules",
                {"rules": mask},
                origin=self.set_origin[ident],
            )
            for cid, mask in sorted(masks.items())
        )

    def _raw_entry(self, p: tuple[int, int, int]) -> TableEntry:
        """A network's entry without `lpm_compress`, as `lower_direction` emits it."""
        value, plen, label = p
        t = self.t
        return self.schema.entry(
            f"{t.prefix}_peer_class",
            {t.peer_key: Lpm(value, plen)},
            f"{t.prefix}_set_peer_class",
            {"peer_class": label},
            origin=PEERS_ORIGIN,
        )

    def _lpm_entry(self, p: tuple[int, int, int]) -> TableEntry:
        value, plen, label = p
        t = self.t
        proto = self.schema.entry(
            f"{t.prefix}_peer_class",
            {t.peer_key: Lpm(value, plen)},
            f"{t.prefix}_set_peer_class",
            {"peer_class": 1},
            origin=PEERS_ORIGIN,
        )
        assert proto.action is not None
        ((field, _),) = proto.match
        return TableEntry(
            proto.table,
            ((field, Lpm(value, plen)),) if plen else (),
            ActionCall(proto.action.name, ((proto.action.params[0][0], 0 if label == MISS else label),)),
            origin=PEERS_ORIGIN,
        )


_Sets = tuple[AddressSet, ...]


def _network(k: NKey) -> IPNetwork:
    """The `ipaddress` network of a key (built only for networks new to the section)."""
    version, value, plen = k
    if version == 4:
        return ipaddress.IPv4Network((value, plen))
    return ipaddress.IPv6Network((value, plen))


class PolicySection:
    """Both directions."""

    def __init__(self, schema: Schema, passes: frozenset[str] = PASS_SET, profile: str = "bmv2") -> None:
        self.directions = {
            d: DirectionLowerer(schema, d, passes, profile) for d in (PolicyType.Egress, PolicyType.Ingress)
        }

    def update(
        self, changes: dict[tuple[PolicyType, ObjectKey], PodIsolation | None]
    ) -> tuple[list[TableEntry], list[TableEntry]]:
        added: list[TableEntry] = []
        removed: list[TableEntry] = []
        for direction, lowerer in self.directions.items():
            mine = {pod: iso for (d, pod), iso in changes.items() if d is direction}
            if mine:
                a, r = lowerer.update(mine)
                added += a
                removed += r
        return added, removed
