"""Entities as the diff sees them: a hashable key (what P4Runtime identifies an entity by, spec §11)
and a normalized value, for both the compiled bundle and what the device reads back.

Values are compared in canonical form (shortest bytestrings, params and group members sorted), so
an entity the device returns equals the one we wrote; `metadata` fields are not compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.p4rt import group_message, member_message, table_entry_message
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.p4rt.proto import p4runtime as p4r

Key = tuple[Any, ...]


def _canon_action(action: Any) -> tuple[int, tuple[tuple[int, bytes], ...]]:
    params = sorted((p.param_id, p.value.lstrip(b"\0") or b"\0") for p in action.params)
    return action.action_id, tuple(params)


def entity_key(entity: Any) -> Key:
    which = entity.WhichOneof("entity")
    if which == "table_entry":
        te = entity.table_entry
        if te.is_default_action:
            return ("default", te.table_id)
        match = tuple(sorted((fm.field_id, fm.SerializeToString(deterministic=True)) for fm in te.match))
        return ("table", te.table_id, te.priority, match)
    if which == "action_profile_member":
        m = entity.action_profile_member
        return ("member", m.action_profile_id, m.member_id)
    if which == "action_profile_group":
        g = entity.action_profile_group
        return ("group", g.action_profile_id, g.group_id)
    raise ValueError(f"the loader does not manage {which} entities")


def entity_value(entity: Any) -> Any:
    which = entity.WhichOneof("entity")
    if which == "table_entry":
        act = entity.table_entry.action
        kind = act.WhichOneof("type")
        if kind == "action":
            return ("action", _canon_action(act.action))
        if kind == "action_profile_member_id":
            return ("member", act.action_profile_member_id)
        if kind == "action_profile_group_id":
            return ("group", act.action_profile_group_id)
        return ("none",)
    if which == "action_profile_member":
        return _canon_action(entity.action_profile_member.action)
    g = entity.action_profile_group
    return (g.max_size, tuple(sorted((m.member_id, m.weight) for m in g.members)))


@dataclass(frozen=True, slots=True)
class Item:
    """One entity we want on the device, with the Kubernetes objects it comes from."""

    key: Key
    entity: Any
    origin: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.key[0])


def bundle_items(schema: Schema, bundle: Bundle) -> dict[Key, Item]:
    """The bundle as P4Runtime entities keyed for the diff."""
    out: dict[Key, Item] = {}

    def add(entity: Any, origin: tuple[str, ...]) -> None:
        key = entity_key(entity)
        out[key] = Item(key, entity, origin)

    for m in bundle.members:
        add(p4r.Entity(action_profile_member=member_message(schema, m)), m.origin)
    for g in bundle.groups:
        add(p4r.Entity(action_profile_group=group_message(schema, g)), g.origin)
    for e in bundle.entries:
        add(p4r.Entity(table_entry=table_entry_message(schema, e)), e.origin)
    return out


def with_initial_defaults(schema: Schema, items: dict[Key, Item]) -> dict[Key, Item]:
    """`items` plus, for every table whose default it leaves alone, the program's initial default
    (P4Info `initial_default_action`), so drifted defaults are diffed and repaired too. Indirect
    tables and const defaults are left out: a controller cannot change those. So is a table whose
    initial default the P4Info does not say (`complete_initial_defaults`): a desired "reset" would
    never read back equal, and every sync would rewrite it."""
    out = dict(items)
    for table in schema.p4info.tables:
        key: Key = ("default", table.preamble.id)
        if key in out or table.implementation_id or table.const_default_action_id:
            continue
        if not table.HasField("initial_default_action"):
            continue
        te = p4r.TableEntry(table_id=table.preamble.id, is_default_action=True)
        init = table.initial_default_action
        te.action.action.action_id = init.action_id
        for arg in init.arguments:
            te.action.action.params.add(param_id=arg.param_id, value=arg.value)
        out[key] = Item(key, p4r.Entity(table_entry=te), ("P4 program initial default",))
    return out


def complete_initial_defaults(p4info: Any, reference: Any) -> tuple[Any, list[str]]:
    """A copy of `p4info` with each table's missing `initial_default_action` (p4c 1.2.4 writes none;
    the field is P4Runtime 1.4's) taken from `reference` (our front end's P4Info of the program)
    where the table and that action are the same there: same id and name, the action among the
    table's actions with the same parameters. Also the names of the direct tables still without one,
    whose defaults the loader then leaves alone."""
    out = type(p4info)()
    out.CopyFrom(p4info)
    ref_tables = {t.preamble.id: t for t in reference.tables}
    ref_actions = {a.preamble.id: a for a in reference.actions}
    actions = {a.preamble.id: a for a in out.actions}
    unknown: list[str] = []
    for table in out.tables:
        if table.HasField("initial_default_action") or table.implementation_id:
            continue
        if table.const_default_action_id:
            continue
        ref = ref_tables.get(table.preamble.id)
        has = ref is not None and ref.HasField("initial_default_action")
        init = ref.initial_default_action if ref is not None and has else None
        same = (
            ref is not None
            and init is not None
            and ref.preamble.name == table.preamble.name
            and init.action_id in {r.id for r in table.action_refs}
            and init.action_id in actions
            and init.action_id in ref_actions
            and _params(actions[init.action_id]) == _params(ref_actions[init.action_id])
        )
        if same:
            assert init is not None
            table.initial_default_action.CopyFrom(init)
        else:
            unknown.append(table.preamble.alias or table.preamble.name)
    return out, unknown


def _params(action: Any) -> tuple[Any, ...]:
    return (action.preamble.name, tuple((p.id, p.name, p.bitwidth) for p in action.params))


def device_items(entities: Iterable[Any]) -> dict[Key, Item]:
    """Entities read back from a device (no origin: the device does not know it)."""
    out: dict[Key, Item] = {}
    for entity in entities:
        key = entity_key(entity)
        out[key] = Item(key, entity)
    return out


def same(a: Item, b: Item) -> bool:
    """Equal in canonical form. Equal messages are (the usual case for a device that answers
    what we wrote, checked in C); others are compared field by field."""
    return bool(a.entity == b.entity or entity_value(a.entity) == entity_value(b.entity))


_NAMES: dict[int, tuple[Schema, dict[int, str]]] = {}


def _names(schema: Schema) -> dict[int, str]:
    """Table and profile names by id, built once per schema (the loader asks per written op)."""
    cached = _NAMES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    info = schema.p4info
    names = {t.preamble.id: t.preamble.alias or t.preamble.name for t in info.tables}
    names.update({p.preamble.id: p.preamble.alias or p.preamble.name for p in info.action_profiles})
    if len(_NAMES) >= 16:  # a few schemas per process; tests make many
        _NAMES.clear()
    _NAMES[id(schema)] = (schema, names)
    return names


def container(schema: Schema, key: Key) -> str:
    """The table (`svc_frontend`) or profile part (`svc_selector members`) an entity lives in."""
    name = _names(schema).get(key[1], str(key[1]))
    return f"{name} {key[0]}s" if key[0] in ("member", "group") else name


def describe(schema: Schema, key: Key) -> str:
    """`table svc_frontend`, `profile svc_selector member 7`: for logs and error reports."""
    names = _names(schema)
    kind = key[0]
    if kind == "default":
        return f"table {names.get(key[1], key[1])} default entry"
    if kind == "table":
        return f"table {names.get(key[1], key[1])}"
    return f"profile {names.get(key[1], key[1])} {kind} {key[2]}"
