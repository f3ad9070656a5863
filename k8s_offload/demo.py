"""`make demo`: the main job on the bundled example cluster, packet-level probes, then one sync
of the loader onto the embedded P4Runtime target."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from k8s_offload.cli.main import main as offload_compile

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop"


def main() -> int:
    cluster, node, probes = (os.path.relpath(EXAMPLE / f) for f in ("cluster", "node.yaml", "probes.yaml"))
    print(f"$ offload-compile {cluster} --node {node}", flush=True)
    code = offload_compile([cluster, "--node", node])
    if code != 0:
        return code
    print(f"\n$ offload-compile trace {cluster} --node {node} --probes {probes}", flush=True)
    code = offload_compile(["trace", cluster, "--node", node, "--probes", probes])
    if code != 0:
        return code
    # The runtime depends on the compiler, not the other way round: import it only here.
    from k8s_offload.loader.cli import main as offload_loader

    print(
        f"\n$ offload-loader --once --node {node} {cluster}   # onto the embedded P4Runtime target",
        flush=True,
    )
    return offload_loader(["--once", "--node", node, cluster])


if __name__ == "__main__":
    sys.exit(main())
