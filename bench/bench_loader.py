"""Write throughput of the loader against the embedded target, and the time of a full initial sync.

A synthetic 100,000-entity bundle (Service frontends, each with its own group of two backends,
members and NAT entries) is pushed to a fresh embedded target over gRPC on loopback: once as one
DATAPLANE_ATOMIC transaction (the initial sync the loader does by default), then in staged
CONTINUE_ON_ERROR batches of several sizes. Also timed: a no-op resync (read back + diff).
Prints wall-clock figures and the process's CPU time (client and server share the process, so CPU
seconds stay comparable when other work shares the machine). Nothing asserts on time.
Run: .venv/bin/python -m bench.bench_loader [--entities 100000] [--batch-sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import time

from k8s_offload.compiler.bundle.model import Bundle, Exact, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt.client import P4RuntimeClient
from k8s_offload.target.device import state_only_pipeline
from k8s_offload.target.server import EmbeddedTarget

V4 = 0xFFFF << 32


def synthetic(schema: Schema, entities: int) -> Bundle:
    """F frontends x (svc_frontend, svc_backend, rev_nat, group) + B backends x (member, backend_nat)."""
    frontends = entities // 6
    backends = (entities - 4 * frontends) // 2
    members: list[ProfileMember] = []
    entries: list[TableEntry] = []
    groups: list[ProfileGroup] = []
    for b in range(1, backends + 1):
        members.append(schema.member("svc_selector", b, "set_backend", {"be_id": b}))
        addr = 0x0AF40000 + b
        entries.append(
            schema.entry("backend_nat", {"be_id": Exact(b)}, "dnat4", {"addr": addr, "port": 8080})
        )
    for f in range(1, frontends + 1):
        vip = 0x0A600000 + f
        pair = ((f - 1) % backends + 1, f % backends + 1)
        groups.append(schema.group("svc_selector", f, tuple(sorted((m, 1) for m in set(pair))), 512))
        key = {"dst_addr": Exact(V4 | vip), "l4_proto": Exact(6), "dport": Exact(80)}
        entries.append(schema.entry("svc_frontend", key, "set_frontend", {"fe_id": f}))
        entries.append(schema.entry("svc_backend", {"fe_id": Exact(f), "fe_bucket": Exact(0)}, group_id=f))
        entries.append(schema.entry("rev_nat", {"ct_nat_id": Exact(f)}, "snat4", {"vip": vip, "port": 80}))
    return Bundle(tuple(members), tuple(groups), tuple(entries))


def run(schema: Schema, bundle: Bundle, mode: str, batch_size: int) -> tuple[float, int, float, float, float]:
    """(sync seconds, updates, no-op resync seconds, sync CPU seconds, resync CPU seconds)."""
    desired = bundle_items(schema, bundle)
    with EmbeddedTarget(factory=state_only_pipeline) as sw:
        client = P4RuntimeClient(sw.address, timeout=600)
        client.connect()
        client.set_pipeline(schema.p4info)
        syncer = Syncer(client, schema, batch_size=batch_size, mode=mode)
        cpu = time.process_time()
        result = syncer.sync(desired)
        cpu = time.process_time() - cpu
        assert result.ok, result.reason
        start, noop_cpu = time.monotonic(), time.process_time()
        again = syncer.sync(desired)
        noop, noop_cpu = time.monotonic() - start, time.process_time() - noop_cpu
        assert again.updates == 0
        client.close()
    return result.duration, result.updates, noop, cpu, noop_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="100,1000,10000")
    args = parser.parse_args()
    schema = default_schema()
    bundle = synthetic(schema, args.entities)
    n = len(bundle.members) + len(bundle.groups) + len(bundle.entries)
    print(f"bundle: {n} entities ({len(bundle.groups)} frontends, {len(bundle.members)} backends)")
    secs, updates, noop, cpu, noop_cpu = run(schema, bundle, "dataplane", 1000)
    print(
        f"initial sync, one DATAPLANE_ATOMIC write: {secs:.2f}s, {updates / secs:,.0f} updates/s"
        f" (CPU {cpu:.2f}s, {updates / cpu:,.0f} updates/CPU-s)"
    )
    print(f"no-op resync (read back + diff): {noop:.2f}s (CPU {noop_cpu:.2f}s)")
    for size in (int(s) for s in args.batch_sizes.split(",")):
        secs, updates, _, cpu, _ = run(schema, bundle, "continue", size)
        print(
            f"staged CONTINUE_ON_ERROR, batch {size:>6}: {secs:.2f}s, {updates / secs:,.0f} updates/s"
            f" (CPU {cpu:.2f}s, {updates / cpu:,.0f} updates/CPU-s)"
        )


if __name__ == "__main__":
    main()
