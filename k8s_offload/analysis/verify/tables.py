"""One table as a function: for every outcome, the BDD of the keys that get it.

Which entry wins follows P4Runtime and bmv2: exact keys are disjoint; with one LPM field (and no
ternary, range or optional one) the longest prefix wins; otherwise the highest priority wins, and
two overlapping entries of equal priority are ambiguous (P4Runtime leaves the winner undefined),
which `encode_table` reports instead of guessing. A miss gets the bundle's default entry, or the
program's default action when the bundle sets none.

An outcome is what the table does to the packet: the action and its arguments; for an action
selector, a member's action, or for a group "one of" its members' actions with their weights
(the member a given packet hashes to is not part of the outcome; it depends on member order).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

from k8s_offload.analysis.verify.bdd import BDDNode, Space, any_of, short
from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Bundle,
    Exact,
    Lpm,
    Optional,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.compiler.bundle.schema import Schema, TableInfo
from k8s_offload.compiler.bundle.values import format_match

Outcome = tuple[object, ...]
"""("action", alias, params) or ("one of", ((alias, params, weight), ...))."""


def action_outcome(schema: Schema, call: ActionCall) -> Outcome:
    return ("action", schema.action(call.name).alias, call.params)


def describe_outcome(outcome: Outcome) -> str:
    if outcome[0] == "action":
        _, name, params = outcome
        assert isinstance(params, tuple)
        return f"{name}({', '.join(f'{k}={v}' for k, v in params)})"
    choices = outcome[1]
    assert isinstance(choices, tuple)
    return (
        "one of {" + ", ".join(f"{a}({', '.join(f'{k}={v}' for k, v in p)})x{w}" for a, p, w in choices) + "}"
    )


class Profiles:
    """Members and groups of a bundle, by (profile, id), turned into outcomes."""

    def __init__(self, schema: Schema, bundle: Bundle) -> None:
        self.schema = schema
        self.members = {(m.profile, m.member_id): m.action for m in bundle.members}
        self.groups = {(g.profile, g.group_id): g.members for g in bundle.groups}

    def outcome(self, info: TableInfo, e: TableEntry) -> Outcome:
        if e.action is not None:
            return action_outcome(self.schema, e.action)
        assert info.profile is not None
        prof = info.profile.name
        if e.member_id is not None:
            return action_outcome(self.schema, self.members[(prof, e.member_id)])
        assert e.group_id is not None
        weights: dict[tuple[str, tuple[tuple[str, int], ...]], int] = defaultdict(int)
        for member_id, weight in self.groups[(prof, e.group_id)]:
            call = self.members[(prof, member_id)]
            weights[(self.schema.action(call.name).alias, call.params)] += weight
        if len(weights) == 1:  # one distinct action: the selector's choice cannot matter
            ((name, params),) = weights
            return ("action", name, params)
        return ("one of", tuple(sorted((a, p, w) for (a, p), w in weights.items())))


class Ambiguous(ValueError):
    """Two overlapping entries of one table with equal priority."""

    def __init__(self, table: str, first: TableEntry, second: TableEntry, key: dict[str, int]) -> None:
        self.table = table
        self.first = first
        self.second = second
        self.key = key
        super().__init__(f"table {table}: entries overlap with equal priority {first.priority}")


@dataclass(slots=True)
class TableFunction:
    """Disjoint outcome regions covering the whole key space of one table."""

    table: str  # alias
    fields: tuple[str, ...]  # short names of the key fields
    outcomes: dict[Outcome, BDDNode]
    default: Outcome
    entries: int
    ambiguities: list[Ambiguous] = field(default_factory=list)
    hit: BDDNode | None = None
    """The keys some entry matches (the table's `apply().hit`)."""


def match_bdd(space: Space, info: TableInfo, e: TableEntry) -> BDDNode:
    u = space.true
    for name, m in e.match:
        width = info.field(name).bitwidth
        if isinstance(m, Exact | Optional):
            v = space.exact(name, m.value)
        elif isinstance(m, Lpm):
            v = space.prefix(name, m.value, m.prefix_len)
        elif isinstance(m, Ternary):
            v = space.masked(name, m.value, m.mask)
        elif isinstance(m, Range):
            v = (
                space.in_range(name, m.low, m.high)
                if (m.low, m.high) != (0, (1 << width) - 1)
                else space.true
            )
        else:  # pragma: no cover - Match is closed
            raise TypeError(m)
        u = v & u
    return u


def _precedence(info: TableInfo) -> str:
    kinds = [f.kind for f in info.fields]
    if all(k == "exact" for k in kinds):
        return "exact"
    if kinds.count("lpm") == 1 and all(k in ("exact", "lpm") for k in kinds):
        return "lpm"
    return "priority"


def _prefix_len(info: TableInfo, e: TableEntry) -> int:
    for _name, m in e.match:
        if isinstance(m, Lpm):
            return m.prefix_len
    return 0  # the LPM field omitted: /0


def program_default(schema: Schema, table: str) -> Outcome:
    """The program's default action for `table`, as the interpreter installs it."""
    action, params = _program_defaults(schema).get(schema.table(table).name, ("", ()))
    return ("action", action, params) if action else ("action", "(miss)", ())


@cache
def _program_defaults(schema: Schema) -> dict[str, tuple[str, tuple[tuple[str, int], ...]]]:
    from k8s_offload.target.install import interpreter_with

    sim = interpreter_with(schema, Bundle())
    by_id = {}
    for a in schema.p4info.actions:
        by_id[a.preamble.id] = schema.action(a.preamble.name)
    out: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
    for info in schema.tables():
        ts = sim.state.tables.get(info.id)
        if ts is None or not ts.default[0]:
            continue
        act = by_id[ts.default[0]]
        out[info.name] = (
            act.alias,
            tuple((p.name, v) for p, v in zip(act.params, ts.default[1], strict=True)),
        )
    return out


def encode_table(
    space: Space,
    schema: Schema,
    profiles: Profiles,
    table: str,
    entries: Iterable[TableEntry],
) -> TableFunction:
    """The table's function; overlapping equal-priority entries are collected in `ambiguities`."""
    info = schema.table(table)
    default: Outcome | None = None
    regular: list[TableEntry] = []
    for e in entries:
        if e.is_default:
            assert e.action is not None
            default = action_outcome(schema, e.action)
        else:
            regular.append(e)
    if default is None:
        default = program_default(schema, table)
    kind = _precedence(info)
    # Groups of entries of equal precedence, strongest first; within a group entries must not overlap.
    groups: dict[int, list[TableEntry]] = defaultdict(list)
    for e in regular:
        rank = 0 if kind == "exact" else _prefix_len(info, e) if kind == "lpm" else e.priority
        groups[rank].append(e)
    by_outcome: dict[Outcome, list[BDDNode]] = defaultdict(list)
    covered = space.false
    fn = TableFunction(info.alias, tuple(short(f.name) for f in info.fields), {}, default, len(regular))
    for rank in sorted(groups, reverse=True):
        matches = [(e, match_bdd(space, info, e)) for e in groups[rank]]
        overlapping = kind == "priority" and _check_overlaps(space, info, matches, fn.ambiguities)
        for e, m in matches:
            by_outcome[profiles.outcome(info, e)].append(m if covered == space.false else m & ~covered)
            if overlapping:  # ambiguous: keep a partition, the first entry winning as in bmv2
                covered = covered | m
        if len(groups) > 1:
            covered = covered | any_of(space, (m for _, m in matches))
    if len(groups) <= 1 and not fn.ambiguities:
        covered = any_of(space, (u for us in by_outcome.values() for u in us))
    fn.outcomes = {o: any_of(space, us) for o, us in by_outcome.items()}
    fn.hit = covered
    miss = ~covered
    if miss != space.false:
        fn.outcomes[default] = fn.outcomes.get(default, space.false) | miss
    return fn


def _check_overlaps(
    space: Space, info: TableInfo, matches: list[tuple[TableEntry, BDDNode]], out: list[Ambiguous]
) -> bool:
    """Entries of one priority, bucketed by their exact fields (different exact values never
    overlap); True when some overlap."""
    exact = [f.name for f in info.fields if f.kind == "exact"]
    buckets: dict[tuple[object, ...], list[tuple[TableEntry, BDDNode]]] = defaultdict(list)
    for e, m in matches:
        key = dict(e.match)
        buckets[tuple(key.get(n) for n in exact)].append((e, m))
    fields = [short(f.name) for f in info.fields]
    found = False
    for bucket in buckets.values():
        seen = space.false
        for i, (e, m) in enumerate(bucket):
            if (m & seen) != space.false:
                for other, om in bucket[:i]:
                    both = m & om
                    if both != space.false:
                        witness = space.pick(both, fields) or {}
                        out.append(Ambiguous(info.alias, other, e, witness))
                        found = True
                        break
            seen = seen | m
    return found


def describe_entry(schema: Schema, e: TableEntry) -> str:
    info = schema.table(e.table)
    keys = " ".join(f"{short(n)}={format_match(n, info.field(n).bitwidth, m)}" for n, m in e.match)
    what = (
        f"{schema.action(e.action.name).alias}({', '.join(f'{k}={v}' for k, v in e.action.params)})"
        if e.action is not None
        else f"member {e.member_id}"
        if e.member_id is not None
        else f"group {e.group_id}"
    )
    prio = f" priority={e.priority}" if e.priority else ""
    return f"{info.alias} {keys or '(default)'}{prio} -> {what}"


def entries_by_table(bundle: Bundle) -> Mapping[str, list[TableEntry]]:
    out: dict[str, list[TableEntry]] = defaultdict(list)
    for e in bundle.entries:
        out[e.table].append(e)
    return out


def concrete_outcome(
    schema: Schema, profiles: Profiles, table: str, entries: Iterable[TableEntry], key: Mapping[str, int]
) -> tuple[Outcome, TableEntry | None]:
    """The winning entry for concrete key values, computed directly (no BDD): for reports, and a
    cross-check of the encoding in tests."""
    info = schema.table(table)
    kind = _precedence(info)
    best: TableEntry | None = None
    best_rank = -1
    default: Outcome | None = None
    for e in entries:
        if e.is_default:
            assert e.action is not None
            default = action_outcome(schema, e.action)
            continue
        if not _hits(info, e, key):
            continue
        rank = 0 if kind == "exact" else _prefix_len(info, e) if kind == "lpm" else e.priority
        if rank > best_rank:
            best, best_rank = e, rank
    if best is not None:
        return profiles.outcome(info, best), best
    return (default if default is not None else program_default(schema, table)), None


def _hits(info: TableInfo, e: TableEntry, key: Mapping[str, int]) -> bool:
    for name, m in e.match:
        v = key[short(name)]
        width = info.field(name).bitwidth
        if isinstance(m, Exact | Optional):
            ok = v == m.value
        elif isinstance(m, Lpm):
            ok = v >> (width - m.prefix_len) == m.value >> (width - m.prefix_len)
        elif isinstance(m, Ternary):
            ok = v & m.mask == m.value & m.mask
        else:
            ok = m.low <= v <= m.high
        if not ok:
            return False
    return True
