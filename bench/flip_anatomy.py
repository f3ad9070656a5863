"""Where the updates of a namespace label flip come from (issue 21 item 5), offline.

A tracking `Compilation` of a `bench.synth` cluster; a random namespace's `team` label is set to
another team (as `bench.bench_incremental --events namespace` does), and the delta is split:
the rule entries of the rule sets whose id changed (rewritten in full, since a set's id is derived
from its content), against how many of their (set, class) entries would differ had each set kept
its id (old and new sets paired through the pods that moved from one to the other).

    python -m bench.flip_anatomy [--size M] [--flips 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
from collections import Counter, defaultdict
from typing import Any

from bench.synth import SIZES, TEAMS, cluster
from k8s_offload.cluster.source import parse_raw
from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.compilation import Change, Compilation, count_key
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.nodefacts import parse_node_facts

KINDS = (
    ("namespaces", "Namespace"),
    ("pods", "Pod"),
    ("services", "Service"),
    ("endpointslices", "EndpointSlice"),
    ("policies", "NetworkPolicy"),
)


def _sets(b: Bundle) -> tuple[dict[Any, int], dict[tuple[str, int], dict[int, int]]]:
    """Each pod entry's rule set, and each rule set's class -> mask."""
    pods: dict[Any, int] = {}
    rules: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    for e in b.entries:
        t = e.table.rsplit(".", 1)[-1]
        if t in ("eg_pod", "in_pod") and e.action is not None:
            params = dict(e.action.params)
            if "set_id" in params:
                pods[(t, e.match)] = params["set_id"]
        elif t in ("eg_peer_rules", "in_peer_rules") and e.action is not None:
            d = t[:2]
            key = {n.rsplit(".", 1)[-1]: getattr(m, "value", 0) for n, m in e.match}
            rules[(d, key[f"{d}_set"])][key[f"{d}_peer_class"]] = dict(e.action.params)["rules"]
    return pods, rules


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="M", choices=sorted(SIZES))
    p.add_argument("--flips", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    m = cluster(SIZES[args.size], args.seed)
    c = Compilation(default_schema(), parse_node_facts(m["node"][0], Location("node")))
    objs = []
    for plural, kind in KINDS:
        for raw in m[plural]:
            _, obj, errors = parse_raw(raw.get("kind", kind), raw)
            assert obj is not None, errors
            objs.append(obj)
    gc.disable()
    c.load(objs)
    rng = random.Random(args.seed)
    for i in range(args.flips):
        pods0, rules0 = _sets(c.bundle())
        raw = copy.deepcopy(rng.choice(m["namespaces"]))
        labels = raw["metadata"]["labels"]
        labels["team"] = rng.choice([t for t in TEAMS if t != labels.get("team")])
        key, obj, _ = parse_raw("Namespace", raw)
        delta = c.apply([Change(key, obj)])
        pods1, rules1 = _sets(c.bundle())
        moved = {(k[0][:2], s0, pods1[k]) for k, s0 in pods0.items() if k in pods1 and pods1[k] != s0}
        rewritten = sum(len(rules0.get((d, a), {})) + len(rules1.get((d, b), {})) for d, a, b in moved)
        kept = 0
        for d, a, b in moved:
            ea, eb = rules0.get((d, a), {}), rules1.get((d, b), {})
            kept += sum(1 for cls in set(ea) | set(eb) if ea.get(cls) != eb.get(cls))
        by_table = Counter(count_key(e).rsplit(".", 1)[-1] for e in [*delta.added, *delta.removed])
        print(
            f"flip {i}: {len(delta)} updates; {len(moved)} rule sets got new ids, their rule entries "
            f"{rewritten}; with ids kept {kept}; by table {dict(sorted(by_table.items()))}"
        )


if __name__ == "__main__":
    main()
