"""Golden cases: each directory holds input manifests (and maybe node.yaml) and the expected
output of `offload-compile`: `expected.txt` and `expected.json` for good input, or
`expected.stderr` and `expected.exit` for bad input (stdout must then be empty).

An optional `args` file adds command-line options (target profile, passes).

`pytest tests/compiler/golden --update-golden` rewrites the expected files; every rewrite is reviewed in
the diff before it is committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.cli.main import build_compile_parser, main
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.passes.pipeline import PassConfig

HERE = Path(__file__).parent
CASES = sorted(p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
GOOD = [c for c in CASES if not c.name.startswith(("bad-", "duplicate-"))]


def case_args(case: Path) -> list[str]:
    """The case's manifests, node facts and extra options, as `offload-compile` arguments."""
    args = sorted(str(p) for p in case.glob("*.yaml") if p.name != "node.yaml")
    node = case / "node.yaml"
    if node.exists():
        args += ["--node", str(node)]
    extra = case / "args"  # e.g. `--target-profile dpdk` or `--no-opt`
    if extra.exists():
        args += extra.read_text().split()
    return args


def case_passes(case: Path) -> PassConfig:
    """The pass configuration the case's options give, read by the CLI's own parser."""
    a = build_compile_parser().parse_args(case_args(case))
    return PassConfig.parse(a.passes, a.no_opt, a.target_profile, None, a.lb)


def compile_case(case: Path) -> CompileResult:
    a = build_compile_parser().parse_args(case_args(case))
    return compile_sources(a.manifests, a.node, passes=case_passes(case))


def _run(case: Path, fmt: str, capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes, bytes]:
    code = main([*case_args(case), "--format", fmt, "--quiet"])
    out, err = capsysbinary.readouterr()
    return code, out, err.replace(str(HERE).encode() + b"/", b"")


def _check(path: Path, actual: bytes, update: bool) -> None:
    if update:
        path.write_bytes(actual)
        return
    assert path.exists(), f"{path} missing: run pytest tests/compiler/golden --update-golden and review"
    expected = path.read_bytes()
    assert actual.decode() == expected.decode(), f"{path.relative_to(HERE)} differs"


def test_there_are_enough_cases() -> None:
    """The compiler-core issue asks for at least 15 golden cases."""
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(
    case: Path, request: pytest.FixtureRequest, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    update = bool(request.config.getoption("--update-golden"))
    bad = case.name.startswith("bad-") or case.name.startswith("duplicate-")
    code, out, err = _run(case, "text", capsysbinary)
    if bad:
        assert out == b"", "bad input must leave stdout empty"
        assert code == 2
        _check(case / "expected.stderr", err, update)
        _check(case / "expected.exit", f"{code}\n".encode(), update)
        return
    assert code == 0, err.decode()
    _check(case / "expected.txt", out, update)
    _check(case / "expected.stderr", err, update)
    code, out, _ = _run(case, "json", capsysbinary)
    assert code == 0
    _check(case / "expected.json", out, update)
    # Determinism: a second run gives the same bytes.
    assert _run(case, "json", capsysbinary)[1] == out
