"""Parsing manifests within bounds (frontend/syntax.py) against the unbounded library calls it
replaced, measured in the same run on the same text: the pods of a synthetic cluster (bench/synth.py)
as one JSON List and as one YAML List.

- JSON: `json.loads` against `load_json`, which adds duplicate-key detection (an object_pairs_hook)
  and the integer range check.
- YAML: PyYAML's `yaml.load_all(..., CSafeLoader)` against `load_yaml`, which builds values from
  libyaml's events with depth, node, alias and duplicate-key checks.

CPU seconds, best of --repeat runs; figures only, nothing asserts on time.
Run: .venv/bin/python -m bench.bench_frontend [--size S] [--repeat 5] [--yaml-pods 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import yaml

from bench.synth import SIZES, cluster
from k8s_offload.compiler.frontend.syntax import load_json, load_yaml


def best(fn: Callable[[], object], repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        out = min(out, time.process_time() - start)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="S", choices=sorted(SIZES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--yaml-pods", type=int, default=2000, help="pods in the YAML text (YAML is slow)")
    args = parser.parse_args(argv)
    pods = cluster(SIZES[args.size], 1)["pods"]
    as_list = {"apiVersion": "v1", "kind": "PodList", "items": pods}
    text = json.dumps(as_list)
    yaml_text = yaml.safe_dump({**as_list, "items": pods[: args.yaml_pods]})
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows = [
        (
            f"JSON, {len(pods)} pods, {len(text) / 1e6:.1f} MB",
            lambda: json.loads(text),
            lambda: load_json(text),
        ),
        (
            f"YAML, {min(len(pods), args.yaml_pods)} pods, {len(yaml_text) / 1e6:.1f} MB",
            lambda: list(yaml.load_all(yaml_text, Loader=loader)),
            lambda: list(load_yaml(yaml_text)),
        ),
    ]
    print("| text | library call (CPU) | bounded front end (CPU) | ratio |")
    print("|---|---|---|---|")
    for name, baseline, ours in rows:
        base, mine = best(baseline, args.repeat), best(ours, args.repeat)
        print(f"| {name} | {base:.3f} s | {mine:.3f} s | {mine / base:.2f} |")


if __name__ == "__main__":
    main()
