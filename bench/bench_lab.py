"""Requests/s, latency and packets/s of the lab's software path (root).

Brings up examples/lab under a unique name, runs HTTP clients in demo/client's namespace against
a pod address and the Service VIP, counts the frames the target emitted on its ports (the `dp*`
interfaces' tx counters) per phase, and tears the lab down. Prints figures only.
Run: sudo .venv/bin/python -m bench.bench_lab [--requests N]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from k8s_offload.lab.core import Lab, LabState, ns_run, run

REPO = Path(__file__).resolve().parents[2]

CLIENT = """\
import http.client, json, socket, sys, time
host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
lat, t0 = [], time.perf_counter()
failed = 0
if mode == "new":  # one TCP connection per request: handshake, request, response, close
    for _ in range(n):
        s = time.perf_counter()
        c = http.client.HTTPConnection(host, port, timeout=3)
        try:
            c.request("GET", "/"); c.getresponse().read()
            lat.append(time.perf_counter() - s)
        except OSError:
            failed += 1
        c.close()
elif mode == "keepalive":
    c = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(n):
        s = time.perf_counter()
        c.request("GET", "/"); c.getresponse().read()
        lat.append(time.perf_counter() - s)
else:  # bulk: one response of n bytes
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("GET", f"/bulk/{n}"); got = len(c.getresponse().read()); assert got == n, got
total = time.perf_counter() - t0
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else 0.0
print(json.dumps({"seconds": total, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "failed": failed}))
"""


def _tx_frames(state: LabState) -> int:
    links = json.loads(run("ip", "-n", state.node_ns, "-s", "-j", "link", "show").stdout)
    return sum(
        int(link["stats64"]["tx"]["packets"]) for link in links if str(link["ifname"]).startswith("dp")
    )


def _phase(
    lab: Lab, state: LabState, label: str, pod: str, host: str, port: int, mode: str, n: int
) -> dict[str, Any]:
    lab.flush_flows(state)
    before = _tx_frames(state)
    out = ns_run(state.pod(pod).netns, sys.executable, "-c", CLIENT, host, str(port), mode, str(n))
    frames = _tx_frames(state) - before
    res: dict[str, Any] = json.loads(out.stdout)
    secs = res["seconds"]
    res.update(label=label, frames=frames, pps=frames / secs)
    if mode == "bulk":
        res["mbit_s"] = n * 8 / secs / 1e6
    else:
        res["rps"] = (n - res["failed"]) / secs
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--bulk-bytes", type=int, default=4_000_000)
    args = ap.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(f"b{secrets.token_hex(3)}", Path(tmp) / "state")
        try:
            state = lab.up(REPO / "examples/lab/cluster")
            # Each phase starts with an empty flow cache; direct and VIP connections come from
            # different pods (README.md, "Lab", limits: flow cache collisions).
            phases = [
                ("pod IP, new connection per request (IPv4)", "guest", "10.244.1.10", 8080, "new", n),
                ("Service VIP, new connection per request (IPv4)", "client", "10.96.0.10", 80, "new", n),
                ("Service VIP, new connection per request (IPv6)", "client", "fd00:96::10", 80, "new", n),
                ("Service VIP, keep-alive requests (IPv4)", "client", "10.96.0.10", 80, "keepalive", n),
                (
                    "Service VIP, one bulk response (IPv4)",
                    "client",
                    "10.96.0.10",
                    80,
                    "bulk",
                    args.bulk_bytes,
                ),
            ]
            _phase(lab, state, "warm-up", "client", "10.96.0.10", 80, "new", 10)
            heads = ("req/s", "p50 ms", "p99 ms", "frames/s", "Mbit/s", "failed")
            widths = (7, 7, 7, 9, 7, 6)
            print(f"{'phase':48} " + " ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
            for label, pod, host, port, mode, count in phases:
                r = _phase(lab, state, label, pod, host, port, mode, count)
                rps = f"{r['rps']:7.0f}" if "rps" in r else f"{'-':>7}"
                p50 = f"{r['p50_ms']:7.2f}" if mode != "bulk" else f"{'-':>7}"
                p99 = f"{r['p99_ms']:7.2f}" if mode != "bulk" else f"{'-':>7}"
                mbit = f"{r['mbit_s']:7.1f}" if "mbit_s" in r else f"{'-':>7}"
                print(f"{label:48} {rps} {p50} {p99} {r['pps']:9.0f} {mbit} {r['failed']:6}", flush=True)
        finally:
            for complaint in lab.down():
                print(f"down: {complaint}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
