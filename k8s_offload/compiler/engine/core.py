"""A small incremental-computation engine: tables of units, each unit one function of its key.

In the spirit of salsa and of OVN northd's incremental processing engine (docs/engine.md):

- an `Input` table holds values the driver sets (Kubernetes objects by key, node facts);
- a `Rule` table holds units: `fn(r, key)` computes the unit's value and reads other tables only
  through `r`, which records each (table, key) it read. Its keys are those of another table
  (`over`), or it is computed on demand when some unit first reads it (`over=None`);
- an `Index` regroups a table's values (`fn(key, value)` gives (group, item) pairs), so a unit
  can read "the EndpointSlices of this Service" or "the pods with this label" as one group;
- a `Stateful` table wraps an algorithm that keeps its own incremental state (id allocation,
  peer classes, ORTC) behind `update(changes)`.

Tables are declared in order and a unit reads only tables declared before its own, so one pass
over the tables in declaration order settles everything. A full compile is a run over an empty
state where every key is new; a change re-runs only the units that read something that changed,
and a unit whose new value equals its old one changes nothing downstream (early cut-off).

With `track=False` (a one-shot compile) no read is recorded and no old value compared: the same
units run once each, and the engine cannot take changes afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Unit = tuple["Rule", Hashable]
"""A unit: its table and its key."""

_ABSENT = object()
KEYS = object()
UNITS_KEPT = 10_000
"""The key of an index's set of groups (read by `Reads.keys`)."""


class EngineError(Exception):
    """The engine was used against its rules (a unit read a later table, a one-shot engine was
    changed): a bug in the compiler, never bad input."""


@dataclass
class Stats:
    """What the last run did, per table name: units that ran, and of those, units whose value was
    unchanged (cut off: their readers did not run because of them)."""

    ran: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)
    units: set[tuple[str, Hashable]] = field(default_factory=set)
    """(table, key) of every unit that ran (kept only by tracking engines, and only up to
    `UNITS_KEPT` of them: a full load runs millions, and freeing their list cost the next run
    0.1 s at size M); `complete` says whether all are there."""
    complete: bool = True

    def note(self, table: str, key: Hashable) -> None:
        if len(self.units) < UNITS_KEPT:
            self.units.add((table, key))
        else:
            self.complete = False

    def ran_keys(self, table: str) -> set[Hashable]:
        assert self.complete, "more units ran than Stats keeps"
        return {k for t, k in self.units if t == table}


class Node:
    """A table: values by key, and who read which key."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.level = len(engine.nodes)
        self.readers: dict[Hashable, Unit | set[Unit]] = {}
        """Who read each key: one unit, or a set of them (most keys have one reader, and a set
        per key cost about 200 MB at size M)."""
        self.followers: list[Follower] = []
        """Tables fed by every change of this one (an Index, a Stateful, a Rule over it)."""
        engine.nodes.append(self)
        engine.by_name[name] = self

    def get(self, key: Hashable) -> Any:
        raise NotImplementedError

    def keys(self) -> Iterable[Hashable]:
        raise NotImplementedError

    def items(self) -> Iterable[tuple[Any, Any]]:
        """(key, value) of every present value (what a one-shot run reads a whole table by)."""
        raise NotImplementedError

    def settle(self) -> None:
        """Process what changed upstream since the last run."""

    def release(self) -> None:
        """Drop every value (`Engine.release`)."""
        self.readers.clear()
        self.followers.clear()
        for name in ("values", "groups", "reads", "pending", "last"):
            found = getattr(self, name, None)
            if isinstance(found, dict | list):
                found.clear()
        impl = getattr(self, "impl", None)
        if impl is not None and hasattr(impl, "__dict__"):
            impl.__dict__.clear()

    def _changed(self, key: Hashable, old: Any, new: Any) -> None:
        """Readers of `key` run again, followers hear of it. A one-shot run propagates nothing:
        every table takes all of its sources' values when its turn comes."""
        if not self.engine.track:
            return
        readers = self.readers.get(key)
        if readers:
            _dirty(readers)
        for f in self.followers:
            f.source_changed(self, key, old, new)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _dirty(readers: Unit | set[Unit]) -> None:
    """Mark the units that read something as due to run."""
    if isinstance(readers, set):
        for rule, ukey in readers:
            rule.dirty.add(ukey)
    else:
        readers[0].dirty.add(readers[1])


class Follower(Protocol):
    def source_changed(self, source: Node, key: Hashable, old: Any, new: Any) -> None: ...


class Input(Node):
    def __init__(self, engine: Engine, name: str) -> None:
        super().__init__(engine, name)
        self.values: dict[Any, Any] = {}

    def get(self, key: Hashable) -> Any:
        return self.values.get(key)

    def keys(self) -> Iterable[Any]:
        return self.values.keys()

    def items(self) -> Iterable[tuple[Any, Any]]:
        return self.values.items()

    def fill(self, items: Iterable[tuple[Any, Any]]) -> None:
        """Set many values of an empty one-shot input at once (nothing reads it yet)."""
        assert not self.engine.track and not self.engine.ran and not self.values
        self.values.update(items)

    def set(self, key: Any, value: Any) -> None:
        """Set a value (None: delete it); readers run on the next `Engine.run`."""
        self.engine.check_open()
        old = self.values.get(key)
        if old is value or (old is not None and value is not None and old == value):
            return
        if value is None:
            del self.values[key]
        else:
            self.values[key] = value
        self._changed(key, old, value)


class Reads:
    """What a unit reads through: every call records (table, key) for the unit being computed."""

    __slots__ = ("engine", "reads", "unit")

    def __init__(self, engine: Engine, unit: Unit | None) -> None:
        self.engine = engine
        self.unit = unit
        self.reads: list[Any] = []
        """Flat: table, key, table, key, ... (a tuple per read cost 60 MB at size M)."""

    def __call__(self, node: Node, key: Hashable) -> Any:
        """The value of `node` at `key` (None when absent)."""
        value = node.get(key)
        unit = self.unit
        if unit is not None:
            if node.level >= unit[0].level:
                raise EngineError(f"{unit[0].name} reads {node.name}, which is not declared before it")
            self.reads += (node, key)
            readers = node.readers.get(key)
            if readers is None:
                node.readers[key] = unit
            elif type(readers) is set:
                readers.add(unit)
            elif readers != unit:
                node.readers[key] = {readers, unit}  # type: ignore[arg-type]
        return value

    def keys(self, index: Index) -> Iterable[Any]:
        """The groups an index has; the unit runs again when one appears or vanishes."""
        self(index, KEYS)
        return index.groups.keys()

    def group(self, index: Index, group: Hashable) -> Mapping[Any, Any]:
        """The items of one group of an index ({source key: item}; empty when there are none)."""
        found = self(index, group)
        return found if found is not None else _EMPTY


_EMPTY: Mapping[Any, Any] = {}


class _Untracked(Reads):
    """A one-shot run's reads: nothing is recorded."""

    __slots__ = ()

    def __call__(self, node: Node, key: Hashable) -> Any:
        return node.get(key)

    def group(self, index: Index, group: Hashable) -> Mapping[Any, Any]:
        return index.groups.get(group) or _EMPTY

    def keys(self, index: Index) -> Iterable[Any]:
        return index.groups.keys()


class Rule(Node):
    """Units computed by `fn(r, key)`, one per key of `over` (or on demand when `over` is None).

    An on-demand unit is kept while some unit reads it and recomputed (in its table's turn) when
    what it read changed, even if its readers are about to stop reading it: its function must
    give an empty value for a key that no longer makes sense (a rule of a deleted policy).

    `out`: None, or the name of an engine collection the units' values (tuples) feed:
    "entities" (the bundle), "diagnostics", "errors".
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        fn: Callable[[Reads, Any], Any],
        over: Node | None = None,
        out: str | None = None,
        emit: Callable[[Any], Iterable[Any]] | None = None,
    ) -> None:
        super().__init__(engine, name)
        self.fn = fn
        self.over = over
        self.out = out
        self.emit = emit
        """What of a value feeds `out` (None: the value itself, a tuple)."""
        self.values: dict[Any, Any] = {}
        self.reads: dict[Any, list[Any]] = {}
        self.dirty: set[Any] = set()
        if over is not None:
            over.followers.append(self)
            self.dirty.update(over.keys())  # keys set before this table was declared
            if engine.ran:
                raise EngineError(f"{name}: tables are declared before the first run")

    def keys(self) -> Iterable[Any]:
        return self.values.keys()

    def get(self, key: Hashable) -> Any:
        found = self.values.get(key, _ABSENT)
        if found is not _ABSENT:
            return found
        if self.over is None:  # on demand: computed at its first read
            return self._compute(key)
        return None

    def source_changed(self, source: Node, key: Hashable, old: Any, new: Any) -> None:
        self.dirty.add(key)

    def items(self) -> Iterable[tuple[Any, Any]]:
        return ((k, v) for k, v in self.values.items() if v is not None)

    def settle(self) -> None:
        engine = self.engine
        if not engine.track:  # every key of the source, once (the loop of `_compute`, inlined)
            self.dirty = set()
            if self.over is None:
                return
            fn, values, r, emit = self.fn, self.values, engine.untracked, self.emit
            flat = engine.collection(self.out).flat if self.out is not None else None
            n = 0
            source = self.over
            keys = source.values if isinstance(source, Rule | Input) else source.groups  # type: ignore[attr-defined]
            for key, source_value in keys.items():
                if source_value is not None and key not in values:
                    value = values[key] = fn(r, key)
                    n += 1
                    if flat is not None:
                        flat.extend(value if emit is None else emit(value))
            engine.stats.ran[self.name] += n
            return
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        over = self.over
        for key in dirty:
            if over is not None:
                present = over.get(key) is not None
            else:  # on demand: kept only while some unit reads it
                present = key in self.values and bool(self.readers.get(key))
            if present:
                self._compute(key)
            elif key in self.values:
                self._remove(key)

    def _compute(self, key: Any) -> Any:
        engine = self.engine
        engine.stats.ran[self.name] += 1
        if not engine.track:
            value = self.fn(engine.untracked, key)
            self.values[key] = value
            if self.out is not None:
                engine.collect(self.out, (), value if self.emit is None else self.emit(value))
            return value
        engine.stats.note(self.name, key)
        self._forget_reads(key)
        r = Reads(engine, (self, key))
        value = self.fn(r, key)
        if r.reads:
            self.reads[key] = r.reads
        old = self.values.get(key, _ABSENT)
        self.values[key] = value
        if old is _ABSENT:
            old = None
        elif old is value or old == value:
            engine.stats.cut[self.name] += 1
            return value
        if self.out is not None:
            emit = self.emit
            if emit is None:
                engine.collect(self.out, old, value)
            else:
                engine.collect(self.out, () if old is None else emit(old), emit(value))
        self._changed(key, old, value)
        return value

    def _forget_reads(self, key: Any) -> None:
        """The unit stops reading what it read; an on-demand unit nobody reads is evicted after
        the run."""
        engine = self.engine
        reads = self.reads.pop(key, ())
        for i in range(0, len(reads), 2):
            node, k = reads[i], reads[i + 1]
            readers = node.readers.get(k)
            if readers is None:
                continue
            if type(readers) is set:
                readers.discard((self, key))
                emptied = not readers
            else:
                emptied = readers == (self, key)
            if emptied:
                del node.readers[k]
                if isinstance(node, Rule) and node.over is None:
                    engine.orphans.append((node, k))

    def _remove(self, key: Any) -> None:
        engine = self.engine
        engine.stats.ran[self.name] += 1
        engine.stats.note(self.name, key)
        self._forget_reads(key)
        old = self.values.pop(key)
        if self.out is not None and old is not None:
            engine.collect(self.out, old if self.emit is None else self.emit(old), ())
        self._changed(key, old, None)


class Index(Node):
    """Groups of tables' values: `fn(key, value)` yields the (group, item) pairs of one source
    value; a group reads as {source key: item}. Readers of a group run when its items change.
    Several sources may feed one index when their keys never collide (e.g. two kinds of object)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        source: Node | tuple[Node, ...],
        fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]],
    ) -> None:
        super().__init__(engine, name)
        self.sources = source if isinstance(source, tuple) else (source,)
        self.fn = fn
        self.groups: dict[Any, dict[Any, Any]] = {}
        self.pending: dict[tuple[Node, Any], Any] = {}
        """(source, key) changed since the last run, with the value before the first change."""
        for src in self.sources:
            src.followers.append(self)

    def get(self, key: Hashable) -> dict[Any, Any] | None:
        return self.groups.get(key)

    def keys(self) -> Iterable[Any]:
        return self.groups.keys()

    def items(self) -> Iterable[tuple[Any, Any]]:
        return self.groups.items()

    def source_changed(self, source: Node, key: Hashable, old: Any, new: Any) -> None:
        self.pending.setdefault((source, key), old)

    def settle(self) -> None:
        if not self.engine.track:  # every value of the sources, once
            groups, fn = self.groups, self.fn
            for src in self.sources:
                values = src.values if isinstance(src, Rule | Input) else dict(src.items())
                for key, value in values.items():
                    if value is None:
                        continue
                    for g, item in fn(key, value):
                        members = groups.get(g)
                        if members is None:
                            groups[g] = {key: item}
                        else:
                            members[key] = item
            return
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        groups, fn = self.groups, self.fn
        before: dict[Any, dict[Any, Any]] = {}
        """Per touched group, the items before this run of the source keys that changed (the
        group's other items are untouched); `existed`: the group had items before the run."""
        existed: dict[Any, bool] = {}
        for (source, key), old in pending.items():
            new = source.get(key)
            if old is not None:
                for g, _ in fn(key, old):
                    members = groups.get(g)
                    if members is not None and key in members:
                        if g not in before:
                            before[g], existed[g] = {}, True
                        before[g].setdefault(key, members.pop(key))
            if new is not None:
                for g, item in fn(key, new):
                    members = groups.get(g)
                    if g not in before:
                        before[g], existed[g] = {}, members is not None
                    if members is None:
                        members = groups[g] = {}
                    was = before[g]
                    if key not in was:
                        was[key] = members.get(key, _ABSENT)
                    members[key] = item
        reshaped = False
        deep = any(not isinstance(f, Rule) for f in self.followers)
        for g, was in before.items():
            members = groups[g]
            if not members:
                del groups[g]
            reshaped = reshaped or existed[g] != bool(members)
            if all(members.get(k, _ABSENT) == item for k, item in was.items()):
                continue
            previous: Any = None
            if existed[g]:
                # The group before the run, for followers that take a value back (an index
                # over this one); readers and rules only need to know it changed.
                previous = True
                if deep:
                    previous = {k: v for k, v in members.items() if k not in was}
                    previous.update((k, v) for k, v in was.items() if v is not _ABSENT)
            self._changed(g, previous, members or None)
        if reshaped and self.engine.track:
            readers = self.readers.get(KEYS)
            if readers:
                _dirty(readers)


class StatefulImpl(Protocol):
    """An algorithm with its own incremental form: the values of its source table change
    (key -> (old, new), None for absent) and it returns (key, old, new) of its outputs that
    changed."""

    def update(self, changes: Mapping[Any, tuple[Any, Any]]) -> Iterable[tuple[Hashable, Any, Any]]: ...

    def get(self, key: Hashable) -> Any: ...


class Stateful(Node):
    """A table whose values an algorithm keeps (`StatefulImpl`), fed by the changes of `source`."""

    def __init__(
        self, engine: Engine, name: str, source: Node, impl: StatefulImpl, out: str | None = None
    ) -> None:
        super().__init__(engine, name)
        self.source = source
        self.impl = impl
        self.out = out
        """A collection the impl's `take_output()` (removed, added) feeds after each update."""
        self.last: list[tuple[Any, Any]] = []
        """One-shot: the (key, value) outputs of its one update (what a follower reads)."""
        self.pending: dict[Hashable, Any] = {}
        source.followers.append(self)

    def get(self, key: Hashable) -> Any:
        return self.impl.get(key)

    def keys(self) -> Iterable[Hashable]:
        return ()

    def items(self) -> Iterable[tuple[Any, Any]]:
        return self.last

    def source_changed(self, source: Node, key: Hashable, old: Any, new: Any) -> None:
        self.pending.setdefault(key, old)

    def settle(self) -> None:
        if not self.engine.track:
            changes = {k: (None, v) for k, v in self.source.items()}
            self.engine.stats.ran[self.name] += 1
            self.last = [(k, new) for k, _, new in self.impl.update(changes) if new is not None]
        else:
            if not self.pending:
                return
            pending, self.pending = self.pending, {}
            source = self.source
            changes = {k: (old, source.get(k)) for k, old in pending.items()}
            self.engine.stats.ran[self.name] += 1
            for key, old, new in self.impl.update(changes):
                self._changed(key, old, new)
        if self.out is not None:
            removed, added = self.impl.take_output()  # type: ignore[attr-defined]
            self.engine.collect(self.out, removed, added)


class Engine:
    """Tables in declaration order, the collections units feed, and what the last run did."""

    def __init__(self, track: bool = True) -> None:
        self.track = track
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self.stats = Stats()
        self.ran = False
        self.orphans: list[tuple[Rule, Hashable]] = []
        self.untracked: Reads = _Untracked(self, None)
        self.collections: dict[str, Collection] = {}
        self.after_table: Callable[[Node], None] | None = None
        """Called after each table settles (the pipeline's dump and check hooks)."""

    def collection(self, name: str) -> Collection:
        found = self.collections.get(name)
        if found is None:
            found = self.collections[name] = Collection(self.track)
        return found

    def collect(self, name: str, old: Any, new: Any) -> None:
        self.collection(name).update(old or (), new or ())

    def check_open(self) -> None:
        if self.ran and not self.track:
            raise EngineError("a one-shot engine (track=False) takes no changes after its run")

    def run(self) -> Stats:
        """Settle every table in declaration order; returns what ran."""
        self.stats = Stats()
        self.ran = True
        hook = self.after_table
        for node in self.nodes:
            node.settle()
            if hook is not None:
                hook(node)
        self._evict()
        return self.stats

    def _evict(self) -> None:
        """Drop on-demand units nobody reads any more (their own reads may orphan more)."""
        while self.orphans:
            rule, key = self.orphans.pop()
            if key in rule.values and not rule.readers.get(key):
                rule._remove(key)

    def table(self, name: str) -> Node:
        return self.by_name[name]

    def release(self) -> None:
        """Free every table's values now. Tables, their functions and the engine refer to each
        other, so without this the whole state waits for a full collection of the cyclic GC
        (at size M, 2.6 s at interpreter exit); a released engine takes no more runs."""
        for node in self.nodes:
            node.release()
        self.nodes.clear()
        self.by_name.clear()
        self.collections.clear()
        self.ran, self.track = True, False


class Collection:
    """What the units of some tables feed, as one multiset (an item two units give counts twice):
    the current items, and the net change since `take_delta` last ran."""

    def __init__(self, track: bool) -> None:
        self.track = track
        self.counts: dict[Any, int] = {}
        self.delta: dict[Any, int] = {}
        self.flat: list[Any] = []
        """Without tracking: every item given, in order (nothing is ever taken back)."""

    def update(self, old: Iterable[Any], new: Iterable[Any]) -> None:
        if not self.track:
            self.flat.extend(new)
            return
        counts, delta = self.counts, self.delta
        for item in old:
            n = counts[item] - 1
            if n:
                counts[item] = n
            else:
                del counts[item]
                d = delta.get(item, 0) - 1
                if d:
                    delta[item] = d
                else:
                    del delta[item]
        for item in new:
            n = counts.get(item, 0)
            counts[item] = n + 1
            if not n:
                d = delta.get(item, 0) + 1
                if d:
                    delta[item] = d
                else:
                    del delta[item]

    def items(self) -> Iterator[Any]:
        return iter(self.counts) if self.track else iter(self.flat)

    def pending(self) -> tuple[list[Any], list[Any]]:
        """(appeared, vanished) since `clear` last ran."""
        delta = self.delta
        return [i for i, d in delta.items() if d > 0], [i for i, d in delta.items() if d < 0]

    def clear(self) -> None:
        self.delta = {}
