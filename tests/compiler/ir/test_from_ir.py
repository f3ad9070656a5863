"""`offload-compile --from-ir`: `--emit ir` output compiles to the same bundle as the manifests it
came from (every golden case, every format), and bad IR text is exit 2 with FILE:LINE:COLUMN."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.cli.main import main
from tests.compiler.golden.test_golden import GOOD, case_args

GOLDEN = GOOD[0].parent
SHOP = GOLDEN / "shop"


def _emit_ir(case: Path, out: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> list[str]:
    """Print the case's IR to `out`; the options that are not inputs (profile, passes) are returned."""
    args = case_args(case)
    assert main([*args, "--emit", "ir", "-o", str(out), "--quiet"]) == 0
    capsysbinary.readouterr()
    extra = case / "args"
    return extra.read_text().split() if extra.exists() else []


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_emitted_ir_compiles_to_the_golden_bundle(
    case: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ir = tmp_path / "cluster.ir"
    options = _emit_ir(case, ir, capsysbinary)
    for fmt, expected in (("text", "expected.txt"), ("json", "expected.json")):
        code = main(["--from-ir", str(ir), *options, "--format", fmt, "--quiet"])
        out, err = capsysbinary.readouterr()
        assert code == 0, err.decode()
        assert out == (case / expected).read_bytes(), f"{case.name}: {fmt} differs"
        if fmt == "text":
            assert err == (case / "expected.stderr").read_bytes()


def test_the_ir_reads_from_stdin_and_prints_back_unchanged(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    ir = tmp_path / "shop.ir"
    _emit_ir(SHOP, ir, capsysbinary)
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(ir.read_bytes())))
    assert main(["--from-ir", "-", "--emit", "ir", "--quiet"]) == 0
    assert capsysbinary.readouterr().out == ir.read_bytes()


def _shop_ir_lines(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> list[str]:
    good = tmp_path / "good.ir"
    _emit_ir(SHOP, good, capsysbinary)
    return good.read_text().splitlines()


def _run_bad(path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, str]:
    code = main(["--from-ir", str(path), "--quiet"])
    out, err = capsysbinary.readouterr()
    assert out == b"", "bad input must leave stdout empty"
    return code, err.decode()


def test_bad_lines_are_each_reported_with_line_and_column(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = _shop_ir_lines(tmp_path, capsysbinary)
    pod = next(i for i, line in enumerate(lines) if line.startswith("pod data/postgres-0 "))
    lines[pod] = lines[pod].replace("ipv4=10.244.1.40", "ipv4=10.244.1.400")
    svc = next(i for i, line in enumerate(lines) if line.startswith("service shop/cart "))
    lines[svc] = lines[svc].replace("type=ClusterIP", "type=Cluster")
    bad = tmp_path / "bad.ir"
    bad.write_text("\n".join(lines) + "\n")
    code, err = _run_bad(bad, capsysbinary)
    assert code == 2
    assert err.splitlines() == [
        f"{bad}:{pod + 1}:26: bad address: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), "
        "got '10.244.1.400'",
        f"{bad}:{svc + 1}:24: type must be one of ClusterIP, NodePort, LoadBalancer, ExternalName, "
        "got 'Cluster'",
    ]


def test_broken_references_are_reported_at_their_line(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = [
        line for line in _shop_ir_lines(tmp_path, capsysbinary) if not line.startswith("service shop/cart ")
    ]
    frontend = next(i for i, line in enumerate(lines) if "-> shop/cart:" in line)
    bad = tmp_path / "bad.ir"
    bad.write_text("\n".join(lines) + "\n")
    code, err = _run_bad(bad, capsysbinary)
    assert code == 2
    assert f"{bad}:{frontend + 1}:1: frontends[" in err
    assert "dangling reference to Service shop/cart" in err


def test_edited_rule_lines_are_refused_where_they_differ(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = _shop_ir_lines(tmp_path, capsysbinary)
    rule = lines.index("  rule 1 peers=10.244.1.50/32 ports=any")
    lines[rule] = "  rule 1 peers=10.244.1.51/32 ports=any"
    bad = tmp_path / "bad.ir"
    bad.write_text("\n".join(lines) + "\n")
    code, err = _run_bad(bad, capsysbinary)
    assert code == 2
    assert err.startswith(
        f"{bad}:{rule + 1}:1: the rule IR differs from what the policy lines resolve to: "
        "expected 'rule 1 peers=10.244.1.50/32 ports=any' here;"
    )
    # Without rule lines the file compiles: they are optional, derived data.
    (tmp_path / "no-rules.ir").write_text(
        "\n".join(line for line in lines if not line.startswith(("isolation ", "  rule "))) + "\n"
    )
    assert main(["--from-ir", str(tmp_path / "no-rules.ir"), "--quiet"]) == 0


def test_from_ir_takes_no_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--from-ir", str(tmp_path / "x.ir"), str(SHOP)])
    assert code == 2
    assert "--from-ir takes no manifests" in capsys.readouterr().err


def test_a_missing_file_is_bad_input(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, err = _run_bad(tmp_path / "missing.ir", capsysbinary)
    assert code == 2
    assert err.startswith(f"{tmp_path / 'missing.ir'}: cannot read:")


def test_a_device_is_refused_not_read(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """The front end's bounded reading (docs/failure-modes.md): /dev/zero is an error, not a hang."""
    code, err = _run_bad(Path("/dev/zero"), capsysbinary)
    assert code == 2
    assert err.startswith("/dev/zero: cannot read: is not a regular file or a FIFO")
