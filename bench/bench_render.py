"""Bundle renderers (`offload-compile --format ...`) timed alone, against another checkout's in the
same run.

Per tree (this one, and `--baseline DIR`, e.g. a `git archive` of main), a child process compiles
the bench.synth cluster once (not timed), then renders its bundle in every format `--repeat` times;
the figures are CPU seconds, medians, with the output's size and a hash of its bytes, so the run
also shows that the trees print the same bytes. Figures only; nothing asserts on time.

Run: .venv/bin/python -m bench.bench_render [--size M] [--repeat 5] [--formats text,p4rt-bin]
     [--baseline DIR] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.synth import SIZES, cluster, write

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("text", "json", "p4rt-text", "p4rt-bin")


def _child(root: str, cluster_dir: str, repeat: int, formats: list[str]) -> None:
    sys.path.insert(0, root)
    from k8s_offload.compiler.bundle.render import render
    from k8s_offload.compiler.driver import compile_sources

    d = Path(cluster_dir)
    result = compile_sources(sorted(str(p) for p in d.glob("*.json")), str(d / "node.yaml"))
    out: dict[str, Any] = {}
    for fmt in formats:
        times = []
        for _ in range(repeat):
            start = time.process_time()
            data = render(result.schema, result.lowered.bundle, fmt)
            times.append(time.process_time() - start)
        out[fmt] = {
            "cpu": round(statistics.median(times), 3),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()[:16],
        }
    print(json.dumps(out))


def run(size: str, repeat: int, workdir: Path, root: Path, formats: list[str]) -> dict[str, Any]:
    d = workdir / f"{size}-1"
    if not (d / "node.yaml").exists():
        write(cluster(SIZES[size], 1), d)
    cmd = [sys.executable, "-m", "bench.bench_render", "--child", str(root), str(d)]
    cmd += ["--repeat", str(repeat), "--formats", ",".join(formats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="M", choices=sorted(SIZES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--formats", default="text,p4rt-bin", help="comma-separated, of " + ",".join(FORMATS))
    parser.add_argument("--baseline", type=Path, help="also time the renderers of this checkout")
    parser.add_argument("--workdir", type=Path, help="where generated manifests are kept")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], args.repeat, args.formats.split(","))
        return
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        rows = {"this tree": run(args.size, args.repeat, workdir, ROOT, formats)}
        if args.baseline:
            rows["baseline"] = run(args.size, args.repeat, workdir, args.baseline, formats)
    print(f"size {args.size}, CPU seconds (median of {args.repeat}), bytes, sha256 prefix")
    print("| format | " + " | ".join(rows) + (" | speedup |" if len(rows) > 1 else ""))
    print("| --- " * (len(rows) + 1 + (len(rows) > 1)) + "|")
    for fmt in formats:
        cells = [f"{r[fmt]['cpu']:.3f} s ({r[fmt]['bytes']:,} B, {r[fmt]['sha256']})" for r in rows.values()]
        extra = ""
        if len(rows) > 1:
            mine, base = rows["this tree"][fmt], rows["baseline"][fmt]
            extra = f" | {base['cpu'] / mine['cpu']:.2f}x"
        print(f"| {fmt} | " + " | ".join(cells) + extra + " |")


if __name__ == "__main__":
    main()
