"""offload-arp-proxy's option validation (no root); its health endpoint is tests/test_httpserve.py's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.netns_util import REPO

BASE = ["--interface", "pp0", "--gateway-ip", "10.0.0.1"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "k8s_offload.arp_proxy", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rate", "inf"], "--rate"),
        (["--rate", "nan"], "--rate"),
        (["--rate", "0"], "--rate"),
        (["--burst", "0"], "--burst"),
        (["--burst", "1.5"], "--burst"),
        (["--global-rate", "-1"], "--global-rate"),
        (["--global-burst", "nan"], "--global-burst"),
        (["--poll-interval", "inf"], "--poll-interval"),
        (["--announce-count", "-1"], "--announce-count"),
        (["--interface", "an-interface-name-20"], "--interface"),
        (["--interface", "eth\u00e0"], "--interface"),
        (["--health-listen", "127.0.0.1"], "--health-listen"),
        (["--health-listen", "localhost:99999"], "--health-listen"),
        (["--gateway-ip", "224.0.0.1"], "gateway"),
        (["--mac", "ff:ff:ff:ff:ff:ff"], "MAC"),
        (["--stats-file", "/nonexistent/dir/stats.json"], "--stats-file"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(args: list[str], option: str) -> None:
    proc = run_cli(*BASE, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_missing_required_option_is_exit_2() -> None:
    proc = run_cli("--interface", "pp0")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_log_format_json_is_one_object_per_line() -> None:
    """--log-format json, as every daemon has it (console.setup_logging): the proxy waiting for a
    missing interface logs JSON lines from its first to its last, SIGTERM included; DEBUG is ours
    only (pyroute2 stays at WARNING)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8s_offload.arp_proxy", "--interface", "nosuchif0", "--gateway-ip",
         "10.0.0.1", "--log-format", "json", "--log-level", "DEBUG"],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stderr is not None
    first = json.loads(proc.stderr.readline())
    assert first["logger"] == "arp_proxy" and first["msg"].startswith("proxying 10.0.0.1")
    proc.terminate()
    rest = proc.stderr.read().splitlines()
    assert proc.wait(timeout=30) == 0
    records = [json.loads(line) for line in rest]
    assert records and {r["logger"] for r in records} == {"arp_proxy"}
    assert records[-1]["msg"].startswith("counters:")
