"""`offload-compile --passes/--no-opt/--dump-after` on the shop golden case."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.cli.main import main

SHOP = Path(__file__).parent.parent / "golden" / "shop"
MANIFESTS = sorted(str(p) for p in SHOP.glob("*.yaml") if p.name != "node.yaml")
ARGS = [*MANIFESTS, "--node", str(SHOP / "node.yaml")]


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main([*ARGS, "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_pass_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--passes", "merge_rules,nope")
    assert code == 2 and out == ""
    assert "unknown pass(es) nope" in err


def test_only_the_named_passes_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The `except` hole is two LPM entries only when lpm_compress runs."""
    hole = "dst_addr=192.168.10.0/24 -> eg_set_peer_class(peer_class=0)"
    assert hole in _run(capsys, "--passes", "lpm_compress")[1]
    assert hole not in _run(capsys, "--passes", "merge_rules")[1]
    assert hole not in _run(capsys, "--no-opt")[1]


def test_dump_after_prints_that_pass_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--dump-after", "lpm_compress")
    assert code == 0
    assert err.startswith("--- after lpm_compress\n")
    assert "eg_peer_class" in err and "Lpm(value=" in err


def test_list_passes_prints_the_pipeline_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    from k8s_offload.compiler.passes.pipeline import STEP_NAMES

    assert main(["--list-passes", "--no-opt"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()]
    assert names == list(STEP_NAMES)
    assert names.index("resolve_policy") < names.index("merge_rules") < names.index("lower_policy")
    marks = {line.split()[0]: line.split()[2] for line in out.splitlines()}
    assert marks["merge_rules"] == "off" and marks["lower_services"] == "on"
    assert marks["expand_blocks"] == "off"  # bmv2


def test_check_each_runs_every_check_and_keeps_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    for profile in ("bmv2", "dpdk"):
        _, plain, _ = _run(capsys, "--target-profile", profile)
        code, checked, _ = _run(capsys, "--target-profile", profile, "--check-each")
        assert code == 0 and checked == plain


def test_dump_after_any_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--dump-after", "ir")
    assert code == 0 and err.startswith("--- after ir\n") and "\nnamespace data declared " in err
    code, _, err = _run(capsys, "--dump-after", "resolve_policy")
    assert code == 0 and "isolation " in err
    code, _, err = _run(capsys, "--dump-after", "lower_services")
    assert code == 0 and "svc_frontend" in err and "eg_pod" not in err
    code, out, err = _run(capsys, "--dump-after", "nope")
    assert code == 2 and out == ""
