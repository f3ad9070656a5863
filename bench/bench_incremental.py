"""Event to device: how long a watch event takes to reach the device, on a synthetic cluster.

The whole live path runs: a loopback API server (tests/cluster/apiserver.py) holding a `bench.synth`
cluster, the `kubernetes` client's list/watch, the compiler's engine (a tracking `Compilation`), the
loader's delta push over gRPC to an in-process embedded target. Latency is from the server emitting
the event to the loader's Write returning (the device holds the change). Write amplification is the
updates sent over the minimal diff between the desired states before and after the event.

    python -m bench.bench_incremental [--size S|M|L] [--samples 50] [--seed 1] [--verbose]
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.synth import SIZES, TEAMS, cluster
from k8s_offload.cluster.watch import WatchConfig
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.plan import make_plan
from k8s_offload.loader.sync import SyncResult
from k8s_offload.target.server import EmbeddedTarget
from tests.cluster.apiserver import FakeApiServer


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Bench:
    def __init__(self, size: str, seed: int, workdir: Path) -> None:
        self.rng = random.Random(seed)
        self.m = cluster(SIZES[size], seed)
        self.server = FakeApiServer(bookmark_interval=5.0).start()
        for kind in ("namespaces", "pods", "services", "endpointslices", "policies"):
            for obj in self.m[kind]:
                self.server.apply(obj)
        self.server.compact()  # the loader lists; the event log only holds the benchmark's events
        # What the events pick from, computed once: inside the timed window it cost ~37 ms per
        # pod label or policy event at size M.
        self.local = [p for p in self.m["pods"] if p["spec"].get("nodeName") == "node-0"]
        self.apps = sorted({p["metadata"]["labels"].get("app", "") for p in self.m["pods"][:2000]})
        self.policies = self._policy_candidates()
        node = workdir / "node.yaml"
        node.write_text(__import__("json").dumps(self.m["node"][0]))
        self.switch = EmbeddedTarget().start()
        cfg = LoaderConfig(
            sources=[],
            kubeconfig=str(self.server.kubeconfig(workdir / "kubeconfig")),
            node=node,
            target=self.switch.address,
            poll_interval=0.05,
            resync_interval=1e9,
            watch=WatchConfig(read_timeout=600, watch_timeout=600),
        )
        self.loader = Loader(cfg)
        self.synced = threading.Event()
        self.last: SyncResult | None = None
        self.loader.on_sync.append(self._on_sync)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loader.run, args=(self.stop,), daemon=True)

    def _on_sync(self, result: SyncResult) -> None:
        self.last = result
        self.synced.set()

    def start(self) -> float:
        t0 = time.perf_counter()
        self.thread.start()
        while not self.loader.metrics.ready():
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        # The embedded target shares this process: its 100k-300k entries, written by the first
        # sync after the loader froze its own state, would make every full collection of the
        # loader's process rescan them (~280 ms stalls at size M). A device is not the loader's
        # memory, so freeze them too.
        gc.collect()
        gc.freeze()
        return elapsed

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.switch.stop()
        self.server.stop()

    def measure(
        self, change: Callable[[], None], timeout: float = 60.0
    ) -> tuple[float, int, int, dict[str, float]] | None:
        """(latency, updates, minimal updates, seconds per phase), or None when the event changed
        nothing on the device.

        Phases: "watch" (server emits -> the loader dequeues it: the client's HTTP read and JSON
        decoding, the watch thread), "decode" (-> Changes), "compile" (Compilation.apply),
        "items" (entities -> desired items), "plan" (delta_plan), "build" (Update protos), "write"
        (the Write RPC), of which "target" is the embedded target applying the updates.
        """
        assert self.loader.cluster is not None
        cluster = self.loader.cluster
        before = dict(cluster.desired)
        batches = cluster.batches
        self.synced.clear()
        t0 = time.perf_counter()
        change()
        end = time.monotonic() + timeout
        while cluster.batches == batches:
            if time.monotonic() > end:
                raise TimeoutError(f"event never compiled: {cluster.error}")
            time.sleep(0.0005)
        if not cluster.last_changed:
            return None
        if not self.synced.wait(timeout):
            raise TimeoutError("delta never pushed")
        latency = time.perf_counter() - t0
        assert self.last is not None and self.last.ok
        phases = {"watch": cluster.received_at - t0, **cluster.timings, **self.last.phases}
        phases["target"] = self.switch.device().last_write_seconds
        minimal = len(make_plan(self.loader.schema, cluster.desired, before))
        if self.last.updates > minimal:
            print(
                f"  note: {self.last.updates} updates for a minimal {minimal}: {self.last.counts}",
                file=sys.stderr,
            )
        return latency, self.last.updates, minimal, phases

    # ---- the event kinds ----------------------------------------------------------------

    def endpoint_change(self) -> None:
        raw = self.rng.choice(self.m["endpointslices"])
        obj = self.server.get("EndpointSlice", raw["metadata"]["namespace"], raw["metadata"]["name"])
        ep = self.rng.choice(obj["endpoints"])
        cond = ep.setdefault("conditions", {})
        cond["ready"] = not cond.get("ready", True)
        self.server.apply(obj)

    def pod_label_change(self) -> None:
        raw = self.rng.choice(self.local)
        obj = self.server.get("Pod", raw["metadata"]["namespace"], raw["metadata"]["name"])
        obj["metadata"]["labels"]["app"] = self.rng.choice(self.apps)
        self.server.apply(obj)

    def _policy_candidates(self) -> list[dict[str, Any]]:
        """Policies selecting a local pod (by their matchLabels), or else every policy in a
        namespace with local pods."""
        local = self.local
        namespaces = {p["metadata"]["namespace"] for p in local}

        def selects_local(pol: dict[str, Any]) -> bool:
            want = pol["spec"].get("podSelector", {}).get("matchLabels", {}).items()
            return any(
                p["metadata"]["namespace"] == pol["metadata"]["namespace"]
                and want <= p["metadata"].get("labels", {}).items()
                for p in local
            )

        candidates = [p for p in self.m["policies"] if p["metadata"]["namespace"] in namespaces]
        return [p for p in candidates if selects_local(p)] or candidates

    def policy_change(self) -> None:
        """A new port on the first rule of one of `_policy_candidates`."""
        raw = self.rng.choice(self.policies)
        obj = self.server.get("NetworkPolicy", raw["metadata"]["namespace"], raw["metadata"]["name"])
        spec = copy.deepcopy(obj["spec"])
        rules = spec.get("ingress") or spec.get("egress") or []
        if rules:
            rules[0]["ports"] = [{"protocol": "TCP", "port": self.rng.randint(1024, 65000)}]
        else:
            spec["podSelector"] = {}
        obj["spec"] = spec
        self.server.apply(obj)

    def namespace_label_change(self) -> None:
        """A random namespace's `team` label set to another team: every namespaceSelector peer
        naming either team gains or loses that namespace's pods (issue 21 item 5)."""
        raw = self.rng.choice(self.m["namespaces"])
        obj = self.server.get("Namespace", "", raw["metadata"]["name"])
        labels = obj["metadata"]["labels"]
        labels["team"] = self.rng.choice([t for t in TEAMS if t != labels.get("team")])
        self.server.apply(obj)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="S", choices=sorted(SIZES))
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verbose", action="store_true", help="one line per sample on stderr")
    p.add_argument(
        "--events",
        default="endpoint,pod,policy,namespace",
        help="comma-separated, of endpoint, pod, policy, namespace",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args.size, args.seed, Path(tmp))
        try:
            startup = bench.start()
            entities = len(bench.loader.desired or {})
            print(f"size {args.size}: first list on the device in {startup:.1f} s, {entities} entities")
            print("| event | samples | no-op | p50 ms | p99 ms | max ms | updates/event | amplification |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            events = {
                "endpoint": ("endpoint change", bench.endpoint_change),
                "pod": ("pod label change (local pod)", bench.pod_label_change),
                "policy": ("policy change", bench.policy_change),
                "namespace": ("namespace label change (team)", bench.namespace_label_change),
            }
            for name, fn in (events[e] for e in args.events.split(",")):
                phase_sum: dict[str, list[float]] = {}
                lat: list[float] = []
                upd: list[int] = []
                amp: list[float] = []
                noop = 0
                for _ in range(args.samples):
                    r = bench.measure(fn)
                    if r is None:
                        noop += 1
                        continue
                    latency, updates, minimal, phases = r
                    for k, v in phases.items():
                        phase_sum.setdefault(k, []).append(v * 1e3)
                    if args.verbose:
                        split = " ".join(f"{k} {v * 1e3:.1f}" for k, v in phases.items())
                        print(
                            f"  {name}: {latency * 1e3:.1f} ms, {updates} updates ({split} ms)",
                            file=sys.stderr,
                        )
                    lat.append(latency * 1e3)
                    upd.append(updates)
                    amp.append(updates / minimal if minimal else 1.0)
                if not lat:
                    print(f"| {name} | 0 | {noop} | - | - | - | - | - |")
                    continue
                print(
                    f"| {name} | {len(lat)} | {noop} | {statistics.median(lat):.1f} | {_pct(lat, 99):.1f} | "
                    f"{max(lat):.1f} | {statistics.mean(upd):.1f} | {max(amp):.2f}x |"
                )
                if args.verbose:
                    split = ", ".join(
                        f"{k} {statistics.median(v):.1f}/{max(v):.1f}" for k, v in phase_sum.items()
                    )
                    print(f"  {name}: phases p50/max ms: {split}", file=sys.stderr)
                sys.stdout.flush()
        finally:
            bench.close()


if __name__ == "__main__":
    main()
