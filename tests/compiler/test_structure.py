"""The compiler's shape (issue 15): it imports nothing from the device model, the loader, the live
cluster or the P4Runtime client except the P4Runtime message classes, and nothing under its
lowering or passes is an `incremental_` twin of another module."""

from __future__ import annotations

import ast
from pathlib import Path

import k8s_offload.compiler

COMPILER = Path(k8s_offload.compiler.__file__).parent
FORBIDDEN = ("k8s_offload.target", "k8s_offload.loader", "k8s_offload.cluster", "k8s_offload.p4rt")
ALLOWED = ("k8s_offload.p4rt.proto",)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def test_compiler_imports_no_device_model_loader_or_runtime() -> None:
    bad = []
    for path in sorted(COMPILER.rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN) and not any(
                name == a or name.startswith(a + ".") for a in ALLOWED
            ):
                bad.append(f"{path.relative_to(COMPILER)}: {name}")
    assert not bad, bad


def test_the_scan_sees_imports() -> None:
    """The scan is not vacuous: the contract module does import the P4Info classes."""
    assert "k8s_offload.p4rt.proto" in _imports(COMPILER / "contract.py")


def test_no_incremental_twins() -> None:
    twins = [p for d in ("lower", "passes") for p in (COMPILER / d).glob("incremental*.py")]
    assert not twins and not (COMPILER / "incremental.py").exists()
