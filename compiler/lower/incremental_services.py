"""`lower_services`, kept up to date from changed frontends and backend sets.

The full lowering's global parts are ids (`stable_ids`, here `IdSpace`), groups shared by every
set with the same usable members, and origins unioned over the sets using a backend or group. This
keeps them as indexes with reference counts, and re-emits only the units a change reaches: a
backend (member + DNAT entry), a group, a frontend (frontend, group and reverse NAT entries). The
output always equals `lower_services` on the same IR (tests/incremental checks it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from compiler.bundle.model import ProfileGroup, ProfileMember, TableEntry
from compiler.bundle.schema import BundleError, Schema
from compiler.ir.nodes import Backend, BackendSet, BackendSetKey, Diagnostic, ServiceFrontend
from compiler.lower.ecmp import SELECTOR, deal, maglev_size, selector_limits, split_bits
from compiler.lower.idspace import IdSpace
from compiler.lower.services import (
    ID_BITS,
    MAGLEV_MEMBER_BASE,
    GroupLayout,
    _backend_ident,
    _bits,
    _frontend_ident,
    backend_entities,
    fitting_note,
    frontend_entries,
    maglev_layout,
    maglev_slot_ident,
    offload_problem,
    part_names,
    usable_backends,
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


class ServiceLowerer:
    def __init__(self, schema: Schema, profile: str = "bmv2", lb: str = "hash") -> None:
        """`profile` sets the selector limits (ecmp.py), `lb` the group layout: "hash" (one member
        per backend) or "maglev" (slot members per group, their ids in `slot_ids`)."""
        self.schema = schema
        self.limits = selector_limits(schema, profile)
        self.max_group = self.limits.max_group_size
        self.lb = lb
        self.maglev = lb == "maglev"
        self.slot_ids = IdSpace(ID_BITS)
        self.slot_name: dict[str, str] = {}
        """Maglev: slot identity -> the group name it belongs to."""
        self.sets: dict[BackendSetKey, BackendSet] = {}
        self.frontends: dict[FeKey, ServiceFrontend] = {}
        self.fes_of_set: dict[BackendSetKey, set[FeKey]] = defaultdict(set)
        self.state: dict[FeKey, _FeState] = {}
        self.fe_of_ident: dict[str, FeKey] = {}
        self.used: Counter[BackendSetKey] = Counter()
        self.contrib: dict[BackendSetKey, BackendSet] = {}
        self.be_sets: dict[str, set[BackendSetKey]] = {}
        self.be_any: dict[str, Backend] = {}
        self.set_tuple: dict[BackendSetKey, tuple[int, ...]] = {}
        self.groups: dict[tuple[int, ...], set[BackendSetKey]] = {}
        self.group_name: dict[tuple[int, ...], str] = {}
        self.name_tuple: dict[str, tuple[int, ...]] = {}
        self.name_group: dict[str, tuple[int, ...]] = {}
        self.be_ids = IdSpace(ID_BITS)
        self.fe_ids = IdSpace(ID_BITS)
        self.group_ids = IdSpace(32)
        self.units: dict[Unit, tuple[Entity, ...]] = {}

    def diagnostics(self) -> list[Diagnostic]:
        return [s.problem for s in self.state.values() if s.problem is not None]

    def update(
        self,
        frontends: Mapping[FeKey, ServiceFrontend | None],
        sets: Mapping[BackendSetKey, BackendSet | None],
    ) -> tuple[list[Entity], list[Entity]]:
        """Apply changed frontends (by sort key) and backend sets (None: gone); (added, removed)."""
        dirty_fe: set[FeKey] = set(frontends)
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
            if fe is not None:
                self.frontends[fk] = fe
                self.fes_of_set[fe.backend_set].add(fk)

        touched: set[BackendSetKey] = set(sets)
        fe_moved: set[str] = set()
        for fk in list(dirty_fe):
            prev_state = self.state.pop(fk, None)
            if prev_state is not None and prev_state.offloaded:
                ident = _frontend_ident(prev_state.fe)
                fe_moved |= self.fe_ids.remove(ident)
                self.fe_of_ident.pop(ident, None)
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
            self.state[fk] = _FeState(fe, offloaded, problem, set_key)
            if offloaded:
                ident = _frontend_ident(fe)
                self.fe_of_ident[ident] = fk
                fe_moved |= self.fe_ids.add(ident)
                if set_key is not None:
                    self.used[set_key] += 1
                    touched.add(set_key)

        # Backends and group membership of the sets whose use or content changed.
        dirty_be: set[str] = set()
        dirty_tuples: set[tuple[int, ...]] = set()
        retuple: set[BackendSetKey] = set()
        be_moved: set[str] = set()
        for key in touched:
            new = self.sets.get(key) if self.used.get(key, 0) > 0 else None
            if self.used.get(key, 0) <= 0:
                self.used.pop(key, None)
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
                self._untuple(key, dirty_tuples)
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
                retuple.add(key)
            dirty_fe |= self.fes_of_set.get(key, set())
        for ident in be_moved:
            dirty_be.add(ident)
            retuple |= self.be_sets.get(ident, set())
        for key in retuple:
            self._untuple(key, dirty_tuples)
            bset = self.contrib.get(key)
            if bset is None:
                continue
            members = tuple(sorted(self.be_ids.ids[_backend_ident(b)] for b in usable_backends(bset)))
            if members:
                self.set_tuple[key] = members
                self.groups.setdefault(members, set()).add(key)
                dirty_tuples.add(members)
            dirty_fe |= self.fes_of_set.get(key, set())

        # Group names (the first set key using the members) and their ids: remove, then add.
        renamed: list[tuple[tuple[int, ...], str]] = []
        name_moved: set[str] = set()
        slot_moved: set[str] = set()
        for t in dirty_tuples:
            keys = self.groups.get(t)
            new_name = str(min(keys)) if keys else None
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
            for key in self.groups.get(t, ()):
                dirty_fe |= self.fes_of_set.get(key, set())
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
        return added, removed

    def _size(self, t: tuple[int, ...]) -> int:
        """Selector members the group's layout deals: its backends, or its Maglev slots."""
        if not self.maglev:
            return len(t)
        m = maglev_size(len(t))
        assert m is not None, "offload_problem admits only sets that fit"
        return m

    def _split(self, t: tuple[int, ...]) -> int:
        k = split_bits(self._size(t), self.max_group)
        assert k is not None, "offload_problem admits only sets that fit"
        return k

    def _slots(self, name: str, t: tuple[int, ...]) -> list[str]:
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

    def _parts(self, name: str, t: tuple[int, ...]) -> list[str]:
        return part_names(name, 1 << self._split(t))

    def _untuple(self, key: BackendSetKey, dirty: set[tuple[int, ...]]) -> None:
        t = self.set_tuple.pop(key, None)
        if t is not None:
            self.groups[t].discard(key)
            dirty.add(t)

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

    def _group_unit(self, t: tuple[int, ...]) -> tuple[Entity, ...]:
        name = self.group_name.get(t)
        if name is None:
            return ()
        origin = tuple(sorted({str(k) for key in self.groups[t] for k in self.contrib[key].sources}))
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
            parts = deal(t, self._split(t))
        return slots + tuple(
            self.schema.group(SELECTOR, ids[p], tuple((m, 1) for m in part), self.max_group, origin)
            for p, part in zip(self._parts(name, t), parts, strict=True)
        )

    def _maglev_layout(self, name: str, t: tuple[int, ...]) -> GroupLayout:
        """`lower_services`'s Maglev layout of one group: the backends' identities from a set using
        it, the slot member ids from `slot_ids`."""
        bset = self.contrib[next(iter(self.groups[t]))]
        be_ids = self.be_ids.ids
        idents = [(be_ids[i], i) for i in {_backend_ident(b) for b in usable_backends(bset)}]
        slot_ids = {slot: MAGLEV_MEMBER_BASE + self.slot_ids.ids[slot] for slot in self._slots(name, t)}
        return maglev_layout(name, idents, self.limits, slot_ids)

    def notes(self) -> list[Diagnostic]:
        """The fitting notes (`info`) `lower_services` gives each offloaded frontend of a split or
        Maglev group."""
        found: set[Diagnostic] = set()
        for st in self.state.values():
            if not st.offloaded or st.set_key is None or st.set_key not in self.set_tuple:
                continue
            t = self.set_tuple[st.set_key]
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
        st = self.state.get(fk)
        if st is None or not st.offloaded:
            return ()
        bset = self.contrib.get(st.set_key) if st.set_key is not None else None
        groups = None
        if bset is not None and bset.key in self.set_tuple:
            t = self.set_tuple[bset.key]
            groups = tuple(self.group_ids.ids[p] for p in self._parts(self.group_name[t], t))
        fe_id = self.fe_ids.ids[_frontend_ident(st.fe)]
        return tuple(frontend_entries(self.schema, st.fe, bset, fe_id, groups))
