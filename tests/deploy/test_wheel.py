"""The package as a user gets it: `python -m build` (an sdist, then a wheel built from that sdist),
the wheel installed without extras into a fresh venv outside the checkout, and the demo run from
there (compile, trace, one loader sync onto the embedded target), `--version` on every command,
and `verify` naming the extra it needs. A data file the package reads but does not ship, or a
path found through the repository, fails here and not on a user's machine.

Needs PyPI (or pip's cache) for the runtime dependencies; CI has it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
COMMANDS = sorted(PYPROJECT["project"]["scripts"])


def _shipped_data() -> set[str]:
    """Every file the commands may read at run time, as it must appear in the wheel: the P4
    program with its includes and committed P4Info (any program added to p4src/ too), and the
    example clusters."""
    p4 = [*REPO.glob("p4src/**/*.p4"), *REPO.glob("p4src/build/*.p4info.txtpb")]
    examples = REPO.glob("examples/**/*.yaml")
    return {"k8s_offload/" + str(p.relative_to(REPO)) for p in [*p4, *examples]}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (no extras, so no `dd`) and its dependencies from the index."""
    where = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    (wheel,) = dist.glob("*.whl")
    run = subprocess.run(
        [
            str(where / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return where


def _run(venv: Path, cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """A command of the venv, from `cwd`, with nothing of the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_sdist_and_wheel_ship_the_program_and_the_examples(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    want = _shipped_data()
    assert "k8s_offload/p4src/build/k8s_dp.p4info.txtpb" in want
    assert "k8s_offload/examples/shop/cluster/pods.yaml" in want
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    assert want <= in_wheel, sorted(want - in_wheel)
    assert not [n for n in in_wheel if n.startswith(("p4src/", "examples/", "tests/"))]
    with tarfile.open(sdist) as t:
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert want <= in_sdist, sorted(want - in_sdist)


def test_installed_wheel_runs_the_demo_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    where = _run(venv, tmp_path, "python", "-c", "import k8s_offload; print(k8s_offload.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    demo = _run(venv, tmp_path, "python", "-m", "k8s_offload.demo")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    assert "$ offload-compile trace" in out and "$ offload-loader --once" in out
    assert "svc_frontend" in out  # entries were printed
    assert ": ALLOWED (backend data/redis-0)" in out and ": DENIED: " in out  # the probes' verdicts
    assert "offload-loader: device matches" in demo.stderr  # --once read the device back


def test_every_command_prints_its_version(venv: Path, tmp_path: Path) -> None:
    for name in COMMANDS:
        run = _run(venv, tmp_path, name, "--version")
        assert run.returncode == 0 and run.stdout.strip() == f"{name} {VERSION}", (
            name,
            run.stdout,
            run.stderr,
        )


def test_verify_without_the_extra_says_how_to_get_it(venv: Path, tmp_path: Path) -> None:
    assert _run(venv, tmp_path, "python", "-c", "import dd").returncode != 0  # the agent needs no dd
    shop = _run(venv, tmp_path, "python", "-c", "from k8s_offload.resources import EXAMPLES; print(EXAMPLES)")
    cluster = Path(shop.stdout.strip()) / "shop"
    run = _run(
        venv,
        tmp_path,
        "offload-compile",
        "verify",
        str(cluster / "cluster"),
        "--node",
        str(cluster / "node.yaml"),
    )
    assert run.returncode == 2 and run.stdout == ""
    assert "pip install 'k8s-offload[verify]'" in run.stderr, run.stderr


def test_the_wheels_cni_server_serves_the_shim(venv: Path, tmp_path: Path, cni_shim: Path) -> None:
    """What the image pairs: the wheel's `offload-cni serve` behind the static shim, which runs
    from a directory of its own with no Python on its PATH."""
    sock = tmp_path / "cni.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    server = subprocess.Popen(
        [str(venv / "bin/offload-cni"), "serve", "--socket", str(sock)], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        run = subprocess.run(
            [str(cni_shim)], input=b'{"cniVersion": "1.0.0"}', capture_output=True, timeout=60,
            env={"CNI_COMMAND": "VERSION", "PATH": "/nonexistent", "OFFLOAD_CNI_SOCKET": str(sock)},
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["supportedVersions"][-1] == "1.1.0"
    finally:
        server.terminate()
        server.wait(timeout=30)
