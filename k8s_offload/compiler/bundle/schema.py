"""P4Info as the contract: every entry the compiler builds is checked here, by name.

Checks are the ones a P4Runtime server would make (unknown names, match kinds, widths, missing
or extra params, action scopes, priorities), done at build time so a bad entry names the
Kubernetes object that caused it instead of failing on the device.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Exact,
    Lpm,
    Match,
    Optional,
    ProfileGroup,
    ProfileMember,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.p4rt.proto import p4info as p4i


class BundleError(ValueError):
    """An entry that does not fit the P4 program."""


_KIND_NAMES = {
    p4i.MatchField.EXACT: "exact",
    p4i.MatchField.LPM: "lpm",
    p4i.MatchField.TERNARY: "ternary",
    p4i.MatchField.RANGE: "range",
    p4i.MatchField.OPTIONAL: "optional",
}
_KIND_OF: dict[type, int] = {
    Exact: p4i.MatchField.EXACT,
    Lpm: p4i.MatchField.LPM,
    Ternary: p4i.MatchField.TERNARY,
    Range: p4i.MatchField.RANGE,
    Optional: p4i.MatchField.OPTIONAL,
}


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    id: int
    bitwidth: int
    match_type: int

    @property
    def kind(self) -> str:
        return _KIND_NAMES.get(self.match_type, str(self.match_type))


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    id: int
    bitwidth: int


@dataclass(frozen=True, slots=True)
class ActionInfo:
    name: str
    alias: str
    id: int
    params: tuple[ParamInfo, ...]


@dataclass(frozen=True, slots=True)
class ActionRefInfo:
    action: ActionInfo
    scope: int  # p4info.ActionRef.{TABLE_AND_DEFAULT, TABLE_ONLY, DEFAULT_ONLY}


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    name: str
    alias: str
    id: int
    size: int
    max_group_size: int
    with_selector: bool


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    alias: str
    id: int
    size: int
    fields: tuple[FieldInfo, ...]
    actions: Mapping[str, ActionRefInfo]
    profile: ProfileInfo | None
    const_default_action_id: int
    field_index: dict[str, FieldInfo] = field(default_factory=dict, compare=False, repr=False)
    """`field` results by the name asked (sorting and rendering ask once per entry and key)."""

    @property
    def needs_priority(self) -> bool:
        """P4Runtime §9.1: priority is required exactly when a key is ternary, range or optional."""
        return any(
            f.match_type in (p4i.MatchField.TERNARY, p4i.MatchField.RANGE, p4i.MatchField.OPTIONAL)
            for f in self.fields
        )

    def field(self, name: str) -> FieldInfo:
        known = self.field_index.get(name)
        if known is not None:
            return known
        for f in self.fields:
            if f.name == name or f.name.rsplit(".", 1)[-1] == name:
                self.field_index[name] = f
                return f
        raise BundleError(f"table {self.alias}: no key field {name!r} (has {', '.join(self._names())})")

    def _names(self) -> list[str]:
        return [f.name for f in self.fields]


def _check_width(what: str, value: int, width: int) -> None:
    if value < 0 or value >= 1 << width:
        raise BundleError(f"{what}: value {value} does not fit in {width} bits")


class Schema:
    """Name-keyed view of a P4Info message, with validating entry builders."""

    def __init__(self, info: Any) -> None:
        self.p4info = info
        self._actions: dict[str, ActionInfo] = {}
        by_id: dict[int, ActionInfo] = {}
        for a in info.actions:
            params = tuple(ParamInfo(p.name, p.id, p.bitwidth) for p in a.params)
            act = ActionInfo(a.preamble.name, a.preamble.alias or a.preamble.name, a.preamble.id, params)
            by_id[act.id] = act
            self._actions[act.name] = act
            self._actions.setdefault(act.alias, act)
        self._profiles: dict[str, ProfileInfo] = {}
        profile_by_id: dict[int, ProfileInfo] = {}
        for ap in info.action_profiles:
            prof = ProfileInfo(
                ap.preamble.name,
                ap.preamble.alias or ap.preamble.name,
                ap.preamble.id,
                ap.size,
                ap.max_group_size,
                ap.with_selector,
            )
            profile_by_id[prof.id] = prof
            self._profiles[prof.name] = prof
            self._profiles.setdefault(prof.alias, prof)
        self._tables: dict[str, TableInfo] = {}
        self.table_order: list[str] = []
        for t in info.tables:
            fields = tuple(FieldInfo(m.name, m.id, m.bitwidth, m.match_type) for m in t.match_fields)
            refs: dict[str, ActionRefInfo] = {}
            for ref in t.action_refs:
                act = by_id[ref.id]
                refs[act.name] = ActionRefInfo(act, ref.scope)
            table = TableInfo(
                t.preamble.name,
                t.preamble.alias or t.preamble.name,
                t.preamble.id,
                t.size,
                fields,
                refs,
                profile_by_id.get(t.implementation_id),
                t.const_default_action_id,
            )
            self._tables[table.name] = table
            self._tables.setdefault(table.alias, table)
            self.table_order.append(table.name)
        self._checks: dict[str, _TableCheck] = {}
        self._exact_plans: dict[
            tuple[str, tuple[str, ...], str, tuple[str, ...]],
            tuple[str, tuple[tuple[str, int, int], ...], str, tuple[tuple[str, int, int], ...]] | tuple[()],
        ] = {}
        self._member_actions: dict[tuple[str, str], tuple[ProfileInfo, ActionInfo] | tuple[()]] = {}

    # -- lookups -----------------------------------------------------------------------------
    def table(self, name: str) -> TableInfo:
        try:
            return self._tables[name]
        except KeyError:
            raise BundleError(f"the P4 program has no table {name!r}") from None

    def has_table(self, name: str) -> bool:
        """Whether the program has the table (by name or alias): stages a program may leave out."""
        return name in self._tables

    def action(self, name: str) -> ActionInfo:
        try:
            return self._actions[name]
        except KeyError:
            raise BundleError(f"the P4 program has no action {name!r}") from None

    def profile(self, name: str) -> ProfileInfo:
        try:
            return self._profiles[name]
        except KeyError:
            raise BundleError(f"the P4 program has no action profile {name!r}") from None

    def tables(self) -> list[TableInfo]:
        return [self._tables[n] for n in self.table_order]

    # -- builders ----------------------------------------------------------------------------
    def action_call(self, where: str, name: str, params: Mapping[str, int]) -> ActionCall:
        act = self.action(name)
        given = dict(params)
        values: list[tuple[str, int]] = []
        for p in act.params:
            if p.name not in given:
                raise BundleError(f"{where}: action {act.alias} needs parameter {p.name!r}")
            value = given.pop(p.name)
            _check_width(f"{where}: action {act.alias} parameter {p.name}", value, p.bitwidth)
            values.append((p.name, value))
        if given:
            raise BundleError(f"{where}: action {act.alias} has no parameter {sorted(given)[0]!r}")
        return ActionCall(act.name, tuple(values))

    def entry(
        self,
        table: str,
        match: Mapping[str, Match],
        action: str | None = None,
        params: Mapping[str, int] | None = None,
        *,
        member_id: int | None = None,
        group_id: int | None = None,
        priority: int = 0,
        origin: tuple[str, ...] = (),
    ) -> TableEntry:
        check = self._checks.get(table)
        if check is None and table in self._tables:
            check = self._checks[table] = _TableCheck(self, self._tables[table])
        if check is not None:
            built = check.entry(match, action, params, member_id, group_id, priority, origin)
            if built is not None:
                return built
        return self._checked_entry(table, match, action, params, member_id, group_id, priority, origin)

    def exact_entry(
        self,
        table: str,
        keys: tuple[str, ...],
        action: str,
        params: tuple[str, ...],
        key_values: tuple[int, ...],
        param_values: tuple[int, ...],
        origin: tuple[str, ...] = (),
    ) -> TableEntry:
        """`entry(table, {k: Exact(v)}, action, {p: v}, origin=origin)` for the many entries of
        one shape (exact keys, a direct action): the shape is checked once per schema, and each
        call then only checks that its values are ints that fit. Anything else goes through `entry`,
        so an error reads exactly as it would there."""
        shape = (table, keys, action, params)
        plan = self._exact_plans.get(shape)
        if plan is None:
            plan = self._exact_plans[shape] = self._exact_plan(*shape)
        if plan:
            name, key_plan, act_name, param_plan = plan
            ok = True
            for v, (_, w, _) in zip(key_values, key_plan, strict=True):
                if type(v) is not int or v < 0 or v >> w:
                    ok = False
            for v, (_, w, _) in zip(param_values, param_plan, strict=True):
                if type(v) is not int or v < 0 or v >> w:
                    ok = False
            if ok:
                match = tuple([(f, Exact(key_values[i])) for f, _, i in key_plan])
                values = tuple([(n, param_values[i]) for n, _, i in param_plan])
                return TableEntry(name, match, _call(act_name, values), None, None, 0, False, origin)
        return self.entry(
            table,
            {k: Exact(v) for k, v in zip(keys, key_values, strict=True)},
            action,
            dict(zip(params, param_values, strict=True)),
            origin=origin,
        )

    def _exact_plan(
        self, table: str, keys: tuple[str, ...], action: str, params: tuple[str, ...]
    ) -> tuple[str, tuple[tuple[str, int, int], ...], str, tuple[tuple[str, int, int], ...]] | tuple[()]:
        """(table name, (field, width, index in keys) in field order, action name, (param,
        width, index in params) in declaration order), or () when `entry` must decide."""
        info = self._tables.get(table)
        if info is None or info.needs_priority or info.profile is not None:
            return ()
        check = self._checks.get(table)
        if check is None:
            check = self._checks[table] = _TableCheck(self, info)
        found: list[tuple[int, str, int, int]] = []
        for i, key in enumerate(keys):
            f = check.by_key.get(key)
            if f is None or f.match_type != p4i.MatchField.EXACT:
                return ()
            found.append((check.order[f.name], f.name, f.bitwidth, i))
        found.sort()
        names = [f for _, f, _, _ in found]
        if len(set(names)) != len(names) or len(names) != check.n_exact:
            return ()
        act = check.actions.get(action)
        if act is None or len(set(params)) != len(params) or len(params) != len(act.params):
            return ()
        index = {p: i for i, p in enumerate(params)}
        param_plan: list[tuple[str, int, int]] = []
        for ap in act.params:
            if ap.name not in index:
                return ()
            param_plan.append((ap.name, ap.bitwidth, index[ap.name]))
        key_plan = tuple((f, w, i) for _, f, w, i in found)
        return info.name, key_plan, act.name, tuple(param_plan)

    def _checked_entry(
        self,
        table: str,
        match: Mapping[str, Match],
        action: str | None,
        params: Mapping[str, int] | None,
        member_id: int | None,
        group_id: int | None,
        priority: int,
        origin: tuple[str, ...],
    ) -> TableEntry:
        """Every check, one at a time, raising the first problem; `entry` only comes here for an
        entry its precomputed checks did not accept, so the messages are the ones of this code."""
        info = self.table(table)
        where = f"table {info.alias}"
        fields: list[tuple[str, Match]] = []
        seen: set[str] = set()
        for key, m in match.items():
            f = info.field(key)
            if f.name in seen:
                raise BundleError(f"{where}: key field {f.name} given twice")
            seen.add(f.name)
            self._check_match(f"{where} field {f.name}", f, m)
            fields.append((f.name, m))
        for f in info.fields:
            if f.match_type == p4i.MatchField.EXACT and f.name not in seen:
                raise BundleError(f"{where}: exact key field {f.name} is missing")
        fields.sort(key=lambda fm: info.field(fm[0]).id)
        if info.needs_priority and priority <= 0:
            raise BundleError(f"{where}: needs a priority > 0 (it has ternary, range or optional keys)")
        if not info.needs_priority and priority != 0:
            raise BundleError(f"{where}: priority must be 0 (no ternary, range or optional key)")
        indirect = sum(x is not None for x in (action, member_id, group_id))
        if indirect != 1:
            raise BundleError(f"{where}: give exactly one of action, member_id, group_id")
        call = None
        if action is not None:
            if info.profile is not None:
                raise BundleError(f"{where}: is implemented by {info.profile.alias}; use a member or group")
            call = self._table_action(info, action, params or {}, default=False)
        elif info.profile is None:
            raise BundleError(f"{where}: has no action profile; members and groups do not apply")
        return TableEntry(info.name, tuple(fields), call, member_id, group_id, priority, False, origin)

    def default_entry(
        self, table: str, action: str, params: Mapping[str, int] | None = None, origin: tuple[str, ...] = ()
    ) -> TableEntry:
        info = self.table(table)
        if info.const_default_action_id:
            raise BundleError(f"table {info.alias}: its default action is const")
        call = self._table_action(info, action, params or {}, default=True)
        return TableEntry(info.name, (), call, is_default=True, origin=origin)

    def member(
        self,
        profile: str,
        member_id: int,
        action: str,
        params: Mapping[str, int],
        origin: tuple[str, ...] = (),
    ) -> ProfileMember:
        member_actions = self._member_actions.get((profile, action))
        if member_actions is None and profile in self._profiles:
            member_actions = self._member_actions[(profile, action)] = self._member_action(profile, action)
        if member_actions:
            prof, act = member_actions
            values = _params(act, params)
            if values is not None:
                return ProfileMember(prof.name, member_id, _call(act.name, values), origin)
        prof = self.profile(profile)
        call = self.action_call(f"profile {prof.alias} member {member_id}", action, params)
        tables = [t for t in self.tables() if t.profile is not None and t.profile.id == prof.id]
        for t in tables:
            ref = t.actions.get(call.name)
            if ref is None or ref.scope == p4i.ActionRef.DEFAULT_ONLY:
                raise BundleError(f"profile {prof.alias}: action {action} is not a table action of {t.alias}")
        return ProfileMember(prof.name, member_id, call, origin)

    def group(
        self,
        profile: str,
        group_id: int,
        members: tuple[tuple[int, int], ...],
        max_size: int,
        origin: tuple[str, ...] = (),
    ) -> ProfileGroup:
        prof = self.profile(profile)
        if not prof.with_selector:
            raise BundleError(f"profile {prof.alias}: has no selector, so no groups")
        if prof.max_group_size and max_size > prof.max_group_size:
            raise BundleError(
                f"profile {prof.alias} group {group_id}: max_size {max_size} exceeds the "
                f"program's max_group_size {prof.max_group_size}"
            )
        if len(members) > max_size:
            raise BundleError(
                f"profile {prof.alias} group {group_id}: {len(members)} members > max_size {max_size}"
            )
        ids = [m for m, _ in members]
        if len(set(ids)) != len(ids):
            raise BundleError(f"profile {prof.alias} group {group_id}: duplicate member ids")
        return ProfileGroup(prof.name, group_id, tuple(sorted(members)), max_size, origin)

    # -- helpers -----------------------------------------------------------------------------
    def _member_action(self, profile: str, action: str) -> tuple[ProfileInfo, ActionInfo] | tuple[()]:
        """The profile and action when `member` accepts this action for it whatever the params, else ()."""
        prof = self._profiles[profile]
        act = self._actions.get(action)
        if act is None:
            return ()
        for t in self.tables():
            if t.profile is not None and t.profile.id == prof.id:
                ref = t.actions.get(act.name)
                if ref is None or ref.scope == p4i.ActionRef.DEFAULT_ONLY:
                    return ()
        return prof, act

    def _table_action(
        self, info: TableInfo, action: str, params: Mapping[str, int], *, default: bool
    ) -> ActionCall:
        act = self.action(action)
        ref = info.actions.get(act.name)
        where = f"table {info.alias}"
        if ref is None:
            raise BundleError(f"{where}: action {act.alias} is not one of its actions")
        if default and ref.scope == p4i.ActionRef.TABLE_ONLY:
            raise BundleError(f"{where}: action {act.alias} is @tableonly and cannot be the default")
        if not default and ref.scope == p4i.ActionRef.DEFAULT_ONLY:
            raise BundleError(f"{where}: action {act.alias} is @defaultonly")
        return self.action_call(where, act.name, params)

    @staticmethod
    def _check_match(where: str, f: FieldInfo, m: Match) -> None:
        expected = _KIND_OF[type(m)]
        if expected != f.match_type:
            raise BundleError(f"{where}: is a {f.kind} field, got a {_KIND_NAMES[expected]} match")
        w = f.bitwidth
        if isinstance(m, Exact | Optional):
            _check_width(where, m.value, w)
        elif isinstance(m, Lpm):
            _check_width(where, m.value, w)
            if not 0 < m.prefix_len <= w:
                raise BundleError(f"{where}: prefix length {m.prefix_len} outside 1..{w} (omit /0)")
            if m.value & ((1 << (w - m.prefix_len)) - 1):
                raise BundleError(f"{where}: value has bits set beyond its /{m.prefix_len} prefix")
        elif isinstance(m, Ternary):
            _check_width(where, m.value, w)
            _check_width(where, m.mask, w)
            if m.mask == 0:
                raise BundleError(f"{where}: a ternary mask of 0 is a don't-care; omit the field")
            if m.value & ~m.mask:
                raise BundleError(f"{where}: value has bits outside its mask")
        elif isinstance(m, Range):
            _check_width(where, m.low, w)
            _check_width(where, m.high, w)
            if m.low > m.high:
                raise BundleError(f"{where}: range low {m.low} > high {m.high}")
            if m.low == 0 and m.high == (1 << w) - 1:
                raise BundleError(f"{where}: a full range is a don't-care; omit the field")


_NO_PARAMS: dict[str, ActionCall] = {}


def _call(name: str, values: tuple[tuple[str, int], ...]) -> ActionCall:
    """Calls without parameters are all alike: one shared (frozen) object per action."""
    if values:
        return ActionCall(name, values)
    call = _NO_PARAMS.get(name)
    if call is None:
        call = _NO_PARAMS[name] = ActionCall(name, ())
    return call


def _params(act: ActionInfo, params: Mapping[str, int] | None) -> tuple[tuple[str, int], ...] | None:
    """The action's parameters in declaration order when each is given once as a fitting int;
    None for anything else, which the checked path then words."""
    given = params or {}
    if len(given) != len(act.params):
        return None
    values: list[tuple[str, int]] = []
    for p in act.params:
        value = given.get(p.name)
        if type(value) is not int or value < 0 or value >> p.bitwidth:
            return None
        values.append((p.name, value))
    return tuple(values)


class _TableCheck:
    """One table's checks precomputed from P4Info (field by key name, exact fields, priority rule,
    usable actions), so building a valid entry is a few dict lookups and integer compares. It
    accepts exactly the entries `Schema._checked_entry` accepts and builds the same TableEntry;
    for anything else it returns None and the checked path raises its usual error."""

    __slots__ = ("actions", "by_key", "info", "n_exact", "needs_priority", "order", "profiled")

    def __init__(self, schema: Schema, info: TableInfo) -> None:
        self.info = info
        self.by_key: dict[str, FieldInfo] = {}
        for f in reversed(info.fields):  # `TableInfo.field`: the first field matching either way wins
            self.by_key[f.name.rsplit(".", 1)[-1]] = f
            self.by_key[f.name] = f
        self.order = {f.name: info.field(f.name).id for f in info.fields}
        self.n_exact = sum(f.match_type == p4i.MatchField.EXACT for f in info.fields)
        self.needs_priority = info.needs_priority
        self.profiled = info.profile is not None
        self.actions: dict[str, ActionInfo] = {}
        for key, act in schema._actions.items():
            ref = info.actions.get(act.name)
            if ref is not None and ref.scope != p4i.ActionRef.DEFAULT_ONLY:
                self.actions[key] = act

    def entry(
        self,
        match: Mapping[str, Match],
        action: str | None,
        params: Mapping[str, int] | None,
        member_id: int | None,
        group_id: int | None,
        priority: int,
        origin: tuple[str, ...],
    ) -> TableEntry | None:
        fields: list[tuple[str, Match]] = []
        exact = 0
        for key, m in match.items():
            f = self.by_key.get(key)
            if f is None or not _fits(f, m):
                return None
            if f.match_type == p4i.MatchField.EXACT:
                exact += 1
            fields.append((f.name, m))
        if exact != self.n_exact:
            return None
        if len(fields) > 1:
            fields.sort(key=lambda fm: self.order[fm[0]])
            if any(a[0] == b[0] for a, b in itertools.pairwise(fields)):
                return None  # the same field under two names
        if type(priority) is not int or (priority <= 0 if self.needs_priority else priority != 0):
            return None
        call = None
        if action is not None:
            if member_id is not None or group_id is not None or self.profiled:
                return None
            act = self.actions.get(action)
            if act is None:
                return None
            values = _params(act, params)
            if values is None:
                return None
            call = _call(act.name, values)
        elif (member_id is None) == (group_id is None) or not self.profiled:
            return None
        return TableEntry(self.info.name, tuple(fields), call, member_id, group_id, priority, False, origin)


def _fits(f: FieldInfo, m: Match) -> bool:
    """`Schema._check_match` as a predicate (exact types only; anything else goes the checked way)."""
    w = f.bitwidth
    if type(m) is Exact:
        v = m.value
        return f.match_type == p4i.MatchField.EXACT and type(v) is int and v >= 0 and not v >> w
    if type(m) is Lpm:
        v, plen = m.value, m.prefix_len
        return (
            f.match_type == p4i.MatchField.LPM
            and type(v) is int
            and type(plen) is int
            and v >= 0
            and not v >> w
            and 0 < plen <= w
            and not v & ((1 << (w - plen)) - 1)
        )
    if type(m) is Range:
        lo, hi = m.low, m.high
        return (
            f.match_type == p4i.MatchField.RANGE
            and type(lo) is int
            and type(hi) is int
            and 0 <= lo <= hi
            and not hi >> w
            and not (lo == 0 and hi == (1 << w) - 1)
        )
    if type(m) is Ternary:
        v, mask = m.value, m.mask
        return (
            f.match_type == p4i.MatchField.TERNARY
            and type(v) is int
            and type(mask) is int
            and v >= 0
            and mask > 0
            and not v >> w
            and not mask >> w
            and not v & ~mask
        )
    if type(m) is Optional:
        v = m.value
        return f.match_type == p4i.MatchField.OPTIONAL and type(v) is int and v >= 0 and not v >> w
    return False
