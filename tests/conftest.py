"""Repository-wide pytest options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest_plugins = ["tests.embedded_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/compiler/golden/*/expected.* from the current compiler (review the diff!)",
    )


def require_c_compiler() -> None:
    """The CNI shim is part of what ships (the DaemonSet installs it on every node), so its tests
    fail rather than skip without a compiler; .ci/run installs one."""
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.fail("no C compiler for the CNI shim: apt-get install gcc libc6-dev make")


@pytest.fixture(scope="session")
def cni_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static CNI shim (k8s_offload/cni/shim.c), built by the Makefile's rule as
    deploy/Dockerfile builds it."""
    require_c_compiler()
    out = tmp_path_factory.mktemp("cni-shim") / "offload-cni"
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        ["make", "-s", "-C", str(repo), "cni-shim", f"CNI_SHIM={out}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out
