"""Desired entities vs. the device's, as an ordered plan that never exposes a packet to a mix.

Order (docs/runtime.md, "Per-packet consistency"): (1) INSERTs, each after everything it refers
to; (2) MODIFYs, the single-entity atomic flips (spec §"Atomicity of Individual Write and Read
Operations"); (3) DELETEs, each after everything that referred to it. "Refers to" is P4Runtime's
own (table entry -> member/group, group -> member) plus the program's id links in `LINKS`: an
action parameter that names the entries of another table by one of their exact keys, and the key
links in `KEY_LINKS`: entries of two tables keyed by the same frontend. So a Service's frontend is
published after its groups, members and options (masquerade, split mask, affinity), and withdrawn
before them; a policy's new rule set is written before the pod entry flips to it and the old set
removed after. Each stage is a separate Write, since a server may reorder within a batch
(spec §"Batching and Ordering of Updates").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.loader.entities import Item, Key, same
from k8s_offload.loader.transition import Facts, transition_states
from k8s_offload.p4rt.proto import p4runtime as p4r

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
TYPE_NAMES = {INSERT: "INSERT", MODIFY: "MODIFY", DELETE: "DELETE"}


@dataclass(frozen=True, slots=True)
class Link:
    """Action `action`'s parameter `param` refers to the entries of `table` whose `field` equals it."""

    action: str
    param: str
    table: str
    field: str


@dataclass(frozen=True, slots=True)
class KeyLink:
    """Entries of `table` refer to the entries of `target` whose exact keys `fields` (named alike in
    both tables) equal their own."""

    table: str
    target: str
    fields: tuple[str, ...]


_FRONTEND = ("dst_addr", "l4_proto", "dport")
KEY_LINKS = (
    # A frontend's svc_frontend entries start load-balancing: its masquerade, split mask and
    # affinity domain (svc_options, per fe_internal) are in place before, and go after.
    KeyLink("svc_frontend", "svc_options", (*_FRONTEND, "fe_internal")),
    # svc_frontend_internal sends pod and host traffic to the frontend's fe_internal 1 entries.
    KeyLink("svc_frontend_internal", "svc_frontend", _FRONTEND),
)

LINKS = (
    Link("set_options", "aff_id", "aff_backend", "aff_id"),
    Link("eg_isolate", "set_id", "eg_peer_rules", "eg_set"),
    Link("eg_isolate", "set_id", "eg_port_rules", "eg_set"),
    Link("in_isolate", "set_id", "in_peer_rules", "in_set"),
    Link("in_isolate", "set_id", "in_port_rules", "in_set"),
    # A peer-class LPM entry is written after the (set, class) peer-rule entries of its class and
    # removed before them: a class keeps its id across policy changes (its lowest network names it),
    # so an address can move into an existing class or into a new one in the same delta.
    Link("eg_set_peer_class", "peer_class", "eg_peer_rules", "eg_peer_class"),
    Link("in_set_peer_class", "peer_class", "in_peer_rules", "in_peer_class"),
)


@dataclass(frozen=True, slots=True)
class Op:
    type: int
    item: Item

    def update(self) -> Any:
        entity = self.item.entity
        if self.type == DELETE and entity.WhichOneof("entity") == "table_entry":
            key_only = p4r.Entity()
            key_only.table_entry.CopyFrom(entity.table_entry)
            key_only.table_entry.ClearField("action")
            entity = key_only
        return p4r.Update(type=self.type, entity=entity)

    def __str__(self) -> str:
        return f"{TYPE_NAMES[self.type]} {self.item.key}"


@dataclass
class Plan:
    """Stages in order; the ops inside a stage do not depend on each other."""

    stages: list[list[Op]] = field(default_factory=list)

    def ops(self) -> Iterator[Op]:
        for stage in self.stages:
            yield from stage

    def __len__(self) -> int:
        return sum(len(s) for s in self.stages)

    def counts(self) -> dict[str, int]:
        out = {"INSERT": 0, "MODIFY": 0, "DELETE": 0}
        for op in self.ops():
            out[TYPE_NAMES[op.type]] += 1
        return out

    def batches(self, size: int) -> Iterator[list[Op]]:
        """Writes of at most `size` updates that never span two stages."""
        for stage in self.stages:
            for i in range(0, len(stage), max(1, size)):
                yield stage[i : i + size]


_KeyLinks = dict[int, list[tuple[int, tuple[int, ...], tuple[int, ...]]]]
"""Source table id -> [(target table id, source field ids, target field ids)] of `KEY_LINKS`."""
_Static = tuple[dict[int, int], dict[tuple[int, int], list[tuple[int, int]]], set[tuple[int, int]], _KeyLinks]
_STATIC: dict[int, tuple[Schema, _Static]] = {}


def _static_links(schema: Schema) -> _Static:
    """Per schema, built once (a delta plan builds `References` for a few hundred items):
    table id -> profile id, (action id, param id) -> [(table id, field id)] of `LINKS`, and the
    (table id, field id) those links point at."""
    cached = _STATIC.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    info = schema.p4info
    profile_of = {t.preamble.id: t.implementation_id for t in info.tables}
    links: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for link in LINKS:
        try:
            act = schema.action(link.action)
            table = schema.table(link.table)
            fld = table.field(link.field)
        except BundleError:
            continue  # another program: the link does not apply
        params = {p.name: p.id for p in act.params}
        if link.param in params:
            links[(act.id, params[link.param])].append((table.id, fld.id))
    targets = {t for ts in links.values() for t in ts}
    key_links: _KeyLinks = defaultdict(list)
    for kl in KEY_LINKS:
        try:
            src, dst = schema.table(kl.table), schema.table(kl.target)
            ids = tuple(src.field(f).id for f in kl.fields), tuple(dst.field(f).id for f in kl.fields)
        except BundleError:
            continue
        key_links[src.id].append((dst.id, *ids))
    static = (profile_of, dict(links), targets, dict(key_links))
    if len(_STATIC) >= 16:  # a few schemas per process; tests make many
        _STATIC.clear()
    _STATIC[id(schema)] = (schema, static)
    return static


class References:
    """What each entity refers to, resolved against one P4Info."""

    def __init__(self, schema: Schema, items: Iterator[Item] | list[Item]) -> None:
        self._profile_of, self._links, targets, self._key_links = _static_links(schema)
        key_targets = {(t, fields) for links in self._key_links.values() for t, _, fields in links}
        self._by_field: dict[tuple[int, int, bytes], list[Key]] = defaultdict(list)
        self._by_key: dict[tuple[int, tuple[bytes, ...]], list[Key]] = defaultdict(list)
        for item in items:
            if item.key[0] != "table":
                continue
            te = item.entity.table_entry
            for fm in te.match:
                if (te.table_id, fm.field_id) in targets and fm.WhichOneof("field_match_type") == "exact":
                    self._by_field[(te.table_id, fm.field_id, _norm(fm.exact.value))].append(item.key)
            for table_id, fields in key_targets:
                if te.table_id == table_id:
                    self._by_key[(table_id, _exact(te, fields))].append(item.key)

    def of(self, item: Item) -> list[Key]:
        kind = item.key[0]
        entity = item.entity
        out: list[Key] = []
        action = None
        if kind == "group":
            g = entity.action_profile_group
            out += [("member", g.action_profile_id, m.member_id) for m in g.members]
        elif kind == "member":
            action = entity.action_profile_member.action
        elif kind in ("table", "default"):
            te = entity.table_entry
            which = te.action.WhichOneof("type")
            profile = self._profile_of.get(te.table_id, 0)
            if which == "action_profile_member_id":
                out.append(("member", profile, te.action.action_profile_member_id))
            elif which == "action_profile_group_id":
                out.append(("group", profile, te.action.action_profile_group_id))
            elif which == "action":
                action = te.action.action
            for table_id, fields, _ in self._key_links.get(te.table_id, ()):
                found = self._by_key.get((table_id, _exact(te, fields)), ())
                out += (k for k in found if k != item.key)
        if action is not None:
            for p in action.params:
                for table_id, field_id in self._links.get((action.action_id, p.param_id), ()):
                    out += self._by_field.get((table_id, field_id, _norm(p.value)), ())
        return out


def _norm(value: bytes) -> bytes:
    return value.lstrip(b"\0") or b"\0"


def _exact(te: Any, fields: tuple[int, ...]) -> tuple[bytes, ...]:
    """An entry's exact values of `fields`, in that order (b"" for a field it does not match)."""
    values = {
        fm.field_id: _norm(fm.exact.value) for fm in te.match if fm.WhichOneof("field_match_type") == "exact"
    }
    return tuple(values.get(f, b"") for f in fields)


def _levels(keys: set[Key], deps: Mapping[Key, list[Key]]) -> dict[Key, int]:
    """Longest dependency chain below each key, counting only keys in `keys`."""
    level: dict[Key, int] = {}
    visiting: set[Key] = set()

    def visit(k: Key) -> int:
        if k in level:
            return level[k]
        if k in visiting:  # a cycle cannot be ordered; break it rather than loop
            return 0
        visiting.add(k)
        below = [visit(d) + 1 for d in deps.get(k, ()) if d in keys and d != k]
        visiting.discard(k)
        level[k] = max(below, default=0)
        return level[k]

    for k in sorted(keys, key=repr):
        visit(k)
    return level


def _stages(ops: list[Op], level: Mapping[Key, int], reverse: bool = False) -> list[list[Op]]:
    by_level: dict[int, list[Op]] = defaultdict(list)
    for op in ops:
        by_level[level.get(op.item.key, 0)].append(op)
    return [by_level[n] for n in sorted(by_level, reverse=reverse)]


def _replaced(desired: Mapping[Key, Item], current: Mapping[Key, Item], refs: References) -> set[Key]:
    """Device entities to delete before anything else: groups whose max_size changes (P4Runtime
    cannot MODIFY it) and, transitively, every device entity referring to one of them (it cannot
    outlive the old group). Those still desired are inserted again with the other INSERTs."""
    out = {
        k
        for k, it in desired.items()
        if k[0] == "group"
        and k in current
        and it.entity.action_profile_group.max_size != current[k].entity.action_profile_group.max_size
    }
    if not out:
        return out
    referrers: dict[Key, set[Key]] = defaultdict(set)
    for k, it in current.items():
        for target in refs.of(it):
            referrers[target].add(k)
    todo = list(out)
    while todo:
        for k in referrers.get(todo.pop(), ()):
            if k not in out and k[0] != "default":
                out.add(k)
                todo.append(k)
    return out


def _delete_stages(deletes: list[Op], refs: References) -> list[list[Op]]:
    """Deletions: an entity goes after every entity (being deleted) that refers to it."""
    deleting = {op.item.key for op in deletes}
    referrers: dict[Key, list[Key]] = defaultdict(list)
    for op in deletes:
        for target in refs.of(op.item):
            referrers[target].append(op.item.key)
    return _stages(deletes, _levels(deleting, referrers))


def make_plan(
    schema: Schema,
    desired: Mapping[Key, Item],
    current: Mapping[Key, Item],
    refs: References | None = None,
    facts: Facts | None = None,
) -> Plan:
    """The ordered updates that turn `current` into `desired`. Default entries are only modified
    (they always exist), and only for tables the desired state sets a default for. Entities that
    must be replaced (`_replaced`) are deleted first, referrers before what they refer to, then
    inserted with the other INSERTs. `refs`: `References` over both states' items, if the caller
    has it already. When a peer class of some address changes or a rule-set id is reused, the plan
    goes through the intermediate states of `transition.py`; `facts`: the parsed policy stages
    of `desired`, if the caller keeps them (else parsed here when needed)."""
    plan = _plain_plan(schema, desired, current, refs)
    changed = list(dict.fromkeys(op.item.key for op in plan.ops()))  # in plan order (member handles)
    if not any(k[0] == "table" for k in changed):
        return plan
    if facts is None:
        facts = Facts(schema)
        if not any(facts.stage_of(k) is not None for k in changed):
            return plan
        for k, item in desired.items():
            if facts.stage_of(k) is not None:
                facts.add(item)
    if _replaced(desired, current, refs or References(schema, [*desired.values(), *current.values()])):
        return plan  # a replaced group's untouched referrers are rewritten too: one plan
    states = transition_states(schema, facts, desired, current, changed)
    return plan if states is None else phased(schema, states)


def phased(schema: Schema, states: list[dict[Key, Item]]) -> Plan:
    """One plan through each of `states` in turn (each an ordinary plan from the one before)."""
    plan = Plan()
    for before, after in pairwise(states):
        plan.stages += _plain_plan(schema, after, before).stages
    return plan


def _plain_plan(
    schema: Schema,
    desired: Mapping[Key, Item],
    current: Mapping[Key, Item],
    refs: References | None = None,
) -> Plan:
    """`make_plan` in one step: inserts, modifies, deletes."""
    if refs is None:
        refs = References(schema, [*desired.values(), *current.values()])
    replaced = _replaced(desired, current, refs)
    kept = current.keys() - replaced
    inserts = [Op(INSERT, it) for k, it in desired.items() if k not in kept and k[0] != "default"]
    modifies = [Op(MODIFY, it) for k, it in desired.items() if k in kept and not same(it, current[k])]
    modifies += [Op(MODIFY, it) for k, it in desired.items() if k[0] == "default" and k not in current]
    deletes = [Op(DELETE, it) for k, it in current.items() if k in kept and k not in desired]
    deletes = [op for op in deletes if op.item.key[0] != "default"]
    withdraw = [Op(DELETE, current[k]) for k in sorted(replaced, key=repr)]

    plan = Plan()
    plan.stages += _delete_stages(withdraw, refs)
    new_deps = {op.item.key: refs.of(op.item) for op in inserts + modifies}
    plan.stages += _stages(inserts, _levels({op.item.key for op in inserts}, new_deps))
    plan.stages += _stages(modifies, _levels({op.item.key for op in modifies}, new_deps))
    plan.stages += _delete_stages(deletes, refs)
    plan.stages = [s for s in plan.stages if s]
    return plan
