"""Compiler benchmark at cluster scale (issue 6): synthetic clusters (bench/synth.py) compiled with
the optimization passes off and on, per size.

Per size and mode it prints the full compile time (load + IR + lowering + passes + checks, in a
fresh process so peak memory is that compile's), peak RSS, entries per table, TCAM entries
(entries of tables with an LPM, ternary or range key) and, from the passes-on run, policy entries
against the naive peers x ports x pods cross-product and selector member slots against one group
per Service port. Figures only; nothing asserts on time.

Run: python -m bench.run [--sizes S,M,L] [--profile bmv2|dpdk] [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.synth import SIZES, cluster, write


def _naive_policy(result: Any) -> int:
    """One entry per (local pod address, rule, peer network, port range): a flat ACL."""
    from k8s_offload.compiler.passes.resolve_policy import resolve_unmerged

    total = 0
    for iso in resolve_unmerged(result.ir).isolations:
        for rule in iso.rule_set.rules:
            peers = len(rule.peers.networks) if rule.peers is not None else 1
            ports = len(rule.ports) if rule.ports is not None else 1
            total += len(iso.addresses) * peers * ports
    return total


def bundle_counts(result: Any) -> dict[str, Any]:
    """Entries per table (defaults left out), members, groups, TCAM entries (tables with an LPM,
    ternary, range or optional key), policy TCAM and policy entries of a `CompileResult`."""
    schema = result.schema
    per_table: Counter[str] = Counter()
    tcam: Counter[str] = Counter()
    for e in result.lowered.bundle.entries:
        if e.is_default:
            continue
        alias = schema.table(e.table).alias
        per_table[alias] += 1
        if any(f.kind in ("lpm", "ternary", "range", "optional") for f in schema.table(e.table).fields):
            tcam[alias] += 1
    bundle = result.lowered.bundle
    return {
        "entries": dict(sorted(per_table.items())),
        "members": len(bundle.members),
        "groups": len(bundle.groups),
        "tcam": sum(tcam.values()),
        "policy_tcam": sum(n for t, n in tcam.items() if "peer_class" in t or "port_rules" in t),
        "policy_entries": sum(n for t, n in per_table.items() if t.startswith(("eg_", "in_"))),
    }


def measure(files: list[str], node: str, no_opt: bool, profile: str, extras: bool) -> dict[str, Any]:
    """One compile in this process; called in a child so ru_maxrss is this compile's peak."""
    from k8s_offload.compiler.bundle.schema import BundleError
    from k8s_offload.compiler.driver import compile_sources
    from k8s_offload.compiler.passes.pipeline import PassConfig

    config = PassConfig.parse(None, no_opt, profile)
    start = time.perf_counter()
    cpu = time.process_time()
    try:
        result = compile_sources(files, node, passes=config)
    except BundleError as err:
        return {"error": str(err), "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_mb": round(peak_mb),
        **bundle_counts(result),
    }
    bundle = result.lowered.bundle
    if extras:
        group_size = {g.group_id: len(g.members) for g in bundle.groups}
        out["member_slots"] = sum(group_size.values())
        out["member_slots_one_group_per_port"] = sum(
            group_size[e.group_id] for e in bundle.entries if e.group_id is not None
        )
        out["naive_policy_entries"] = _naive_policy(result)
        out.update(_maglev_cost(result, profile))
    return out


def _maglev_cost(result: Any, profile: str) -> dict[str, Any]:
    """Table space of `--lb maglev`: members and groups of the bundle lowered with Maglev tables
    (compiler/lower/ecmp.py; only Services have members and groups)."""
    from k8s_offload.compiler.bundle.schema import BundleError
    from k8s_offload.compiler.lower.bundle import lower
    from k8s_offload.compiler.passes.pipeline import PassConfig

    try:
        bundle = lower(result.ir, result.schema, PassConfig(profile=profile, lb="maglev")).bundle
    except BundleError as err:
        return {"maglev_error": str(err)}
    return {
        "maglev_members": len(bundle.members),
        "maglev_member_slots": sum(len(g.members) for g in bundle.groups),
        "maglev_groups": len(bundle.groups),
    }


def _child(args: argparse.Namespace) -> None:
    files = sorted(str(p) for p in Path(args.dir).glob("*.json"))
    print(
        json.dumps(measure(files, str(Path(args.dir) / "node.yaml"), args.no_opt, args.profile, args.extras))
    )


def cluster_dir(size: str, seed: int, workdir: Path) -> Path:
    """The directory holding the manifests of (size, seed), generated on first use."""
    d = workdir / f"{size}-{seed}"
    if not (d / "node.yaml").exists():
        write(cluster(SIZES[size], seed), d)
    return d


def run_size(size: str, seed: int, profile: str, workdir: Path) -> dict[str, Any]:
    d = cluster_dir(size, seed, workdir)
    row: dict[str, Any] = {"size": size, "profile": profile}
    for mode, no_opt in (("off", True), ("on", False)):
        cmd = [sys.executable, "-m", "bench.run", "--child", str(d), "--profile", profile]
        cmd += ["--no-opt"] if no_opt else ["--extras"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    on, off = row["on"], row["off"]
    if "error" not in on and "error" not in off:
        row["policy_tcam_ratio"] = round(on["policy_tcam"] / max(1, off["policy_tcam"]), 3)
        row["tcam_ratio"] = round(on["tcam"] / max(1, off["tcam"]), 3)
    if "error" not in on:
        row["naive_over_on"] = round(on["naive_policy_entries"] / max(1, on["policy_entries"]), 1)
        row["member_slot_saving"] = round(
            1 - on["member_slots"] / max(1, on["member_slots_one_group_per_port"]), 3
        )
    return row


def _print(row: dict[str, Any]) -> None:
    print(f"== size {row['size']} (profile {row['profile']})")
    for mode in ("off", "on"):
        r = row[mode]
        if "error" in r:
            print(f"  passes {mode}: does not compile after {r['seconds']:.1f} s: {r['error']}")
            continue
        print(
            f"  passes {mode}: compile {r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU), peak "
            f"{r['peak_mb']} MB, TCAM entries {r['tcam']} (policy {r['policy_tcam']}), policy entries "
            f"{r['policy_entries']}, members {r['members']}, groups {r['groups']}"
        )
        print("    " + ", ".join(f"{t} {n}" for t, n in r["entries"].items()))
    if "policy_tcam_ratio" in row:
        print(
            f"  policy TCAM on/off: {row['policy_tcam_ratio']:.1%}; all TCAM on/off: {row['tcam_ratio']:.1%}"
        )
    if "naive_over_on" in row:
        on = row["on"]
        print(
            f"  policy entries {on['policy_entries']} vs naive peers x ports x pods "
            f"{on['naive_policy_entries']} ({row['naive_over_on']}x fewer)"
        )
        print(
            f"  selector member slots {on['member_slots']} vs one group per Service port "
            f"{on['member_slots_one_group_per_port']} ({row['member_slot_saving']:.1%} fewer)"
        )
        if "maglev_error" in on:
            print(f"  with --lb maglev: does not fit: {on['maglev_error']}")
        elif "maglev_members" in on:
            print(
                f"  with --lb maglev: members {on['maglev_members']} (vs {on['members']}), member slots "
                f"{on['maglev_member_slots']} (vs {on['member_slots']}), groups {on['maglev_groups']}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S", help="comma-separated, of " + ",".join(SIZES))
    parser.add_argument("--profile", default="bmv2", choices=("bmv2", "dpdk"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--workdir", type=Path, help="where generated manifests are kept (default: a temp dir)"
    )
    parser.add_argument(
        "--live", action="store_true", help="also event-to-device latency per size (bench_incremental)"
    )
    parser.add_argument("--child", metavar="DIR", dest="dir", help=argparse.SUPPRESS)
    parser.add_argument("--no-opt", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dir:
        _child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for size in args.sizes.split(","):
            row = run_size(size.strip(), args.seed, args.profile, workdir)
            rows.append(row)
            if not args.json:
                _print(row)
                sys.stdout.flush()
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.live:
        from bench import bench_incremental

        for size in args.sizes.split(","):
            bench_incremental.main(["--size", size.strip(), "--samples", "30", "--seed", str(args.seed)])


if __name__ == "__main__":
    main()
