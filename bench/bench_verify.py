"""Time of `k8s_offload.analysis.verify` on large bundles.

Two inputs:
- `--size XS|S|M|L`: a synthetic cluster from bench/synth.py, compiled (compile time reported
  apart), then verified against itself (equivalence, every stage) and against its policy IR;
- `--entries N` (default 100,000): a bundle made directly, without the compiler, with the shapes
  the compiler emits: pods (port_class, neigh_steer, fwd /32s, policy pods), Services (frontends,
  groups of members that carry the DNAT), policy peer classes (LPM) and port ranges per rule set.
Each is verified twice against a copy with its entries in reverse order (a proof that has to
rebuild every table), and once against a copy with one entry dropped (time to a counterexample).
Prints wall-clock and CPU seconds; other work on the machine shows up in the former only.
Nothing asserts on time. Run: .venv/bin/python -m bench.bench_verify [--entries N] [--size S]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from k8s_offload.analysis.verify import Verifier
from k8s_offload.compiler.bundle.model import (
    Bundle,
    Exact,
    Lpm,
    ProfileGroup,
    ProfileMember,
    Range,
    TableEntry,
)
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.ir.rules import PolicyIR

V4 = 0xFFFF << 32


def _ip(n: int) -> int:
    return V4 | n


def large_bundle(schema: Schema, entries: int) -> Bundle:
    """About `entries` table entries plus members; proportions follow a compiled cluster."""
    pods = max(entries // 20, 1)
    services = max(entries // 20, 1)
    backends = max(entries // 5, 2)
    peers = max(entries // 5, 1)
    sets = max(pods // 50, 1)
    out: list[TableEntry] = []
    members: list[ProfileMember] = []
    groups: list[ProfileGroup] = []
    for p in range(pods):
        addr = _ip(0x0A000000 + p)
        port = 10 + p % 400
        out.append(
            schema.entry("neigh_steer", {"neigh_target": Exact(addr)}, "steer_to_port", {"port": port})
        )
        out.append(
            schema.entry(
                "fwd",
                {"dst_addr": Lpm(addr, 128)},
                "to_pod",
                {"port": port, "pod_mac": 0x020000000000 + p, "gateway_mac": 0x020000000001},
            )
        )
        params = {"set_id": 1 + p % sets, "any_peer_rules": 0, "any_port_rules": 0}
        out.append(schema.entry("eg_pod", {"src_addr": Exact(addr)}, "eg_isolate", params))
        out.append(schema.entry("in_pod", {"dst_addr": Exact(addr)}, "in_isolate", params))
    for port in range(10, 10 + min(pods, 400)):
        out.append(schema.entry("port_class", {"ingress_port": Exact(port)}, "set_port_kind", {"kind": 1}))
    for b in range(1, backends + 1):
        params = {"addr": 0x0A000000 + b % pods, "port": 8080}
        members.append(schema.member("svc_selector", b, "set_backend4", params))
    per_group = max(backends // services, 1)
    for s in range(1, services + 1):
        vip = _ip(0x0A600000 + s)
        first = (s - 1) * per_group % backends
        ids = tuple(sorted({1 + (first + k) % backends for k in range(per_group)}))
        groups.append(schema.group("svc_selector", s, tuple((m, 1) for m in ids), 512))
        key = {"dst_addr": Exact(vip), "l4_proto": Exact(6), "dport": Exact(80)}
        key |= {"fe_internal": Exact(0), "fe_bucket": Exact(0)}
        out.append(schema.entry("svc_frontend", key, group_id=s))
    for prefix in ("eg", "in"):
        field = "dst_addr" if prefix == "eg" else "src_addr"
        for c in range(peers):
            # a mix of /32 pods and /24 blocks
            if c % 4:
                net, plen = _ip(0x0B000000 + c), 128
            else:
                net, plen = _ip(0x0C000000 + (c << 8)), 120
            out.append(
                schema.entry(
                    f"{prefix}_peer_class",
                    {field: Lpm(net, plen)},
                    f"{prefix}_set_peer_class",
                    {"peer_class": 1 + c % 4000},
                )
            )
        for s in range(1, sets + 1):
            for c in range(1 + s % 7, 4001, 97):
                out.append(
                    schema.entry(
                        f"{prefix}_peer_rules",
                        {f"{prefix}_set": Exact(s), f"{prefix}_peer_class": Exact(c)},
                        f"{prefix}_set_peer_rules",
                        {"rules": 1 << (c % 3)},
                    )
                )
            for k in range(3):
                low = 1000 * (k + 1) + s
                out.append(
                    schema.entry(
                        f"{prefix}_port_rules",
                        {f"{prefix}_set": Exact(s), "l4_proto": Exact(6), "dport": Range(low, low + 99)},
                        f"{prefix}_set_port_rules",
                        {"rules": 1 << k},
                        priority=1,
                    )
                )
    return Bundle(members=tuple(members), groups=tuple(groups), entries=tuple(out))


def _timed(label: str, fn: object) -> object:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()  # type: ignore[operator]
    print(f"  {label:<36} {time.perf_counter() - wall:8.2f} s wall {time.process_time() - cpu:8.2f} s CPU")
    return result


def run(schema: Schema, bundle: Bundle, policy: PolicyIR | None) -> None:
    counts = (
        f"{len(bundle.entries)} table entries, {len(bundle.members)} members, {len(bundle.groups)} groups"
    )
    print(f"bundle: {counts}")
    verifier = Verifier(schema, replay=False)
    _timed("warm-up (program defaults)", lambda: verifier.compare(Bundle(), Bundle()))
    reverse = dataclasses.replace(bundle, entries=tuple(reversed(bundle.entries)))
    report = _timed("equivalence, every stage", lambda: verifier.compare(bundle, reverse))
    assert report.ok  # type: ignore[attr-defined]
    victim = next(e for e in bundle.entries if e.table.endswith("fwd"))
    broken = dataclasses.replace(bundle, entries=tuple(e for e in bundle.entries if e is not victim))
    report = _timed("equivalence with one entry dropped", lambda: verifier.compare(bundle, broken))
    assert not report.ok  # type: ignore[attr-defined]
    if policy is not None:
        sem = _timed("policy stages vs policy IR", lambda: verifier.semantics(bundle, policy))
        assert sem.ok  # type: ignore[attr-defined]
    print(f"  BDD nodes in the manager: {verifier.space.count_nodes()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="size of the directly made bundle")
    parser.add_argument("--size", help="also a bench/synth.py cluster of this size (XS, S, M, L)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    schema = default_schema()
    if args.entries:
        print(f"direct bundle, --entries {args.entries}")
        run(schema, large_bundle(schema, args.entries), None)
    if args.size:
        from bench.synth import SIZES, cluster, write
        from k8s_offload.compiler.driver import compile_sources

        print(f"bench/synth.py cluster {args.size}, seed {args.seed}")
        with tempfile.TemporaryDirectory() as d:
            paths = write(cluster(SIZES[args.size], args.seed), Path(d))
            result = _timed("compile", lambda: compile_sources(paths, Path(d) / "node.yaml"))
        run(schema, result.lowered.bundle, result.lowered.policy)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
