"""`make demo`: the main job on the bundled example cluster, then packet-level probes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from compiler.cli import main as offload_compile

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop"


def main() -> int:
    cluster, node, probes = (os.path.relpath(EXAMPLE / f) for f in ("cluster", "node.yaml", "probes.yaml"))
    print(f"$ offload-compile {cluster} --node {node}", flush=True)
    code = offload_compile([cluster, "--node", node])
    if code != 0:
        return code
    print(f"\n$ offload-compile trace {cluster} --node {node} --probes {probes}", flush=True)
    return offload_compile(["trace", cluster, "--node", node, "--probes", probes])


if __name__ == "__main__":
    sys.exit(main())
