"""Policy tiers at cluster scale (issue 20): a bench/synth.py size with Admin and Baseline
ClusterNetworkPolicies (MT: 50 + 20 over M) against its base size without them.

Both clusters are the same objects but the tier policies (and the Node objects their `nodes` peers
select), so the difference per table is what the tiers cost: the entries of the new stages, their
count per tier rule and per tier rule on the device's node, against the naive cross-product (per
rule: local subject pods x peer addresses x port items). Each compile runs in a
fresh process (`bench.run --child`, passes on). Figures only; nothing asserts on them.

Run: python -m bench.bench_tiers [--size MT] [--seed N] [--profile bmv2|dpdk] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.run import cluster_dir
from bench.synth import SIZES, cluster


def _matches(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    """matchLabels only: the generator writes no expressions in tier policies."""
    return all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items())


def rule_stats(size: str, seed: int) -> dict[str, Any]:
    """Tier policies and rules of the size, the rules of policies selecting a pod of the device's
    node, and the naive cross-product over those: per rule, local subject pods x peer addresses
    (pods a selector picks, node addresses, CIDRs) x port items (1 without `protocols`)."""
    m = cluster(SIZES[size], seed)
    local = {(p["namespace"], p["name"]) for p in m["node"][0]["pods"]}  # the node facts' pods
    ns_labels = {
        n["metadata"]["name"]: {
            **n["metadata"]["labels"],
            "kubernetes.io/metadata.name": n["metadata"]["name"],
        }
        for n in m["namespaces"]
    }
    pods_by_ns: Counter[str] = Counter()
    pods_by_app: Counter[tuple[str, str]] = Counter()
    for p in m["pods"]:
        pods_by_ns[p["metadata"]["namespace"]] += 1
        pods_by_app[(p["metadata"]["namespace"], p["metadata"]["labels"]["app"])] += 1
    local_pods = [p for p in m["pods"] if (p["metadata"]["namespace"], p["metadata"]["name"]) in local]

    def addresses(peer: dict[str, Any]) -> int:
        if "namespaces" in peer:
            return sum(n for ns, n in pods_by_ns.items() if _matches(peer["namespaces"], ns_labels[ns]))
        if "pods" in peer:
            sel = peer["pods"]
            return sum(
                n
                for (ns, app), n in pods_by_app.items()
                if _matches(sel["namespaceSelector"], ns_labels[ns])
                and _matches(sel["podSelector"], {"app": app})
            )
        if "nodes" in peer:
            return sum(_matches(peer["nodes"], node["metadata"]["labels"]) for node in m["nodes"])
        return len(peer["networks"])

    rules = local_rules = naive = 0
    for pol in m.get("tiers", []):
        subject = pol["spec"]["subject"]
        selected = 0
        for p in local_pods:
            nsl = ns_labels[p["metadata"]["namespace"]]
            if "namespaces" in subject:
                selected += _matches(subject["namespaces"], nsl)
            else:
                sel = subject["pods"]
                selected += _matches(sel["namespaceSelector"], nsl) and _matches(
                    sel["podSelector"], p["metadata"]["labels"]
                )
        for field, side in (("ingress", "from"), ("egress", "to")):
            for rule in pol["spec"].get(field, []):
                rules += 1
                if selected:
                    local_rules += 1
                    peers = sum(addresses(peer) for peer in rule[side])
                    naive += selected * peers * len(rule.get("protocols", [None]))
    return {"policies": len(m.get("tiers", [])), "rules": rules, "local_rules": local_rules, "naive": naive}


def compile_figures(size: str, seed: int, profile: str, workdir: Path) -> dict[str, Any]:
    d = cluster_dir(size, seed, workdir)
    cmd = [sys.executable, "-m", "bench.run", "--child", str(d), "--profile", profile]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"compiling {d} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(size: str, seed: int, profile: str, workdir: Path) -> dict[str, Any]:
    base = SIZES[size].base
    if not base:
        raise SystemExit(f"size {size} has no base size (bench/synth.py Size.base)")
    row: dict[str, Any] = {"size": size, "base": base, "profile": profile, **rule_stats(size, seed)}
    row["without"] = compile_figures(base, seed, profile, workdir)
    row["with"] = compile_figures(size, seed, profile, workdir)
    if "error" not in row["without"] and "error" not in row["with"]:
        before, after = row["without"]["entries"], row["with"]["entries"]
        delta = {t: after.get(t, 0) - before.get(t, 0) for t in sorted(set(before) | set(after))}
        row["delta"] = {t: n for t, n in delta.items() if n}
        added = sum(row["delta"].values())
        row["added_entries"] = added
        row["per_rule"] = round(added / max(1, row["rules"]), 2)
        row["per_local_rule"] = round(added / max(1, row["local_rules"]), 2)
    return row


def _print(row: dict[str, Any]) -> None:
    print(
        f"== size {row['size']} over {row['base']} (profile {row['profile']}): {row['policies']} tier "
        f"policies, {row['rules']} rules, {row['local_rules']} of them in policies selecting a pod of "
        "the device's node"
    )
    for label in ("without", "with"):
        r = row[label]
        if "error" in r:
            print(f"  {label} tiers: does not compile after {r['seconds']:.1f} s: {r['error']}")
        else:
            print(
                f"  {label} tiers: compile {r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU), peak "
                f"{r['peak_mb']} MB, TCAM {r['tcam']}, policy entries {r['policy_entries']}"
            )
    if "delta" in row:
        print("  entries the tiers add: " + ", ".join(f"{t} {n:+d}" for t, n in row["delta"].items()))
        print(
            f"  total {row['added_entries']:+d}: {row['per_rule']} per tier rule, {row['per_local_rule']} "
            f"per rule selecting local pods; naive cross-product {row['naive']}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="MT", choices=sorted(s for s, v in SIZES.items() if v.base))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="bmv2", choices=("bmv2", "dpdk"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, help="where generated manifests are kept")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        row = run(args.size, args.seed, args.profile, args.workdir or Path(tmp))
    if args.json:
        print(json.dumps(row, indent=1))
    else:
        _print(row)


if __name__ == "__main__":
    main()
