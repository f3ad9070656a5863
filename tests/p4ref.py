"""The real P4 toolchain for differential tests: p4c, bmv2's simple_switch_grpc and DPDK SWX.

`.ci/run` installs `../shared/p4-reference` and exports its prefix as K8S_OFFLOAD_P4REF; a clone
without it skips these tests with the reason, never silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "K8S_OFFLOAD_P4REF"


def prefix() -> Path | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value)
    return path if (path / "bin").is_dir() else None


def require() -> Path:
    """The toolchain's prefix, or skip the calling test saying how to get it."""
    found = prefix()
    if found is None:
        pytest.skip(
            f"the P4 reference toolchain is not installed ({ENV} unset or not a prefix): "
            "bash ../shared/p4-reference/install.sh PREFIX && export K8S_OFFLOAD_P4REF=PREFIX "
            "(.ci/run does this when ../shared/p4-reference exists)"
        )
    return found


def tool(name: str) -> Path:
    """One binary of the toolchain (p4c-bm2-ss, p4c-dpdk, simple_switch_grpc, swx-run, ...)."""
    path = require() / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} missing from the P4 reference toolchain")
    return path


def tool_env() -> dict[str, str]:
    """The environment the toolchain's `env.sh` sets, derived from the prefix: swx-run and
    swx-check compile the C they generate from a spec with `pkg-config --cflags libdpdk` and
    $SWX_CFLAGS (the pipeline's internal headers). CI exports only K8S_OFFLOAD_P4REF, so the
    tests that run them pass this instead of relying on a sourced env.sh."""
    root = require()
    env = dict(os.environ)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pkg = env.get("PKG_CONFIG_PATH")
    env["PKG_CONFIG_PATH"] = str(root / "lib" / "pkgconfig") + (f"{os.pathsep}{pkg}" if pkg else "")
    env["SWX_CFLAGS"] = f"-I{root / 'share' / 'dpdk-rte' / 'lib' / 'pipeline'}"
    env["RTE_INSTALL_DIR"] = str(root / "share" / "dpdk-rte")
    return env
