"""Write throughput of the loader against the embedded target, and the time of a full initial sync.

A synthetic bundle (Service frontends, each with its own group of two backends, members and NAT
entries; 100,000 entities by default) is pushed to a fresh embedded target over gRPC on loopback:
once as one DATAPLANE_ATOMIC transaction (the initial sync the loader does by default), then in
staged CONTINUE_ON_ERROR batches of several sizes. Also timed: a no-op resync (read back + diff).
Client and server share the process, so its CPU time counts both; CPU seconds stay comparable when
other work shares the machine, wall seconds do not. Each figure is the median of `--repeat` runs.

The loader holds the cyclic collector off during a sync (k8s_offload/gcpause.py); the collections
it defers run after it. So each sync is followed by a full `gc.collect()`, timed apart ("then GC"):
an upper bound of what was deferred (it also walks everything else in the process). `--gc-as-is`
runs the syncs without the pause, for comparison.

`--scaling 25000,50000,100000,200000` times, for bundles of those sizes, the plan of an initial sync
and of a no-op resync (no device; the collector held off, as a sync holds it) and the whole initial
sync, and prints CPU seconds per 100k updates: constant when the cost is linear.

Nothing asserts on time. Run: .venv/bin/python -m bench.bench_loader [--entities 100000]
[--batch-sizes 100,1000,10000] [--repeat 3] [--scaling N,...] [--gc-as-is]
The same file runs against an older checkout (PYTHONPATH=that checkout) for a baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import time
from dataclasses import dataclass

from k8s_offload.compiler.bundle.model import Bundle, Exact, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.entities import Item, Key, bundle_items
from k8s_offload.loader.plan import make_plan
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt.client import P4RuntimeClient
from k8s_offload.target.device import state_only_pipeline
from k8s_offload.target.server import EmbeddedTarget

V4 = 0xFFFF << 32


def synthetic(schema: Schema, entities: int) -> Bundle:
    """F frontends x (svc_frontend entry, group) + B backends x member (which carries the DNAT)."""
    frontends = entities // 6
    backends = entities - 2 * frontends
    members: list[ProfileMember] = []
    entries: list[TableEntry] = []
    groups: list[ProfileGroup] = []
    for b in range(1, backends + 1):
        addr = 0x0AF40000 + b
        members.append(schema.member("svc_selector", b, "set_backend4", {"addr": addr, "port": 8080}))
    for f in range(1, frontends + 1):
        vip = 0x0A600000 + f
        pair = ((f - 1) % backends + 1, f % backends + 1)
        groups.append(schema.group("svc_selector", f, tuple(sorted((m, 1) for m in set(pair))), 512))
        key = {"dst_addr": Exact(V4 | vip), "l4_proto": Exact(6), "dport": Exact(80)}
        key |= {"fe_internal": Exact(0), "fe_bucket": Exact(0)}
        entries.append(schema.entry("svc_frontend", key, group_id=f))
    return Bundle(tuple(members), tuple(groups), tuple(entries))


@dataclass
class Timing:
    """One sync: updates written, wall and CPU seconds, and the CPU of the collection after it."""

    updates: int
    wall: float
    cpu: float
    gc_after: float


def _timed_sync(syncer: Syncer, desired: dict[Key, Item]) -> Timing:
    gc.collect()  # start every sync from the same collector state
    wall, cpu = time.monotonic(), time.process_time()
    result = syncer.sync(desired)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert result.ok, result.reason
    after = time.process_time()
    gc.collect()
    return Timing(result.updates, wall, cpu, time.process_time() - after)


def run(schema: Schema, desired: dict[Key, Item], mode: str, batch_size: int) -> tuple[Timing, Timing]:
    """The sync of `desired` to a fresh target, then a no-op resync."""
    with EmbeddedTarget(factory=state_only_pipeline) as sw:
        client = P4RuntimeClient(sw.address, timeout=600)
        client.connect()
        client.set_pipeline(schema.p4info)
        syncer = Syncer(client, schema, batch_size=batch_size, mode=mode)
        first = _timed_sync(syncer, desired)
        again = _timed_sync(syncer, desired)
        assert again.updates == 0
        client.close()
    return first, again


def _median(runs: list[Timing]) -> Timing:
    return Timing(
        runs[0].updates,
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        statistics.median(r.gc_after for r in runs),
    )


def _line(what: str, t: Timing) -> str:
    rate = f", {t.updates / t.cpu:,.0f} updates/CPU-s" if t.updates else ""
    with_gc = f", {t.updates / (t.cpu + t.gc_after):,.0f} with it" if t.updates else ""
    return f"{what}: {t.wall:.2f}s wall, CPU {t.cpu:.2f}s{rate} (then GC {t.gc_after:.2f}s{with_gc})"


def _plan_cpu(schema: Schema, desired: dict[Key, Item], current: dict[Key, Item]) -> float:
    """CPU seconds of one plan, with the collector held off as a sync holds it."""
    gc.collect()
    gc.disable()
    try:
        cpu = time.process_time()
        make_plan(schema, desired, current)
        return time.process_time() - cpu
    finally:
        gc.enable()


def scaling(schema: Schema, sizes: list[int], repeat: int) -> None:
    print("CPU seconds per 100k updates (constant when linear):")
    for n in sizes:
        desired = bundle_items(schema, synthetic(schema, n))
        updates = len(desired)
        initial = statistics.median(_plan_cpu(schema, desired, {}) for _ in range(repeat))
        noop = statistics.median(_plan_cpu(schema, desired, dict(desired)) for _ in range(repeat))
        sync = _median([run(schema, desired, "dataplane", 1000)[0] for _ in range(repeat)])
        print(
            f"  {updates:>7,} updates: initial plan {initial:.3f}s ({initial / updates * 1e5:.3f}),"
            f" no-op plan {noop:.3f}s ({noop / updates * 1e5:.3f}),"
            f" initial sync {sync.cpu:.2f}s ({sync.cpu / updates * 1e5:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scaling", default="", help="bundle sizes to plan, e.g. 25000,50000,100000,200000")
    parser.add_argument("--gc-as-is", action="store_true", help="no collector pause during syncs")
    args = parser.parse_args()
    schema = default_schema()
    if args.gc_as_is:
        from k8s_offload import gcpause

        gcpause.paused = contextlib.nullcontext  # type: ignore[assignment]
    if args.scaling:
        scaling(schema, [int(s) for s in args.scaling.split(",")], args.repeat)
    if not args.entities:
        return
    bundle = synthetic(schema, args.entities)
    n = len(bundle.members) + len(bundle.groups) + len(bundle.entries)
    desired = bundle_items(schema, bundle)
    print(f"bundle: {n} entities ({len(bundle.groups)} frontends, {len(bundle.members)} backends)")
    runs = [run(schema, desired, "dataplane", 1000) for _ in range(args.repeat)]
    print(_line("initial sync, one DATAPLANE_ATOMIC write", _median([r[0] for r in runs])))
    print(_line("no-op resync (read back + diff)", _median([r[1] for r in runs])))
    for size in (int(s) for s in args.batch_sizes.split(",") if s):
        staged = [run(schema, desired, "continue", size)[0] for _ in range(args.repeat)]
        print(_line(f"staged CONTINUE_ON_ERROR, batch {size:>6}", _median(staged)))


if __name__ == "__main__":
    main()
