"""Speed gate of the compiler against a floor measured in the same run (issue 15).

The floor is what any compiler of this output must at least do: build the same number of
P4Runtime `Update` messages from plain tuples and serialize them as one WriteRequest. Both sides
run as whole processes (interpreter start, imports, work, exit) on the same machine in the same
run, so the ratio `compile CPU / floor CPU` cancels most of the machine's speed and load; a
change to the compiler may not raise it. Peak memory is the compile's max RSS.

Run: python -m bench.floor [--sizes S,M] [--repeat 3] [--workdir DIR] [--json]
Per size it generates the bench.synth cluster (seed 1, kept in the workdir), then alternates
`offload-compile ... --format p4rt-bin` and the floor `--repeat` times and reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.synth import SIZES, cluster, write

ROOT = Path(__file__).resolve().parents[1]


def _child_usage(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, peak RSS in MB) of one child process run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]}... exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - start, usage.ru_maxrss // 1024


def _floor_child(n: int) -> None:
    """Build n Updates (a table entry with two exact keys and a two-parameter action each, the
    commonest shape of a bundle) from plain tuples and serialize them."""
    from k8s_offload.p4rt.proto import p4runtime as p4r

    rows = [(1 + i % 7, i, (0xFFFF << 32) | i, 1 + i % 5, i & 0xFFFFFF, i % 65536) for i in range(n)]
    req = p4r.WriteRequest(device_id=1)
    for table, k1, k2, action, p1, p2 in rows:
        u = req.updates.add(type=p4r.Update.INSERT)
        te = u.entity.table_entry
        te.table_id = table
        m = te.match.add(field_id=1)
        m.exact.value = k1.to_bytes(max(1, (k1.bit_length() + 7) // 8), "big")
        m = te.match.add(field_id=2)
        m.exact.value = k2.to_bytes(max(1, (k2.bit_length() + 7) // 8), "big")
        a = te.action.action
        a.action_id = action
        a.params.add(param_id=1, value=p1.to_bytes(max(1, (p1.bit_length() + 7) // 8), "big"))
        a.params.add(param_id=2, value=p2.to_bytes(max(1, (p2.bit_length() + 7) // 8), "big"))
    with open(os.devnull, "wb") as out:
        out.write(req.SerializeToString())


def _updates_in(path: Path) -> int:
    from k8s_offload.p4rt.proto import p4runtime as p4r

    req = p4r.WriteRequest()
    req.ParseFromString(path.read_bytes())
    return len(req.updates)


def run_size(
    size: str, repeat: int, workdir: Path, root: Path = ROOT, bytecode: bool = True
) -> dict[str, Any]:
    """`root`: the source tree whose compiler runs (another checkout gives a baseline in the same
    run). `bytecode`: both children read and write cached bytecode (in the workdir), as an
    installed program does; without it they inherit the environment, and where that sets
    PYTHONDONTWRITEBYTECODE (a development shell) every run compiles the tree's sources again."""
    d = workdir / f"{size}-1"
    if not (d / "node.yaml").exists():
        write(cluster(SIZES[size], 1), d)
    files = sorted(str(p) for p in d.glob("*.json"))
    out = d / "bundle.p4rt-bin"
    # The console script's function (`entry`: exits without freeing the result) where the tree
    # has one, else `main` as older trees' scripts called it.
    launch = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import k8s_offload.cli.main as m; "
        "sys.exit(m.entry() if hasattr(m, 'entry') else m.main())"
    )
    compile_cmd = [
        sys.executable,
        "-c",
        launch,
        str(root),
        *files,
        "--node",
        str(d / "node.yaml"),
        "--format",
        "p4rt-bin",
        "--quiet",
        "-o",
        str(out),
    ]
    env = None
    if bytecode:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")  # mirrors each source path
    _child_usage(compile_cmd, env)  # warm the page cache (and bytecode); also gives the update count
    n = _updates_in(out)
    floor_cmd = [sys.executable, "-m", "bench.floor", "--floor-child", str(n)]
    _child_usage(floor_cmd, env)
    compiles: list[tuple[float, float, int]] = []
    floors: list[tuple[float, float, int]] = []
    for _ in range(repeat):
        compiles.append(_child_usage(compile_cmd, env))
        floors.append(_child_usage(floor_cmd, env))
    c_cpu = statistics.median(c[0] for c in compiles)
    f_cpu = statistics.median(f[0] for f in floors)
    ratios = [c[0] / f[0] for c, f in zip(compiles, floors, strict=True)]
    return {
        "size": size,
        "updates": n,
        "compile_cpu": [round(c[0], 2) for c in compiles],
        "floor_cpu": [round(f[0], 3) for f in floors],
        "compile_cpu_median": round(c_cpu, 2),
        "floor_cpu_median": round(f_cpu, 3),
        "ratio_of_medians": round(c_cpu / f_cpu, 2),
        "ratio_median": round(statistics.median(ratios), 2),
        "peak_mb": max(c[2] for c in compiles),
        "bytecode": "cached" if bytecode else "as the environment says",
        "load_avg": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S,M", help="comma-separated, of " + ",".join(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where generated manifests are kept")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also measure the compiler of this checkout (e.g. a git archive of main)",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the children with the environment's bytecode settings (see run_size)",
    )
    parser.add_argument("--floor-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_child is not None:
        _floor_child(args.floor_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        trees = [("this tree", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
        for size in args.sizes.split(","):
            for label, root in trees:
                row = run_size(size.strip(), args.repeat, workdir, root, not args.no_bytecode_cache)
                row["tree"] = label
                if args.json:
                    print(json.dumps(row))
                else:
                    print(
                        f"{row['size']} ({label}): {row['updates']} updates; "
                        f"compile CPU {row['compile_cpu']} s "
                        f"(median {row['compile_cpu_median']}), floor CPU {row['floor_cpu']} s (median "
                        f"{row['floor_cpu_median']}); ratio {row['ratio_of_medians']}x (median of pairs "
                        f"{row['ratio_median']}x); peak {row['peak_mb']} MB; load {row['load_avg']}"
                    )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
