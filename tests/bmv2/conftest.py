"""Fixtures for the tests against the real toolchain: p4c-bm2-ss's build of p4src/k8s_dp.p4 and
bmv2 switches in network namespaces (root). Without the toolchain they skip, saying how to get it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from k8s_offload.p4rt.proto import p4info as p4i
from tests.bmv2.switch import Bmv2
from tests.p4ref import tool

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "p4src" / "k8s_dp.p4"
SHOP_PORTS = (1, 2, 3, 10, 11, 12, 13, 14, 15, 16)  # examples/shop/node.yaml


@dataclass(frozen=True)
class Build:
    """What p4c-bm2-ss made of the program: bmv2 JSON, P4Info (as a file and parsed), warnings."""

    json: bytes
    p4info_path: Path
    p4info: Any
    stderr: str


def compile_program(program: Path, out: Path) -> Build:
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "k8s_dp.p4info.txtpb"
    proc = subprocess.run(
        [
            str(tool("p4c-bm2-ss")),
            "--p4runtime-files",
            str(info_path),
            "-o",
            str(out / "k8s_dp.json"),
            str(program),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, f"p4c-bm2-ss failed:\n{proc.stderr}"
    info = p4i.P4Info()
    text_format.Parse(info_path.read_text(), info)
    return Build((out / "k8s_dp.json").read_bytes(), info_path, info, proc.stderr)


@pytest.fixture(scope="session")
def p4c_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """p4src/k8s_dp.p4 compiled, unchanged, by p4c-bm2-ss (once per session)."""
    return compile_program(PROGRAM, tmp_path_factory.mktemp("p4c"))


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: bmv2 runs in a network namespace of its own")


@pytest.fixture
def bmv2() -> Iterator[Bmv2]:
    """A fresh simple_switch_grpc --no-p4 with the shop node's device ports."""
    tool("simple_switch_grpc")
    require_root()
    with Bmv2(SHOP_PORTS).start() as switch:
        yield switch
