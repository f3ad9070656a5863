"""`offload-compile verify`: exit codes and what it prints."""

from __future__ import annotations

import dataclasses

import pytest

from k8s_offload.cli import verify as verify_cmd
from k8s_offload.cli.main import main
from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.driver import CompileResult
from tests.analysis.verify.helpers import GOLDEN

SHOP = [str(p) for p in sorted((GOLDEN / "shop").glob("*.yaml")) if p.name != "node.yaml"]
NODE = ["--node", str(GOLDEN / "shop" / "node.yaml")]


def test_proves_the_shop_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", *SHOP, *NODE]) == 0
    out = capsys.readouterr().out
    assert "verify: proved" in out
    assert "egress policy" in out and "DIFFERENT" not in out


def test_broken_optimizer_fails_with_confirmed_counterexample(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_a_route(result: CompileResult) -> tuple[Bundle, str]:
        b = result.lowered.bundle
        cart = 0xFFFF_0AF4_0114  # ::ffff:10.244.1.20
        entries = tuple(
            e
            for e in b.entries
            if not (e.table.endswith("fwd") and e.match and getattr(e.match[0][1], "value", 0) == cart)
        )
        assert len(entries) == len(b.entries) - 1
        return dataclasses.replace(b, entries=entries), "broken pass"

    monkeypatch.setattr(verify_cmd, "optimized", drop_a_route)
    assert main(["verify", *SHOP, *NODE]) == 1
    out = capsys.readouterr().out
    assert "fwd" in out and "DIFFERENT" in out
    assert "counterexample: dst_addr=10.244.1.20" in out
    assert "interpreter: confirmed" in out
    assert "verify: FAILED" in out


def test_bad_input_exits_2(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(GOLDEN / "bad-yaml")]) == 2
    assert capsys.readouterr().out == ""


def test_missing_backend_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *args: object) -> object:
        if name == "dd.cudd":
            raise ImportError("No module named 'dd.cudd'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert main(["verify", *SHOP, *NODE]) == 2
    err = capsys.readouterr().err
    assert "CUDD backend" in err and "k8s-offload[verify]" in err
