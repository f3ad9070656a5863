"""Every offload-loader option is checked at start: exit 2 and one line naming the option
(issue 17.5: `--batch-size 0` used to send empty writes, log "sync ok" and become ready)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.loader.cli import main as loader_main
from tests.embedded_fixtures import SHOP


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--batch-size", "ten"], "--batch-size"),
        (["--election-id", "-1"], "--election-id"),
        (["--election-id", str(1 << 128)], "--election-id"),
        (["--device-id", str(1 << 64)], "--device-id"),
        (["--poll-interval", "0"], "--poll-interval"),
        (["--poll-interval", "nan"], "--poll-interval"),
        (["--resync-interval", "inf"], "--resync-interval"),
        (["--metrics", "9464"], "--metrics"),
        (["--metrics", "host:port"], "--metrics"),
        (["--atomicity", "sometimes"], "--atomicity"),
    ],
)
def test_bad_values_exit_2_naming_the_option(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        loader_main(["--once", *flags, str(SHOP)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err.splitlines()[-1]


def test_a_p4info_that_does_not_parse_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p4info.txt"
    bad.write_text("tables { preamble { id: banana } }\n")
    assert loader_main(["--once", "--p4info", str(bad), str(SHOP)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--p4info {bad}" in err[0]


def test_the_largest_ids_are_accepted() -> None:
    """Election ids are 128-bit (p4runtime-shell's default is 2^64), device ids 64-bit."""
    from k8s_offload.loader.cli import _parser

    args = _parser().parse_args(
        ["--election-id", str((1 << 128) - 1), "--device-id", str((1 << 64) - 1), "x"]
    )
    assert args.election_id == (1 << 128) - 1 and args.device_id == (1 << 64) - 1
    assert _parser().parse_args(["--metrics", "[::1]:9464", "x"]).metrics == "[::1]:9464"


def test_a_taken_metrics_port_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert loader_main(["--metrics", f"127.0.0.1:{port}", str(SHOP)]) == 2
    assert f"--metrics 127.0.0.1:{port}" in capsys.readouterr().err
