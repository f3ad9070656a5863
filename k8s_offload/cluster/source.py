"""The live cluster as the loader's source: watch events -> the compiler's engine -> entity deltas.

`ClusterSource.poll()` drains whatever the watches delivered, applies it as one batch to a tracking
`Compilation` (the compiler's engine, docs/engine.md), and returns the changed desired items (new
and old values of the changed keys). It is `ready` once every kind has been listed and the lists
compiled.

Pods are watched cluster-wide: policy peers and Service backends name pods on every node. Which
pods are node-local is decided by the node facts (`spec.nodeName == nodeName` and a device port
from the CNI plugin); a remote pod is kept only as the fields the compiler reads (labels, IPs,
named ports, phase), and its events reach nothing unless a policy peer selects it or a backend
has its IP (the units that read it, recorded by the compiler's engine).
"""

from __future__ import annotations

import gc
import logging
import queue
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from k8s_offload import gcpause
from k8s_offload.cluster.watch import ClusterWatch, Event, Listed, WatchConfig
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.compilation import Change, Compilation
from k8s_offload.compiler.errors import Location, ManifestError
from k8s_offload.compiler.frontend.loader import KubeObject, parse_object
from k8s_offload.compiler.frontend.model import ObjectKey
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.frontend.sources import RawObject
from k8s_offload.compiler.frontend.tiers import TIER_KINDS
from k8s_offload.compiler.ir.model import Diagnostic
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.loader.delta import apply_delta
from k8s_offload.loader.entities import Item, Key, bundle_items, with_initial_defaults
from k8s_offload.loader.transition import Facts

log = logging.getLogger(__name__)


CLUSTER_SCOPED = frozenset(("Namespace", "Node", *TIER_KINDS))


def object_key(kind: str, body: Mapping[str, Any]) -> ObjectKey:
    meta = body.get("metadata") or {}
    namespace = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "default")
    return ObjectKey(kind, namespace, str(meta.get("name", "")))


def parse_raw(kind: str, body: Mapping[str, Any]) -> tuple[ObjectKey, KubeObject | None, list[ManifestError]]:
    """The typed object (None when the front end rejects it) for one API object."""
    key = object_key(kind, body)
    errors: list[ManifestError] = []
    obj = parse_object(RawObject(Location(f"api:{kind}"), body), errors, Counter())
    return key, obj, errors


def node_facts_for(facts: NodeFacts | None, node_name: str | None) -> NodeFacts | None:
    """`--node-name` overrides the facts' nodeName; without facts, an empty node of that name."""
    if node_name is None:
        return facts
    return replace(facts or DEFAULT_NODE_FACTS, node_name=node_name)


class _Overlay(Mapping[Key, Item]):
    """The desired state before a delta, without copying it: `current` with `old` put back."""

    def __init__(self, current: Mapping[Key, Item], new: Mapping[Key, Item], old: Mapping[Key, Item]):
        self.current, self.new, self.old = current, new, old

    def __getitem__(self, key: Key) -> Item:
        if key in self.old:
            return self.old[key]
        if key in self.new:
            raise KeyError(key)
        return self.current[key]

    def __iter__(self) -> Iterator[Key]:
        for k in self.current:
            if k not in self.new or k in self.old:
                yield k
        for k in self.old:
            if k not in self.current:
                yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ClusterSource:
    def __init__(
        self,
        schema: Schema,
        api_client: Any,
        facts: NodeFacts | None,
        config: WatchConfig | None = None,
        passes: PassConfig | None = None,
    ) -> None:
        """`passes`: the target profile, load-balancing mode and passes to lower for, as for a
        full compile (None: every pass, bmv2, hash)."""
        self.schema = schema
        self.passes = passes
        self.compiler = Compilation(schema, facts, passes)
        self.watch = ClusterWatch(api_client, config)
        self.kinds = set(self.watch.kinds)
        self.listed: set[str] = set()
        self.initial = with_initial_defaults(schema, {})
        self.desired: dict[Key, Item] = dict(self.initial)
        self.facts = Facts(schema)
        """The parsed policy stages of `desired`, kept with it (a delta's plan reads them)."""
        self.ready = False
        self.error: str | None = None
        self.events = 0
        self.need_full_sync = False  # set when only a full sync can bring the device in line
        self.batches = 0  # change batches compiled
        self.last_changed = 0  # entities the last batch changed
        self.known: dict[str, set[ObjectKey]] = {}
        self._pending: list[Change] = []
        # The last compiled batch: when its first message was dequeued (perf_counter) and seconds
        # per phase: "decode" (messages -> Changes), "compile" (Compilation.apply),
        # "items" (entities -> desired items).
        self.received_at = 0.0
        self.timings: dict[str, float] = {}

    def start(self) -> ClusterSource:
        self.watch.start()
        return self

    def close(self) -> None:
        self.watch.close()

    def set_facts(self, facts: NodeFacts | None) -> None:
        """New node facts (the CNI plugin attached a pod): recompile everything against them."""
        self.compiler = self.compiler.successor(facts)

    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.compiler.diagnostics()

    def _drain(self, timeout: float) -> list[Listed | Event]:
        out: list[Listed | Event] = []
        try:
            out.append(self.watch.queue.get(timeout=timeout))
            while True:
                out.append(self.watch.queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def _to_changes(self, msgs: list[Listed | Event]) -> list[Change]:
        changes: list[Change] = []
        for msg in msgs:
            known = self.known.setdefault(msg.kind, set())
            if isinstance(msg, Listed):  # a relist replaces the kind: what it lacks was deleted
                seen: set[ObjectKey] = set()
                for body in msg.items:
                    key, obj, errors = parse_raw(msg.kind, body)
                    seen.add(key)
                    changes.append(self._checked(key, obj, errors))
                changes += [Change(k, None) for k in sorted(known - seen, key=str)]
                self.known[msg.kind] = seen
                self.listed.add(msg.kind)
                continue
            self.events += 1
            key, obj, errors = parse_raw(msg.kind, msg.obj)
            if msg.type == "DELETED":
                changes.append(Change(key, None))
                known.discard(key)
            else:
                changes.append(self._checked(key, obj, errors))
                known.add(key)
        return changes

    def _safe_changes(self, msg: Listed | Event) -> list[Change]:
        try:
            return self._to_changes([msg])
        except Exception:
            log.exception("skipping a %s message", msg.kind)
            return []

    def _checked(self, key: ObjectKey, obj: KubeObject | None, errors: list[ManifestError]) -> Change:
        if obj is None:
            for err in errors:
                log.warning("ignoring %s: %s", key, err)
        return Change(key, obj)

    def poll(self, timeout: float = 0.0) -> tuple[dict[Key, Item], dict[Key, Item]] | None:
        """Apply what arrived; (new, old) items of the changed keys, or None when nothing changed.

        Until every kind is listed, changes are only stored: the first compile sees whole lists.
        """
        msgs = self._drain(timeout)
        t_decode = time.perf_counter()
        if msgs and not self._pending:
            self.received_at = t_decode
        try:
            self._pending += self._to_changes(msgs)
        except Exception:  # never lose a batch to one odd object; a relist repairs what was skipped
            log.exception("cannot read watch messages")
            self._pending += [c for m in msgs for c in self._safe_changes(m)]
        if not self.listed >= self.kinds or (not self._pending and self.ready):
            return None
        changes, self._pending = self._pending, []
        start = time.perf_counter()
        decoded = start - t_decode
        try:
            if self.ready:
                delta = self.compiler.apply(changes)
            else:  # the first lists: millions of long-lived, acyclic objects (k8s_offload/gcpause.py)
                with gcpause.paused():
                    delta = self.compiler.apply(changes)
        except Exception as err:  # the last good desired state stays; the next change retries
            self.error = str(err)
            log.error("compile failed, keeping the last good state: %s", err)
            return None
        self.error = None
        compiled = time.perf_counter()
        try:
            new, old = apply_delta(self.schema, self.desired, delta.added, delta.removed)
            self.facts.update(new, old)
        except Exception:  # the desired items no longer follow the compiler: rebuild, resync
            log.exception("cannot apply a delta; rebuilding the desired state")
            self.desired = dict(self.initial)
            self.desired.update(bundle_items(self.schema, self.compiler.bundle()))
            self.facts = Facts(self.schema, self.desired.values())
            self.need_full_sync = True
            new, old = {}, {}
        self.timings = {
            "decode": decoded,
            "compile": compiled - start,
            "items": time.perf_counter() - compiled,
        }
        self.batches += 1
        self.last_changed = len(set(new) | set(old))
        for key in old:  # a default the bundle stops setting goes back to the program's initial one
            if key not in self.desired and key in self.initial:
                self.desired[key] = new[key] = self.initial[key]
        if not self.ready:
            n = sum(1 for _ in self.compiler.objects())
            log.info("first full list compiled: %d objects, %d entities", n, len(self.desired))
            # The store, IR, indexes and entities just built live as long as the loader. Left to
            # the collector, every full collection rescans them all: 1-2 s at size S-M, paid by
            # whichever event's allocations trigger it (a 2.1 s label change among 45 ms ones).
            # Frozen, they are never scanned again; they hold no cycles, so reference counting
            # still frees what later changes replace.
            gc.freeze()
        self.ready = True
        ms = (time.perf_counter() - start) * 1e3
        log.debug("%d changes -> %d entity changes in %.1f ms", len(changes), len(new) + len(old), ms)
        return new, old

    def before(self, new: Mapping[Key, Item], old: Mapping[Key, Item]) -> Mapping[Key, Item]:
        """The desired state before the last delta, for compensation."""
        return _Overlay(self.desired, new, old)
