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

import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NamedTuple

from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.loader.entities import Item, Key, same
from k8s_offload.loader.transition import Facts, transition_states
from k8s_offload.p4rt import wire
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


class Op(NamedTuple):
    """One update of a plan (a tuple: plans hold one per entity, so it must be cheap to make)."""

    type: int
    item: Item

    def entity(self) -> Any:
        """The entity the update carries: a table entry DELETE names the key only."""
        entity = self.item.entity
        if self.type == DELETE and entity.WhichOneof("entity") == "table_entry":
            key_only = p4r.Entity()
            key_only.table_entry.CopyFrom(entity.table_entry)
            key_only.table_entry.ClearField("action")
            entity = key_only
        return entity

    def update(self) -> Any:
        return p4r.Update(type=self.type, entity=self.entity())

    def encoded(self) -> bytes:
        """`update()` serialized, without building it (`P4RuntimeClient.write` takes either)."""
        return wire.update(self.type, self.entity().SerializeToString())

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


@dataclass(frozen=True, slots=True)
class _Static:
    """What one P4Info says about references, built once per schema (a delta plan builds
    `References` for a few hundred items): table id -> profile id; action id -> param id ->
    [(table id, field id)] of `LINKS`; table id -> the field ids those links point at; the
    `KEY_LINKS` by source table and, by target table, the field-id tuples they look up; and the
    tables and profiles whose entities may refer to anything (`quiet`: those that never do, so
    their messages need not be read)."""

    profile_of: dict[int, int]
    links: dict[int, dict[int, list[tuple[int, int]]]]
    targets: dict[int, frozenset[int]]
    key_links: _KeyLinks
    key_targets: dict[int, tuple[tuple[int, ...], ...]]
    quiet: frozenset[tuple[str, int]]


_STATIC: dict[int, tuple[Schema, _Static]] = {}


def _static_links(schema: Schema) -> _Static:
    cached = _STATIC.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    info = schema.p4info
    profile_of = {t.preamble.id: t.implementation_id for t in info.tables}
    links: dict[int, dict[int, list[tuple[int, int]]]] = {}
    targets: dict[int, set[int]] = defaultdict(set)
    for link in LINKS:
        try:
            act = schema.action(link.action)
            table = schema.table(link.table)
            fld = table.field(link.field)
        except BundleError:
            continue  # another program: the link does not apply
        params = {p.name: p.id for p in act.params}
        if link.param in params:
            links.setdefault(act.id, {}).setdefault(params[link.param], []).append((table.id, fld.id))
            targets[table.id].add(fld.id)
    key_links: _KeyLinks = defaultdict(list)
    key_targets: dict[int, set[tuple[int, ...]]] = defaultdict(set)
    for kl in KEY_LINKS:
        try:
            src, dst = schema.table(kl.table), schema.table(kl.target)
            ids = tuple(src.field(f).id for f in kl.fields), tuple(dst.field(f).id for f in kl.fields)
        except BundleError:
            continue  # another program: the link does not apply
        key_links[src.id].append((dst.id, *ids))
        key_targets[dst.id].add(ids[1])
    quiet: set[tuple[str, int]] = set()
    for t in info.tables:
        if (
            not t.implementation_id
            and t.preamble.id not in key_links
            and not any(ref.id in links for ref in t.action_refs)
        ):
            quiet |= {("table", t.preamble.id), ("default", t.preamble.id)}
    for prof in info.action_profiles:
        tables = [t for t in info.tables if t.preamble.id in prof.table_ids]
        if not any(ref.id in links for t in tables for ref in t.action_refs):
            quiet.add(("member", prof.preamble.id))
    static = _Static(
        profile_of,
        links,
        {t: frozenset(f) for t, f in targets.items()},
        dict(key_links),
        {t: tuple(sorted(f)) for t, f in key_targets.items()},
        frozenset(quiet),
    )
    if len(_STATIC) >= 16:  # a few schemas per process; tests make many
        _STATIC.clear()
    _STATIC[id(schema)] = (schema, static)
    return static


_NONE: tuple[Key, ...] = ()


class References:
    """What each entity refers to, resolved against one P4Info. The indexes of link targets over
    `items` (by one exact field for `LINKS`, by a tuple of exact fields for `KEY_LINKS`) are
    built in one pass on the first question that needs them (a no-op sync asks none)."""

    def __init__(self, schema: Schema, items: Iterable[Item]) -> None:
        self._static = _static_links(schema)
        self._items: Iterable[Item] | None = items
        self._index: dict[tuple[int, int, bytes], list[Key]] = {}
        self._key_index: dict[tuple[int, tuple[bytes, ...]], list[Key]] = {}

    def _indexes(
        self,
    ) -> tuple[dict[tuple[int, int, bytes], list[Key]], dict[tuple[int, tuple[bytes, ...]], list[Key]]]:
        items = self._items
        if items is not None:
            self._items = None
            index, key_index = self._index, self._key_index
            targets, key_targets = self._static.targets, self._static.key_targets
            for item in items:
                key = item.key
                if key[0] != "table":
                    continue
                fields = targets.get(key[1])
                if fields is not None:
                    for fm in item.entity.table_entry.match:
                        if fm.field_id in fields and fm.WhichOneof("field_match_type") == "exact":
                            index.setdefault((key[1], fm.field_id, _norm(fm.exact.value)), []).append(key)
                for tuple_ in key_targets.get(key[1], ()):
                    key_index.setdefault((key[1], _exact(item.entity.table_entry, tuple_)), []).append(key)
        return self._index, self._key_index

    def of(self, item: Item) -> Sequence[Key]:
        key = item.key
        kind = key[0]
        if (kind, key[1]) in self._static.quiet:
            return _NONE
        entity = item.entity
        out: list[Key] = []
        if kind == "table" or kind == "default":
            te = entity.table_entry
            key_links = self._static.key_links.get(key[1])
            if key_links:
                key_index = self._indexes()[1]
                for target_id, src_fields, _ in key_links:
                    found = key_index.get((target_id, _exact(te, src_fields)))
                    if found:
                        out += (k for k in found if k != key)
            ta = te.action
            which = ta.WhichOneof("type")
            if which == "action":
                action = ta.action
            elif which == "action_profile_member_id":
                out.append(("member", self._static.profile_of.get(key[1], 0), ta.action_profile_member_id))
                return out
            elif which == "action_profile_group_id":
                out.append(("group", self._static.profile_of.get(key[1], 0), ta.action_profile_group_id))
                return out
            else:
                return out
        elif kind == "member":
            action = entity.action_profile_member.action
        elif kind == "group":
            return [("member", key[1], m.member_id) for m in entity.action_profile_group.members]
        else:
            return _NONE
        linked = self._static.links.get(action.action_id)
        if not linked:
            return out
        index = self._indexes()[0]
        for p in action.params:
            fields = linked.get(p.param_id)
            if fields:
                value = _norm(p.value)
                for table_id, field_id in fields:
                    found = index.get((table_id, field_id, value))
                    if found:
                        out += found
        return out


def _norm(value: bytes) -> bytes:
    return value.lstrip(b"\0") or b"\0"


def _exact(te: Any, fields: tuple[int, ...]) -> tuple[bytes, ...]:
    """An entry's exact values of `fields`, in that order (b"" for a field it does not match)."""
    values = {
        fm.field_id: _norm(fm.exact.value) for fm in te.match if fm.WhichOneof("field_match_type") == "exact"
    }
    return tuple(values.get(f, b"") for f in fields)


def _levels(keys: Collection[Key], deps: Mapping[Key, Sequence[Key]]) -> dict[Key, int]:
    """Longest dependency chain below each key, counting only keys in `keys` (a set or a dict's
    keys). Iterative, so a chain as long as the plan cannot exhaust the stack; linear in keys and
    edges. A cycle cannot be ordered: its back edge is ignored rather than looped on. Keys are
    visited in the order given, so the result is deterministic."""
    level: dict[Key, int] = {}
    visiting: set[Key] = set()
    for root in keys:
        if root in level:
            continue
        if not deps.get(root):
            level[root] = 0
            continue
        visiting.add(root)
        stack: list[tuple[Key, Iterator[Key]]] = [(root, iter(deps[root]))]
        while stack:
            k, todo = stack[-1]
            for d in todo:
                if d not in level and d in keys and d not in visiting and d != k:
                    if deps.get(d):
                        visiting.add(d)
                        stack.append((d, iter(deps[d])))
                        break
                    level[d] = 0
            else:
                stack.pop()
                visiting.discard(k)
                top = -1
                for d in deps[k]:
                    if d != k and d in keys:
                        top = max(top, level.get(d, -1))
                level[k] = top + 1
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
    referrers: dict[Key, list[Key]] = {op.item.key: [] for op in deletes}
    for op in deletes:
        for target in refs.of(op.item):
            if target in referrers:
                referrers[target].append(op.item.key)
    return _stages(deletes, _levels(referrers, referrers))


def _ordered_stages(ops: list[Op], refs: References) -> list[list[Op]]:
    """INSERTs or MODIFYs: an entity goes after every entity (of the same ops) it refers to."""
    deps = {op.item.key: refs.of(op.item) for op in ops}
    return _stages(ops, _levels(deps, deps))


def make_plan(
    schema: Schema,
    desired: Mapping[Key, Item],
    current: Mapping[Key, Item],
    refs: References | None = None,
    facts: Facts | None = None,
) -> Plan:
    """The ordered updates that turn `current` into `desired`. Default entries are only modified
    (they always exist), and only for tables the desired state sets a default for. Entities that
    must be replaced (`_replaced`) are deleted first, referrers before what they refer to; the rest
    is the plan from the device without them (they are inserted with the other INSERTs). `refs`:
    `References` over both states' items, if the caller has it already. When a peer class of some
    address changes or a rule-set id is reused, the plan goes through the intermediate states of
    `transition.py`; `facts`: the parsed policy stages of `desired`, if the caller keeps them
    (else parsed here when needed)."""
    if refs is None:
        refs = References(schema, itertools.chain(desired.values(), current.values()))
    replaced = _replaced(desired, current, refs)
    if replaced:
        # Withdraw the replaced entities first; the rest (their inserts among it) is the plan
        # from the device without them, through the policy transition when one is needed.
        plan = Plan(_delete_stages([Op(DELETE, current[k]) for k in replaced], refs))
        kept = {k: it for k, it in current.items() if k not in replaced}
        plan.stages += make_plan(schema, desired, kept, refs, facts).stages
        plan.stages = [s for s in plan.stages if s]
        return plan
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
        refs = References(schema, itertools.chain(desired.values(), current.values()))
    replaced = _replaced(desired, current, refs)
    kept: Collection[Key] = current.keys() - replaced if replaced else current.keys()
    inserts: list[Op] = []
    modifies: list[Op] = []
    reset: list[Op] = []  # default entries the device did not report
    for k, it in desired.items():
        if k in kept:
            if not same(it, current[k]):
                modifies.append(Op(MODIFY, it))
        elif k[0] == "default":
            reset.append(Op(MODIFY, it))
        else:
            inserts.append(Op(INSERT, it))
    modifies += reset
    deletes = [
        Op(DELETE, it) for k, it in current.items() if k not in desired and k in kept and k[0] != "default"
    ]
    withdraw = [Op(DELETE, it) for k, it in current.items() if k in replaced]

    plan = Plan()
    plan.stages += _delete_stages(withdraw, refs)
    plan.stages += _ordered_stages(inserts, refs)
    plan.stages += _ordered_stages(modifies, refs)
    plan.stages += _delete_stages(deletes, refs)
    plan.stages = [s for s in plan.stages if s]
    return plan
