"""Make-before-break for the policy stages' shared peer classifier (docs/runtime.md, "Per-packet
consistency").

A policy stage (one direction of the NetworkPolicy stages, or any stage built the same way) looks
a packet up in four steps: the pod entry names a rule set (`set_id`), a classifier shared by every
set maps the peer address to a class (the exact host table, then the LPM), the set's rule entries
map (set, class) to a rule mask. A rule set's id is derived from its content, so a changed set is a
new id and the pod entry flips to it in one atomic MODIFY. The classifier cannot be versioned per
set: when an address's class changes (a peer-set regroup), a packet from a pod still on its old set
could meet the new class, or one from a pod already on its new set the old class. And an id can be
reused within one change (a new set, or class, landing on the slot of one removed in the same
event), so the same key would mean two things.

The transition therefore goes through two intermediate states, each a state in which every packet
sees either the old or the new verdict:

1. Every classifier key of the old or the new state is present, labelled with a class that answers
   for both: where an address's old class `o` and new class `n` differ, a temporary class (a free
   id) whose rule entries hold, for each old set, its old mask of `o` and, for each new set, its new
   mask of `n` (or `n` itself when every old set's mask of `n` already agrees with that of `o`).
   The new sets' entries are written, pods of sets whose meaning changes under the same id move to
   a temporary copy of their old set, and (phase 1b) the stale entries of those ids go.
2. The pod entries flip to their new sets (and the new entries of reused ids are written first).
3. The classifier takes its new labels, then the temporary classes, copies and old sets go.

Each phase is an ordinary plan (`plan.make_plan`: inserts, modifies, deletes, each level after what
it refers to). The work is linear in the changed entities and the entries of the classes and sets
they touch; the common change (no class moves, no id reused) is one plan as before.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8s_offload.compiler.bundle.model import Exact
from k8s_offload.compiler.bundle.p4rt import encode, table_entry_message
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.loader.entities import Item, Key, entity_key
from k8s_offload.p4rt.proto import p4runtime as p4r

WIDTH = 128
ORIGIN = ("policy transition",)


@dataclass(frozen=True, slots=True)
class ClassedStage:
    """The names of one classified stage, as the P4 program spells them."""

    pod: str
    isolate: str
    classifiers: tuple[str, ...]
    """Looked up in order, each only when the previous missed: exact tables, then one LPM table."""
    set_class: str
    rules: str
    set_rules: str
    """The action of `rules` entries."""
    set_field: str
    class_field: str
    set_tables: tuple[str, ...]
    """Every table keyed by `set_field` (the rule tables), `rules` among them."""
    set_param: str = "set_id"
    class_param: str = "peer_class"
    mask_param: str = "rules"


STAGES: list[ClassedStage] = [
    ClassedStage(
        f"{p}_pod",
        f"{p}_isolate",
        (f"{p}_peer_host", f"{p}_peer_class"),
        f"{p}_set_peer_class",
        f"{p}_peer_rules",
        f"{p}_set_peer_rules",
        f"{p}_set",
        f"{p}_peer_class",
        (f"{p}_peer_rules", f"{p}_port_rules"),
    )
    for p in ("eg", "in")
] + [
    ClassedStage(
        f"{p}_tier_pod",
        f"{p}_tier_subject",
        (f"{p}_tier_peer_host", f"{p}_tier_peer_class"),
        f"{p}_tier_set_peer_class",
        f"{p}_tier_peer_rules",
        f"{p}_tier_set_peer_rules",
        f"{p}_tier_set",
        f"{p}_peer_class",
        (f"{p}_tier_peer_rules", f"{p}_tier_port_rules", f"{p}_admin", f"{p}_baseline"),
    )
    for p in ("eg", "in")
]
"""The NetworkPolicy stages and the cluster policy tier stages (docs/tiers.md), whose rule tables
include the ternary decision tables keyed by the same tier set; other stages built the same way
add theirs."""


@dataclass(slots=True)
class _Ids:
    """One stage's P4Info ids."""

    stage: ClassedStage
    pod: int
    isolate: int
    set_param: int
    hosts: dict[int, str]  # exact classifier table id -> alias
    lpm: int
    set_class: int
    class_param: int
    rules: int
    rules_set: int
    rules_class: int
    mask_param: int
    set_tables: dict[int, int]  # table id -> id of its set field


def _resolve(schema: Schema, stage: ClassedStage) -> _Ids | None:
    """The stage's ids in this program, or None when the program lacks it."""
    try:
        pod = schema.table(stage.pod)
        isolate = schema.action(stage.isolate)
        set_class = schema.action(stage.set_class)
        rules = schema.table(stage.rules)
        classifiers = [schema.table(t) for t in stage.classifiers if schema.has_table(t)]
        set_tables = {schema.table(t).id: schema.table(t).field(stage.set_field).id for t in stage.set_tables}
        (mask_param,) = {
            p.id for a in rules.actions.values() for p in a.action.params if p.name == stage.mask_param
        }
        (set_param,) = (p.id for p in isolate.params if p.name == stage.set_param)
        (class_param,) = (p.id for p in set_class.params if p.name == stage.class_param)
        rules_set, rules_class = rules.field(stage.set_field).id, rules.field(stage.class_field).id
    except (BundleError, ValueError):
        return None
    if not classifiers or classifiers[-1].fields[0].kind != "lpm":
        return None
    hosts = {t.id: t.alias for t in classifiers[:-1]}
    lpm = classifiers[-1].id
    return _Ids(
        stage,
        pod.id,
        isolate.id,
        set_param,
        hosts,
        lpm,
        set_class.id,
        class_param,
        rules.id,
        rules_set,
        rules_class,
        mask_param,
        set_tables,
    )


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


Fact = tuple[Any, ...]
"""A parsed entity of a stage: ("pod", set, other params), ("host", address, class),
("lpm", value, length, class), ("rules", set, class, mask), ("set", set)."""


def _parse(ids: _Ids, item: Item) -> Fact | None:
    te = item.entity.table_entry
    table = te.table_id
    if table == ids.pod:
        params = te.action.action.params
        sid = next((_int(p.value) for p in params if p.param_id == ids.set_param), 0)
        rest = tuple(sorted((p.param_id, _int(p.value)) for p in params if p.param_id != ids.set_param))
        return ("pod", sid, rest)
    if table in ids.hosts or table == ids.lpm:
        cls = next((_int(p.value) for p in te.action.action.params if p.param_id == ids.class_param), 0)
        if table == ids.lpm:
            if not te.match:
                return ("lpm", 0, 0, cls)
            m = te.match[0].lpm
            return ("lpm", _int(m.value), m.prefix_len, cls)
        return ("host", _int(te.match[0].exact.value), cls)
    set_field = ids.set_tables.get(table)
    if set_field is None:
        return None
    sid = next(_int(fm.exact.value) for fm in te.match if fm.field_id == set_field)
    if table == ids.rules:
        cls = next(_int(fm.exact.value) for fm in te.match if fm.field_id == ids.rules_class)
        mask = next((_int(p.value) for p in te.action.action.params if p.param_id == ids.mask_param), 0)
        return ("rules", sid, cls, mask)
    return ("set", sid)


@dataclass(slots=True)
class _Stage:
    """The facts of one stage in one state, with the aggregates the transition asks for."""

    facts: dict[Key, Fact] = field(default_factory=dict)
    set_pods: dict[int, set[Key]] = field(default_factory=lambda: defaultdict(set))
    hosts: dict[int, int] = field(default_factory=dict)
    lpm: dict[tuple[int, int], int] = field(default_factory=dict)
    lengths: Counter[int] = field(default_factory=Counter)
    rules: dict[tuple[int, int], int] = field(default_factory=dict)
    by_class: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    set_keys: dict[int, set[Key]] = field(default_factory=lambda: defaultdict(set))
    labels: Counter[int] = field(default_factory=Counter)

    def add(self, key: Key, f: Fact) -> None:
        self.facts[key] = f
        self._count(f, 1, key)

    def remove(self, key: Key) -> None:
        f = self.facts.pop(key, None)
        if f is not None:
            self._count(f, -1, key)

    def _count(self, f: Fact, n: int, key: Key) -> None:
        kind = f[0]
        if kind == "pod":
            pods = self.set_pods[f[1]]
            if n > 0:
                pods.add(key)
            else:
                pods.discard(key)
                if not pods:
                    del self.set_pods[f[1]]
            return
        if kind == "host" or kind == "lpm":
            cls = f[-1]
            self.labels[cls] += n
            if not self.labels[cls]:
                del self.labels[cls]
            if kind == "host":
                if n > 0:
                    self.hosts[f[1]] = cls
                else:
                    self.hosts.pop(f[1], None)
            else:
                self.lengths[f[2]] += n
                if not self.lengths[f[2]]:
                    del self.lengths[f[2]]
                if n > 0:
                    self.lpm[(f[1], f[2])] = cls
                else:
                    self.lpm.pop((f[1], f[2]), None)
            return
        sid = f[1]
        keys = self.set_keys[sid]
        if n > 0:
            keys.add(key)
        else:
            keys.discard(key)
            if not keys:
                del self.set_keys[sid]
        if kind == "rules":
            cls = f[2]
            if n > 0:
                self.rules[(sid, cls)] = f[3]
                self.by_class[cls].add(sid)
            else:
                self.rules.pop((sid, cls), None)
                sets = self.by_class[cls]
                sets.discard(sid)
                if not sets:
                    del self.by_class[cls]


class Facts:
    """The parsed classified stages of one state (the loader keeps the desired state's up to date
    with each delta, so a change is planned without re-reading every entity)."""

    def __init__(self, schema: Schema, items: Iterable[Item] = ()) -> None:
        self.ids = [i for i in (_resolve(schema, s) for s in STAGES) if i is not None]
        self.table_stage: dict[int, int] = {}
        for n, ids in enumerate(self.ids):
            for t in (ids.pod, ids.lpm, *ids.hosts, *ids.set_tables):
                self.table_stage[t] = n
        self.stages = [_Stage() for _ in self.ids]
        for item in items:
            self.add(item)

    def stage_of(self, key: Key) -> int | None:
        return self.table_stage.get(key[1]) if key[0] == "table" else None

    def parse(self, item: Item) -> tuple[int, Fact] | None:
        n = self.stage_of(item.key)
        if n is None:
            return None
        f = _parse(self.ids[n], item)
        return None if f is None else (n, f)

    def add(self, item: Item) -> None:
        parsed = self.parse(item)
        if parsed is not None:
            n, f = parsed
            self.stages[n].remove(item.key)
            self.stages[n].add(item.key, f)

    def remove(self, key: Key) -> None:
        n = self.stage_of(key)
        if n is not None:
            self.stages[n].remove(key)

    def update(self, new: Mapping[Key, Item], old: Mapping[Key, Item]) -> None:
        """After a delta: `new` holds the changed keys' items, `old` the replaced or removed ones."""
        for key in old:
            if key not in new:
                self.remove(key)
        for item in new.values():
            self.add(item)


class _View:
    """A stage in one state: `base` (the desired state's facts), patched with the current state's
    facts of the changed keys when this is the current state."""

    def __init__(self, base: _Stage, patch: _Stage | None = None, changed: Iterable[Key] = ()) -> None:
        self.base = base
        self.patch = patch
        self.changed: set[Key] = set(changed) if patch is not None else set()
        # What the changed keys hold in `base`, to take out of its aggregates.
        self.hosts_changed: set[int] = set()
        self.lpm_changed: set[tuple[int, int]] = set()
        self.rules_changed: set[tuple[int, int]] = set()
        self.pods_out: Counter[int] = Counter()
        self.labels_out: Counter[int] = Counter()
        lengths = set(base.lengths)
        if patch is not None:
            lengths |= set(patch.lengths)
        self.lengths = sorted(lengths, reverse=True)
        if patch is None:
            return
        for f in [base.facts[k] for k in self.changed if k in base.facts] + list(patch.facts.values()):
            if f[0] == "host":
                self.hosts_changed.add(f[1])
            elif f[0] == "lpm":
                self.lpm_changed.add((f[1], f[2]))
            elif f[0] == "rules":
                self.rules_changed.add((f[1], f[2]))
        for k in self.changed:
            was = base.facts.get(k)
            if was is None:
                continue
            if was[0] == "pod":
                self.pods_out[was[1]] += 1
            elif was[0] in ("host", "lpm"):
                self.labels_out[was[-1]] += 1

    def fact(self, key: Key) -> Fact | None:
        if key in self.changed:
            assert self.patch is not None
            return self.patch.facts.get(key)
        return self.base.facts.get(key)

    def host(self, address: int) -> int | None:
        if address in self.hosts_changed:
            assert self.patch is not None
            return self.patch.hosts.get(address)
        return self.base.hosts.get(address)

    def lpm_entry(self, value: int, plen: int) -> int | None:
        k = (value, plen)
        if k in self.lpm_changed:
            assert self.patch is not None
            return self.patch.lpm.get(k)
        return self.base.lpm.get(k)

    def lpm_lookup(self, value: int, plen: int) -> int:
        """The class the LPM gives every address of value/plen not under a longer entry (0 on a miss)."""
        for length in self.lengths:
            if length > plen:
                continue
            shift = WIDTH - length
            cls = self.lpm_entry(value >> shift << shift if length else 0, length)
            if cls is not None:
                return cls
        return 0

    def classify(self, fact: Fact) -> int:
        """The class of the addresses a classifier key covers (a host: the host table first)."""
        if fact[0] == "host":
            cls = self.host(fact[1])
            return cls if cls is not None else self.lpm_lookup(fact[1], WIDTH)
        return self.lpm_lookup(fact[1], fact[2])

    def mask(self, sid: int, cls: int) -> int:
        k = (sid, cls)
        if k in self.rules_changed:
            assert self.patch is not None
            return self.patch.rules.get(k, 0)
        return self.base.rules.get(k, 0)

    def sets_of(self, cls: int) -> set[int]:
        out = {s for s in self.base.by_class.get(cls, ()) if (s, cls) not in self.rules_changed}
        if self.patch is not None:
            out |= self.patch.by_class.get(cls, set())
        return out

    def _keys(self, of: Callable[[_Stage], dict[int, set[Key]]], sid: int) -> set[Key]:
        """The keys `of` lists for `sid`: the base's not changed, and the patch's."""
        out = {k for k in of(self.base).get(sid, ()) if k not in self.changed}
        if self.patch is not None:
            out |= of(self.patch).get(sid, set())
        return out

    def pods(self, sid: int) -> set[Key]:
        """The pod entries naming set `sid`."""
        return self._keys(lambda st: st.set_pods, sid)

    def referenced(self, sid: int) -> bool:
        n = len(self.base.set_pods.get(sid, ())) - self.pods_out.get(sid, 0)
        if self.patch is not None:
            n += len(self.patch.set_pods.get(sid, ()))
        return n > 0

    def set_keys(self, sid: int) -> set[Key]:
        """The rule entries of set `sid`."""
        return self._keys(lambda st: st.set_keys, sid)

    def class_used(self, cls: int) -> bool:
        n = self.base.labels.get(cls, 0) - self.labels_out.get(cls, 0)
        if self.patch is not None:
            n += self.patch.labels.get(cls, 0)
        return n > 0 or bool(self.sets_of(cls))

    def set_used(self, sid: int) -> bool:
        return self.referenced(sid) or bool(self.set_keys(sid))


States = list[dict[Key, Item]]
"""The current state, the states after phases 1, 1b and 2, and the desired state, over the keys
the transition touches (absent: no entity)."""


def transition_states(
    schema: Schema,
    facts: Facts,
    desired: Mapping[Key, Item],
    current: Mapping[Key, Item],
    changed: Iterable[Key],
) -> States | None:
    """The intermediate states of a change, or None when one plan already keeps every packet on
    the old or the new verdict (no class of an address changes, no id is reused).

    `facts` describes `desired`, which holds every desired entity (the keys not in `changed` read
    from it are the same in both states); `current` holds at least the current entities of
    `changed`, the keys whose entities differ (other keys keep their order: a selector's member
    handles follow the order members are written)."""
    changed = list(changed)
    by_stage: dict[int, list[Key]] = defaultdict(list)
    for k in changed:
        n = facts.stage_of(k)
        if n is not None:
            by_stage[n].append(k)
    phases: dict[Key, list[Item | None]] = {}
    for n in sorted(by_stage):
        _Transition(schema, facts, n, by_stage[n], desired, current).run(phases)
    if not phases:
        return None
    for k in changed:
        if k not in phases:
            # Keys of a policy stage no transition placed (the other direction) keep the one-step
            # plan's order across the phases: new entities first, changes with the pods' flip,
            # removals last. Removed in phase 1 instead, a pod entry leaving one stage (ingress no
            # longer isolated) let a packet through before the same change isolated it in the
            # other. Everything else (Services, nodes) changes in phase 1, as one plan would.
            now, want = current.get(k), desired.get(k)
            if facts.stage_of(k) is None or now is None:
                phases[k] = [now, want, want, want, want]
            elif want is None:
                phases[k] = [now, now, now, now, want]
            else:
                phases[k] = [now, now, now, want, want]
    return [{k: v[i] for k, v in phases.items() if v[i] is not None} for i in range(5)]  # type: ignore[misc]


def _agrees(view: _View, cls: int, others: list[int]) -> bool:
    """Whether every set `view` names gives the classes `others` one mask, and the same as `cls`
    where the state has that class (class 0, no class, has no entries: mask 0): then addresses of
    `others` can show `cls`."""
    present = cls == 0 or view.class_used(cls)
    sets = set().union(*(view.sets_of(x) for x in others), view.sets_of(cls))
    for sid in sets:
        if not view.referenced(sid):
            continue
        masks = {view.mask(sid, x) for x in others}
        if present:
            masks.add(view.mask(sid, cls))
        if len(masks) > 1:
            return False
    return True


class _Transition:
    """The transition of one stage (see the module's docstring)."""

    def __init__(
        self,
        schema: Schema,
        facts: Facts,
        n: int,
        keys: list[Key],
        desired: Mapping[Key, Item],
        current: Mapping[Key, Item],
    ) -> None:
        self.schema, self.ids = schema, facts.ids[n]
        self.keys = keys
        self.changed = set(keys)
        self.desired, self.current = desired, current
        base = facts.stages[n]
        patch = _Stage()
        for k in keys:
            it = current.get(k)
            if it is not None and (f := _parse(self.ids, it)) is not None:
                patch.add(k, f)
        self.base = base
        self.c = _View(base, patch, keys)
        self.d = _View(base)

    def now(self, k: Key) -> Item | None:
        return self.current.get(k) if k in self.changed else self.desired.get(k)

    def live(self, sid: int) -> bool:
        return self.c.referenced(sid) and self.d.referenced(sid)

    def run(self, phases: dict[Key, list[Item | None]]) -> None:
        c, d = self.c, self.d
        # Classifier keys that change: the class of their addresses before (o) and after (n).
        pair_of: dict[Key, tuple[int, int]] = {}
        labels_out: Counter[int] = Counter()
        for k in self.keys:
            f = d.fact(k) or c.fact(k)
            assert f is not None
            if f[0] in ("host", "lpm"):
                pair_of[k] = (c.classify(f), d.classify(f))
                if (fd := d.fact(k)) is not None:
                    labels_out[fd[-1]] += 1
        pairs = {p for p in pair_of.values() if p[0] != p[1]}
        same = {p[0] for p in pair_of.values() if p[0] == p[1]}
        reused = self._reused(pairs, same, labels_out)
        if not pairs and not reused:
            return
        label = self._labels(pairs)
        u_of = self._copies(reused)
        self.phases = phases
        # Classifier: every key of either state, labelled for both until phase 3.
        for k, (o, n) in pair_of.items():
            final = self.desired.get(k)
            if o == n:
                mid = final if final is not None else self.now(k)
            else:
                src = final if final is not None else self.now(k)
                assert src is not None
                mid = self._with_param(src, self.ids.class_param, label[(o, n)])
            self._put(k, mid, mid, mid)
        # Rule-set entries and pods that change, by default: old sets keep their entries until
        # phase 3, sets only the new state names take theirs in phase 1, pods flip in phase 2.
        for k in self.keys:
            if k in pair_of:
                continue
            f = d.fact(k) or c.fact(k)
            assert f is not None
            want = self.desired.get(k)
            if f[0] == "pod":
                fc = c.fact(k)
                before = self.now(k)
                if fc is not None and fc[1] in u_of:
                    assert before is not None
                    before = self._with_param(before, self.ids.set_param, u_of[fc[1]])
                self._put(k, before, before, want)
            elif f[1] in reused:
                now = self.now(k)
                self._put(k, now, now, want)
            elif c.referenced(f[1]):
                now = self.now(k)
                self._put(k, now, now, want if d.referenced(f[1]) and want is not None else now)
            else:
                self._put(k, want, want, want)
        # Pods of reused sets that do not change still move to the copy and back.
        for sid, u in u_of.items():
            for k in c.pods(sid) - self.changed:
                it = self.desired[k]
                moved = self._with_param(it, self.ids.set_param, u)
                self._put(k, moved, moved, it)
            for k in c.set_keys(sid):
                entry = self.now(k)
                assert entry is not None
                copy = self._with_set(entry, u)
                self._put(copy.key, copy, copy, copy, final=None)
        # The (set, class) entries of the classes the classifier shows in the middle.
        for (o, n), lab in sorted(label.items()):
            for sid in sorted(c.sets_of(o) | c.sets_of(lab) | d.sets_of(n)):
                in_c, in_d = c.referenced(sid), d.referenced(sid)
                if not in_c and not in_d:
                    continue
                mid = self._rule(sid, lab, c.mask(sid, o) if in_c else d.mask(sid, n))
                after = self._rule(sid, lab, d.mask(sid, n)) if in_d else mid
                self._put_rule(sid, lab, mid, after)
                if sid in u_of:
                    kept = self._rule(u_of[sid], lab, c.mask(sid, o))
                    self._put_rule(u_of[sid], lab, kept, kept, False)
        # A reused id's stale entries go before any pod flips to its new meaning (phase 1b).
        for sid in reused:
            for k, v in list(phases.items()):
                if self._set_of(k, v) == sid and v[3] is None:
                    v[2] = None

    # -- helpers --------------------------------------------------------------------------------

    def _reused(self, pairs: set[tuple[int, int]], same: set[int], labels_out: Counter[int]) -> set[int]:
        """Set ids named by pods in both states whose meaning changes: their port entries or
        any-masks differ, or some address gets another mask from them."""
        c, d = self.c, self.d
        out: set[int] = set()
        for o, n in pairs:
            for sid in c.sets_of(o) | d.sets_of(n):
                if self.live(sid) and c.mask(sid, o) != d.mask(sid, n):
                    out.add(sid)
        for k in self.keys:
            fc, fd = c.fact(k), d.fact(k)
            for f in (fc, fd):
                if f is None or f[0] in ("host", "lpm") or not self.live(f[1]):
                    continue
                if f[0] == "pod":
                    if fc is not None and fd is not None and fc[1] == fd[1] and fc[2] != fd[2]:
                        out.add(f[1])
                elif f[0] == "set":
                    out.add(f[1])
                else:
                    sid, cls = f[1], f[2]
                    kept = cls in same or self.base.labels.get(cls, 0) > labels_out.get(cls, 0)
                    if kept and c.mask(sid, cls) != d.mask(sid, cls):
                        out.add(sid)
        return out

    def _labels(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The class each (old, new) pair shows in the middle: the new class itself when every
        live old set gives it the mask it gives the old one (then the classifier moves in phase
        1), else the old class when every live new set gives it the mask it gives the new one
        (then it moves in phase 3), else a free id."""
        c, d = self.c, self.d
        olds: dict[int, list[int]] = defaultdict(list)
        news: dict[int, list[int]] = defaultdict(list)
        for o, n in sorted(pairs):
            olds[n].append(o)
            news[o].append(n)
        direct = {n: _agrees(c, n, os) for n, os in olds.items()}
        keep = {o: _agrees(d, o, ns) for o, ns in news.items()}
        out: dict[tuple[int, int], int] = {}
        taken: set[int] = set()
        free = (1 << 16) - 1
        for o, n in sorted(pairs):
            if direct[n]:
                out[(o, n)] = n
            elif keep[o]:
                out[(o, n)] = o
            else:
                while free in taken or c.class_used(free) or d.class_used(free):
                    free -= 1
                assert free > 0, "no free class id for a transition"
                out[(o, n)] = free
                taken.add(free)
        return out

    def _copies(self, reused: set[int]) -> dict[int, int]:
        """A free set id for each reused one, to hold its old meaning while its pods move."""
        c, d = self.c, self.d
        out: dict[int, int] = {}
        free = (1 << 16) - 1
        for sid in sorted(reused):
            while free in out.values() or c.set_used(free) or d.set_used(free):
                free -= 1
            assert free > 0, "no free set id for a transition"
            out[sid] = free
        return out

    def _put(
        self, k: Key, s1: Item | None, s1b: Item | None, s2: Item | None, final: Item | bool | None = True
    ) -> None:
        end = self.desired.get(k) if final is True else None if final is False else final
        self.phases[k] = [self.now(k), s1, s1b, s2, end]

    def _put_rule(self, sid: int, cls: int, mid: Item | None, after: Item | None, final: bool = True) -> None:
        key = self._rule_key(sid, cls)
        if final:
            self._put(key, mid, mid, after)
        else:
            self._put(key, mid, mid, after, final=False)

    def _set_of(self, key: Key, values: list[Item | None]) -> int | None:
        for it in values:
            if it is not None:
                f = _parse(self.ids, it)
                return f[1] if f is not None and f[0] in ("rules", "set") else None
        return None

    def _rule(self, sid: int, cls: int, mask: int) -> Item | None:
        if not mask:
            return None
        stage = self.ids.stage
        e = self.schema.entry(
            stage.rules,
            {stage.set_field: Exact(sid), stage.class_field: Exact(cls)},
            stage.set_rules,
            {stage.mask_param: mask},
            origin=ORIGIN,
        )
        entity = p4r.Entity(table_entry=table_entry_message(self.schema, e))
        return Item(entity_key(entity), entity, ORIGIN)

    def _rule_key(self, sid: int, cls: int) -> Key:
        it = self._rule(sid, cls, 1)
        assert it is not None
        return it.key

    @staticmethod
    def _with_param(item: Item, param_id: int, value: int) -> Item:
        entity = p4r.Entity()
        entity.CopyFrom(item.entity)
        for p in entity.table_entry.action.action.params:
            if p.param_id == param_id:
                p.value = encode(value)
        return Item(item.key, entity, item.origin)

    def _with_set(self, item: Item, sid: int) -> Item:
        entity = p4r.Entity()
        entity.CopyFrom(item.entity)
        te = entity.table_entry
        field_id = self.ids.set_tables[te.table_id]
        for fm in te.match:
            if fm.field_id == field_id:
                fm.exact.value = encode(sid)
        return Item(entity_key(entity), entity, ORIGIN + item.origin)
