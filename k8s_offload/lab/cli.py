"""`offload-lab up|down|status|flush`: an example cluster's local pods on one machine (root).

`up` builds the lab (`--nodes 2`: two nodes whose devices are linked by their uplinks) and returns
once every loader has synced and every pod server listens; the
daemons keep running until `down`. See README.md, section "Lab".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from k8s_offload.console import finish_cli

from .core import DEFAULT_CLUSTER, STATE_ROOT, Lab, LabError


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="lab", help="lab name, prefix of its namespaces (default lab)")
    common.add_argument("--state-dir", type=Path, help=f"state directory (default {STATE_ROOT}/NAME)")
    p = argparse.ArgumentParser(prog="offload-lab", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="create the lab and start its processes")
    up.add_argument("--cluster", type=Path, help="manifests directory (default: the shipped lab example)")
    up.add_argument(
        "--nodes",
        type=int,
        choices=(1, 2),
        help="nodes, each with its own device (default 1, or one per --node)",
    )
    up.add_argument(
        "--node",
        type=Path,
        action="append",
        help="node facts file, once per node (default: node.yaml, then node-*.yaml, next to the cluster dir)",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (60)")
    sub.add_parser("down", parents=[common], help="stop everything and delete the namespaces")
    sub.add_parser("flush", parents=[common], help="make the software target forget all connections")
    st = sub.add_parser("status", parents=[common], help="what runs; exit 0 healthy, 1 not, 3 not up")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    return finish_cli(
        p, EXIT_CODES, {"status": {0: "healthy", 1: "not healthy", 2: "bad options", 3: "not up"}}
    )


EXIT_CODES = {0: "ok", 1: "failed (status: not healthy)", 2: "bad options", 3: "status: the lab is not up"}


def _print_status(st: dict[str, Any]) -> None:
    print(f"lab {st['name']}: {'ready' if not st['problems'] else 'NOT ready'} (state {st['stateDir']})")
    for problem in st["problems"]:
        print(f"  problem: {problem}")
    print(f"  manifests (edit to change the cluster): {st['manifests']}")
    for node in st["nodes"]:
        link = f", uplink to {node['uplinkPeer']}" if node["uplinkPeer"] else ""
        print(f"  node {node['name']}: namespace {node['netns']}{link}")
        for proc in node["processes"]:
            print(f"    {'running' if proc['running'] else 'STOPPED'} {proc['role']} (pid {proc['pid']})")
        for pod in node["pods"]:
            ports = ",".join(map(str, pod["tcpPorts"])) or "-"
            print(
                f"    pod {pod['pod']}: netns {pod['netns']} ips {' '.join(pod['ips'])} tcp {ports} "
                f"device port {pod['devicePort']} mac {pod['mac']}"
            )
        counters = node["arpProxy"].get("counters") or {}
        if counters:
            print(f"    arp proxy: {json.dumps(counters, sort_keys=True)}")
    for proc in st["servers"]:
        print(f"  {'running' if proc['running'] else 'STOPPED'} {proc['role']} (pid {proc['pid']})")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        lab = Lab(args.name, args.state_dir)
        if args.command == "up":
            cluster = args.cluster or DEFAULT_CLUSTER
            state = lab.up(cluster, args.node, args.timeout, nodes=args.nodes)
            where = f"{len(state.nodes)} nodes" if len(state.nodes) > 1 else "1 node"
            print(
                f"offload-lab: lab {state.name} is up with {len(state.pods)} pods on {where}", file=sys.stderr
            )
            for pod in state.pods:
                print(f"  ip netns exec {pod.netns} ...   # {pod.key} {' '.join(pod.ips)}", file=sys.stderr)
            return 0
        if args.command == "down":
            complaints = lab.down()
            for c in complaints:
                print(f"offload-lab: {c}", file=sys.stderr)
            return 1 if complaints else 0
        if args.command == "flush":
            state_ = lab.load()
            if state_ is None:
                raise LabError(f"lab {args.name} is not up")
            lab.flush_flows(state_)
            return 0
        st = lab.status()
        if st is None:
            print(f"offload-lab: lab {args.name} is not up", file=sys.stderr)
            return 3
        if args.json:
            print(json.dumps(st, indent=2))
        else:
            _print_status(st)
        return 0 if not st["problems"] else 1
    except LabError as err:
        print(f"offload-lab: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
