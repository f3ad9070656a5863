"""`make demo`: the main job on the bundled example cluster, packet-level probes, then one sync
of the loader onto the embedded P4Runtime target."""

from __future__ import annotations

import os
import sys

from k8s_offload.cli.main import main as offload_compile
from k8s_offload.resources import EXAMPLES

EXAMPLE = (EXAMPLES / "shop").resolve()  # a checkout shows examples/shop, not the link


def _shown(path: os.PathLike[str]) -> str:
    """Relative to the working directory when below it (`make demo` in a checkout), else absolute
    (an installed package run from anywhere)."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def main() -> int:
    cluster, node, probes = (_shown(EXAMPLE / f) for f in ("cluster", "node.yaml", "probes.yaml"))
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
