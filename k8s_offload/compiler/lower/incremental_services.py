"""`lower_services`, kept up to date from changed frontends, backend sets and Service nodes.

The full lowering's global parts are ids (`stable_ids`, here `IdSpace`: backends, frontends per
table, groups, Maglev slots, affinity), groups shared by every (set, selection) with the same chosen
backends, and origins unioned over the sets using a backend or group. This keeps them as indexes
with reference counts, and re-emits only the units a change reaches: a backend (member + DNAT
entry), a group, a frontend (per table of its selections: frontend, split, group, reverse NAT and
svc_affinity entries), a selection's aff_backend entries. Everything `lower_services` handles is
covered: cluster and local (externalTrafficPolicy / internalTrafficPolicy Local) selections with
svc_frontend_internal and masquerading, topology hints, ClientIP session affinity, the offload
errors, fitting notes and masquerade warnings. The output always equals `lower_services` on the
same IR (tests/compiler/incremental checks it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from k8s_offload.compiler.bundle.model import Exact, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.frontend.model import ObjectKey
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    Diagnostic,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.lower.ecmp import SELECTOR, deal, maglev_size, selector_limits, split_bits
from k8s_offload.compiler.lower.idspace import IdSpace
from k8s_offload.compiler.lower.services import (
    CLUSTER,
    ID_BITS,
    MAGLEV_MEMBER_BASE,
    GroupLayout,
    _backend_ident,
    _bits,
    _frontend_ident,
    _selection_name,
    affinity_units,
    backend_entities,
    cluster_backends,
    fitting_note,
    frontend_entries,
    local_backends,
    maglev_layout,
    maglev_slot_ident,
    offload_problem,
    part_names,
    selections,
)

Entity = TableEntry | ProfileMember | ProfileGroup
FeKey = tuple[object, ...]
Unit = tuple[str, object]


@dataclass(frozen=True, slots=True)
class _FeState:
    fe: ServiceFrontend
    offloaded: bool
    problem: Diagnostic | None
    set_key: BackendSetKey | None  # the set it uses, when offloaded and the set exists
    plans: tuple[tuple[str, str, bool], ...]  # (table, selection, masquerade), when offloaded


SelKey = tuple[BackendSetKey, str]
"""A backend set and an endpoint selection (cluster or local): what a group is chosen from."""
Members = tuple[str, ...]
"""A group's backends: sorted backend identities (equal ids exactly when the identities are)."""


class ServiceLowerer:
    def __init__(
        self, schema: Schema, profile: str = "bmv2", lb: str = "hash", node: NodeFacts = DEFAULT_NODE_FACTS
    ) -> None:
        """`profile` sets the selector limits (ecmp.py), `lb` the group layout: "hash" (one member
        per backend) or "maglev" (slot members per group, their ids in `slot_ids`); `node` the node
        facts in effect (local endpoints, topology zone, masquerade families)."""
        self.schema = schema
        self.node = node
        self.families = {ip.version for ip in node.node_ips}
        self.limits = selector_limits(schema, profile)
        self.max_group = self.limits.max_group_size
        self.lb = lb
        self.maglev = lb == "maglev"
        self.slot_ids = IdSpace(ID_BITS)
        self.slot_name: dict[str, str] = {}
        """Maglev: slot identity -> the group name it belongs to."""
        self.services: dict[ObjectKey, ServiceInfo] = {}
        self.sets: dict[BackendSetKey, BackendSet] = {}
        self.frontends: dict[FeKey, ServiceFrontend] = {}
        self.fes_of_set: dict[BackendSetKey, set[FeKey]] = defaultdict(set)
        self.fes_of_svc: dict[ObjectKey, set[FeKey]] = defaultdict(set)
        self.state: dict[FeKey, _FeState] = {}
        self.fe_of_ident: dict[str, FeKey] = {}
        self.used: Counter[BackendSetKey] = Counter()
        self.sel_used: Counter[SelKey] = Counter()
        self.sels_of_set: dict[BackendSetKey, set[str]] = defaultdict(set)
        self.contrib: dict[BackendSetKey, BackendSet] = {}
        self.be_sets: dict[str, set[BackendSetKey]] = {}
        self.be_any: dict[str, Backend] = {}
        self.chosen: dict[SelKey, Members] = {}
        self.groups: dict[Members, set[SelKey]] = {}
        self.group_name: dict[Members, str] = {}
        self.name_tuple: dict[str, Members] = {}
        self.name_group: dict[str, Members] = {}
        self.be_ids = IdSpace(ID_BITS)
        self.fe_ids = IdSpace(ID_BITS)
        self.aff_ids = IdSpace(ID_BITS)
        """Over the selection names of every (set, selection) with a group, as `lower_services`."""
        self.sel_of_aff: dict[str, SelKey] = {}
        self.group_ids = IdSpace(32)
        self.units: dict[Unit, tuple[Entity, ...]] = {}

    def diagnostics(self) -> list[Diagnostic]:
        """Offload problems and the masquerade warnings (`lower_services`'s `_masquerade_warnings`)."""
        found = [s.problem for s in self.state.values() if s.problem is not None]
        warned: set[Diagnostic] = set()
        for st in self.state.values():
            fe = st.fe
            if any(masq for _, _, masq in st.plans) and fe.vip.version not in self.families:
                message = (
                    f"{fe.kind} {fe.vip}: no IPv{fe.vip.version} node IP in the node facts to masquerade "
                    "with; external traffic to endpoints on other nodes keeps its client address"
                )
                warned.add(Diagnostic(fe.service, message))
        return found + sorted(warned)

    def update(
        self,
        frontends: Mapping[FeKey, ServiceFrontend | None],
        sets: Mapping[BackendSetKey, BackendSet | None],
        services: Mapping[ObjectKey, ServiceInfo | None] | None = None,
    ) -> tuple[list[Entity], list[Entity]]:
        """Apply changed frontends (by sort key), backend sets and Service nodes (None: gone);
        (added, removed)."""
        dirty_fe: set[FeKey] = set(frontends)
        dirty_sel: set[SelKey] = set()
        for skey, svc in (services or {}).items():
            if svc is None:
                self.services.pop(skey, None)
            else:
                self.services[skey] = svc
            # Selections, affinity and traffic policies of every frontend of the Service.
            dirty_fe |= self.fes_of_svc.get(skey, set())
        for key, bset in sets.items():
            if bset is None:
                self.sets.pop(key, None)
            else:
                self.sets[key] = bset
            dirty_fe |= self.fes_of_set.get(key, set())
        for fk, fe in frontends.items():
            old_fe = self.frontends.pop(fk, None)
            if old_fe is not None:
                self.fes_of_set[old_fe.backend_set].discard(fk)
                self.fes_of_svc[old_fe.service].discard(fk)
            if fe is not None:
                self.frontends[fk] = fe
                self.fes_of_set[fe.backend_set].add(fk)
                self.fes_of_svc[fe.service].add(fk)

        touched: set[BackendSetKey] = set(sets)
        fe_moved: set[str] = set()
        for fk in list(dirty_fe):
            prev_state = self.state.pop(fk, None)
            if prev_state is not None and prev_state.offloaded:
                for table, selection, _ in prev_state.plans:
                    ident = _frontend_ident(prev_state.fe, table)
                    fe_moved |= self.fe_ids.remove(ident)
                    self.fe_of_ident.pop(ident, None)
                    if prev_state.set_key is not None:
                        sel = (prev_state.set_key, selection)
                        self.sel_used[sel] -= 1
                        dirty_sel.add(sel)
                if prev_state.set_key is not None:
                    self.used[prev_state.set_key] -= 1
                    touched.add(prev_state.set_key)
            fe = self.frontends.get(fk)
            if fe is None:
                continue
            bset = self.sets.get(fe.backend_set)
            problem = offload_problem(fe, bset, self.max_group, self.lb)
            offloaded = problem is None
            set_key = bset.key if offloaded and bset is not None else None
            plans = tuple(selections(fe, self.services.get(fe.service))) if offloaded else ()
            self.state[fk] = _FeState(fe, offloaded, problem, set_key, plans)
            for table, selection, _ in plans:
                ident = _frontend_ident(fe, table)
                self.fe_of_ident[ident] = fk
                fe_moved |= self.fe_ids.add(ident)
                if set_key is not None:
                    sel = (set_key, selection)
                    self.sel_used[sel] += 1
                    dirty_sel.add(sel)
            if set_key is not None:
                self.used[set_key] += 1
                touched.add(set_key)

        # Backends of the sets whose use or content changed.
        dirty_be: set[str] = set()
        be_moved: set[str] = set()
        for key in touched:
            new = self.sets.get(key) if self.used.get(key, 0) > 0 else None
            if self.used.get(key, 0) <= 0:
                self.used.pop(key, None)
            dirty_sel |= {(key, s) for s in self.sels_of_set.get(key, ())}
            old = self.contrib.get(key)
            if old == new:
                continue
            if old is not None:
                for b in old.backends:
                    ident = _backend_ident(b)
                    users = self.be_sets[ident]
                    users.discard(key)
                    dirty_be.add(ident)
                    if not users:
                        del self.be_sets[ident]
                        del self.be_any[ident]
                        be_moved |= self.be_ids.remove(ident)
                del self.contrib[key]
            if new is not None:
                self.contrib[key] = new
                for b in new.backends:
                    ident = _backend_ident(b)
                    dirty_be.add(ident)
                    users = self.be_sets.setdefault(ident, set())
                    if not users:
                        self.be_any[ident] = b
                        be_moved |= self.be_ids.add(ident)
                    users.add(key)
            dirty_fe |= self.fes_of_set.get(key, set())
        # Selections of the Services whose node changed (topology, affinity).
        for skey in services or {}:
            for fk in self.fes_of_svc.get(skey, set()):
                st = self.state.get(fk)
                if st is not None and st.set_key is not None:
                    dirty_sel |= {(st.set_key, s) for s in self.sels_of_set.get(st.set_key, ())}

        # The chosen backends of each selection in use, and the groups they share.
        dirty_tuples: set[Members] = set()
        dirty_aff: set[SelKey] = set(dirty_sel)
        aff_moved: set[str] = set()
        for sel in dirty_sel:
            set_key, selection = sel
            in_use = self.sel_used.get(sel, 0) > 0
            if not in_use:
                self.sel_used.pop(sel, None)
                self.sels_of_set[set_key].discard(selection)
                if not self.sels_of_set[set_key]:
                    del self.sels_of_set[set_key]
            else:
                self.sels_of_set[set_key].add(selection)
            bset = self.contrib.get(set_key) if in_use else None
            members: Members = ()
            if bset is not None:
                svc = self.services.get(set_key.service)
                picked = (
                    cluster_backends(bset, svc, self.node)
                    if selection == CLUSTER
                    else local_backends(bset, self.node)
                )
                members = tuple(sorted({_backend_ident(b) for b in picked}))
            old_members = self.chosen.get(sel, ())
            if old_members == members:
                continue
            if old_members:
                self.groups[old_members].discard(sel)
                dirty_tuples.add(old_members)
                del self.chosen[sel]
                if not members:
                    aff_moved |= self.aff_ids.remove(_selection_name(*sel))
                    del self.sel_of_aff[_selection_name(*sel)]
            if members:
                self.chosen[sel] = members
                self.groups.setdefault(members, set()).add(sel)
                dirty_tuples.add(members)
                if not old_members:
                    self.sel_of_aff[_selection_name(*sel)] = sel
                    aff_moved |= self.aff_ids.add(_selection_name(*sel))
            dirty_fe |= self.fes_of_set.get(set_key, set())
        for ident in be_moved:
            dirty_be.add(ident)
            for key in self.be_sets.get(ident, set()):
                for selection in self.sels_of_set.get(key, ()):
                    sel = (key, selection)
                    dirty_aff.add(sel)
                    if sel in self.chosen:
                        dirty_tuples.add(self.chosen[sel])
        for name in aff_moved:
            key_sel = self.sel_of_aff.get(name)
            if key_sel is not None:
                dirty_aff.add(key_sel)
                dirty_fe |= self.fes_of_set.get(key_sel[0], set())

        # Group names (the first selection using the members) and their ids: remove, then add.
        renamed: list[tuple[Members, str]] = []
        name_moved: set[str] = set()
        slot_moved: set[str] = set()
        for t in dirty_tuples:
            keys = self.groups.get(t)
            new_name = _selection_name(*min(keys)) if keys else None
            old_name = self.group_name.get(t)
            if not keys:
                self.groups.pop(t, None)
            if old_name == new_name:
                continue
            if old_name is not None:
                del self.group_name[t]
                del self.name_group[old_name]
                for part in self._parts(old_name, t):
                    del self.name_tuple[part]
                    name_moved |= self.group_ids.remove(part)
                for slot in self._slots(old_name, t):
                    del self.slot_name[slot]
                    slot_moved |= self.slot_ids.remove(slot)
            if new_name is not None:
                renamed.append((t, new_name))
        for t, name in renamed:
            self.group_name[t] = name
            self.name_group[name] = t
            for part in self._parts(name, t):
                self.name_tuple[part] = t
                name_moved |= self.group_ids.add(part)
            for slot in self._slots(name, t):
                self.slot_name[slot] = name
                slot_moved |= self.slot_ids.add(slot)
        for name in name_moved:
            if name in self.name_tuple:
                dirty_tuples.add(self.name_tuple[name])
        for slot in slot_moved:
            group = self.slot_name.get(slot)
            if group is not None:
                dirty_tuples.add(self.name_group[group])
        for t in dirty_tuples:
            for sel in self.groups.get(t, ()):
                dirty_fe |= self.fes_of_set.get(sel[0], set())
        for ident in fe_moved:
            if ident in self.fe_of_ident:
                dirty_fe.add(self.fe_of_ident[ident])

        added: list[Entity] = []
        removed: list[Entity] = []
        for ident in dirty_be:
            self._emit(("be", ident), self._backend_unit(ident), added, removed)
        for t in dirty_tuples:
            self._emit(("group", t), self._group_unit(t), added, removed)
        for fk in dirty_fe:
            self._emit(("fe", fk), self._frontend_unit(fk), added, removed)
        for sel in dirty_aff:
            self._emit(("aff", sel), self._affinity_unit(sel), added, removed)
        return added, removed

    def _size(self, t: Members) -> int:
        """Selector members the group's layout deals: its backends, or its Maglev slots."""
        if not self.maglev:
            return len(t)
        m = maglev_size(len(t))
        assert m is not None, "offload_problem admits only sets that fit"
        return m

    def _split(self, t: Members) -> int:
        k = split_bits(self._size(t), self.max_group)
        assert k is not None, "offload_problem admits only sets that fit"
        return k

    def _slots(self, name: str, t: Members) -> list[str]:
        """The Maglev slot identities of a group (none with hash)."""
        return [maglev_slot_ident(name, j) for j in range(self._size(t))] if self.maglev else []

    def check(self, counts: Mapping[str, int]) -> None:
        """The profile's own selector limits beyond P4Info, as `lower_services` checks them (on the
        bundle's counts, before the P4Info capacities)."""
        problems = []
        name = self.schema.profile(SELECTOR).name
        groups = counts.get(f"{name} (groups)", 0)
        members = counts.get(f"{name} (members)", 0)
        if self.limits.max_groups is not None and groups > self.limits.max_groups:
            problems.append(f"needs {groups} groups, holds {self.limits.max_groups}")
        if members > self.limits.max_members:
            problems.append(f"needs {members} members, holds {self.limits.max_members}")
        if problems:
            raise BundleError(f"action selector {SELECTOR} ({self.limits.profile}): " + "; ".join(problems))

    def _parts(self, name: str, t: Members) -> list[str]:
        return part_names(name, 1 << self._split(t))

    def _emit(self, unit: Unit, new: tuple[Entity, ...], added: list[Entity], removed: list[Entity]) -> None:
        old = self.units.get(unit, ())
        if old == new:
            return
        if new:
            self.units[unit] = new
        else:
            self.units.pop(unit, None)
        kept = set(new)
        removed.extend(e for e in old if e not in kept)
        before = set(old)
        added.extend(e for e in new if e not in before)

    def _backend_unit(self, ident: str) -> tuple[Entity, ...]:
        users = self.be_sets.get(ident)
        if not users:
            return ()
        origin = tuple(sorted({str(k) for key in users for k in self.contrib[key].sources}))
        b = self.be_any[ident]
        member, nat = backend_entities(self.schema, b, self.be_ids.ids[ident], origin)
        return (nat,) if self.maglev else (member, nat)

    def _group_unit(self, t: Members) -> tuple[Entity, ...]:
        name = self.group_name.get(t)
        if name is None:
            return ()
        origin = tuple(sorted({str(k) for key, _ in self.groups[t] for k in self.contrib[key].sources}))
        ids = self.group_ids.ids
        slots: tuple[Entity, ...] = ()
        if self.maglev:
            lay = self._maglev_layout(name, t)
            parts = list(lay.parts)
            slots = tuple(
                self.schema.member(SELECTOR, mid, "set_backend", {"be_id": be_id}, origin)
                for mid, be_id in lay.slots
            )
        else:
            parts = deal(self._ids(t), self._split(t))
        return slots + tuple(
            self.schema.group(SELECTOR, ids[p], tuple((m, 1) for m in part), self.max_group, origin)
            for p, part in zip(self._parts(name, t), parts, strict=True)
        )

    def _maglev_layout(self, name: str, t: Members) -> GroupLayout:
        """`lower_services`'s Maglev layout of one group, the slot member ids from `slot_ids`."""
        be_ids = self.be_ids.ids
        idents = [(be_ids[i], i) for i in t]
        slot_ids = {slot: MAGLEV_MEMBER_BASE + self.slot_ids.ids[slot] for slot in self._slots(name, t)}
        return maglev_layout(name, idents, self.limits, slot_ids)

    def _ids(self, t: Members) -> tuple[int, ...]:
        """A group's member ids (backend ids), sorted, as `lower_services` keys its groups."""
        return tuple(sorted(self.be_ids.ids[i] for i in t))

    def notes(self) -> list[Diagnostic]:
        """The fitting notes (`info`) `lower_services` gives each offloaded frontend of a split or
        Maglev group."""
        found: set[Diagnostic] = set()
        for st in self.state.values():
            if st.set_key is None:
                continue
            for _, selection, _ in st.plans:
                t = self.chosen.get((st.set_key, selection))
                if t is None:
                    continue
                k = self._split(t)
                if self.maglev:
                    m = self._size(t)
                    note: str | None = (
                        f"Maglev table of {m} slots for {len(t)} endpoints"
                        + (f", over {1 << k} groups picked by {_bits(k)} of a flow hash" if k else "")
                        + f" ({m} members instead of {len(t)})"
                    )
                else:
                    note = fitting_note(len(t), k, self.limits)
                if note is not None:
                    where = f"{st.fe.vip} {st.fe.protocol.value}/{st.fe.port}"
                    found.add(Diagnostic(st.fe.service, f"{where}: {note}", severity="info"))
        return sorted(found)

    def _frontend_unit(self, fk: FeKey) -> tuple[Entity, ...]:
        """`lower_services`'s entries of one frontend: per table (selection), the frontend, split,
        backend and reverse NAT entries, and svc_affinity when its Service has ClientIP affinity."""
        st = self.state.get(fk)
        if st is None or not st.offloaded:
            return ()
        bset = self.contrib.get(st.set_key) if st.set_key is not None else None
        svc = self.services.get(st.fe.service)
        out: list[Entity] = []
        for table, selection, masq in st.plans:
            groups = None
            t = self.chosen.get((bset.key, selection)) if bset is not None else None
            if t is not None:
                groups = tuple(self.group_ids.ids[p] for p in self._parts(self.group_name[t], t))
            fe_id = self.fe_ids.ids[_frontend_ident(st.fe, table)]
            out += frontend_entries(self.schema, st.fe, bset, fe_id, groups, table=table, masq=masq)
            if groups is None or bset is None or svc is None or svc.affinity_timeout is None:
                continue
            aff_id = self.aff_ids.ids[_selection_name(bset.key, selection)]
            params = {"aff_id": aff_id, "timeout": affinity_units(svc.affinity_timeout)}
            origin = tuple(str(k) for k in bset.sources)
            out.append(
                self.schema.entry(
                    "svc_affinity", {"fe_id": Exact(fe_id)}, "set_affinity", params, origin=origin
                )
            )
        return tuple(out)

    def _affinity_unit(self, sel: SelKey) -> tuple[Entity, ...]:
        """aff_backend entries of one selection's chosen backends, when its Service has affinity."""
        t = self.chosen.get(sel)
        svc = self.services.get(sel[0].service)
        if t is None or svc is None or svc.affinity_timeout is None:
            return ()
        aff_id = self.aff_ids.ids[_selection_name(*sel)]
        origin = tuple(str(k) for k in self.contrib[sel[0]].sources)
        return tuple(
            self.schema.entry(
                "aff_backend", {"aff_id": Exact(aff_id), "be_id": Exact(be_id)}, "affinity_ok", origin=origin
            )
            for be_id in self._ids(t)
        )
