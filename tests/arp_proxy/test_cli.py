"""offload-arp-proxy's option validation and the shared health/metrics endpoint (no root)."""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from k8s_offload.httpserve import HealthServer, parse_listen
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9102", ("127.0.0.1", 9102)),
        ("[::1]:80", ("::1", 80)),
        ("fd00::1:9465", ("fd00::1", 9465)),  # $(POD_IP):9465 on an IPv6 cluster
        (":9102", ("", 9102)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.fixture(params=["127.0.0.1:0", "[::1]:0"], ids=["ipv4", "ipv6"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    registry = CollectorRegistry()
    Counter("demo_events", "Events.", registry=registry)
    state = {"ready": False}
    srv = HealthServer(
        request.param,
        registry,
        {"/healthz": lambda: (True, "ok"), "/readyz": lambda: (state["ready"], "not attached")},
    )
    srv.start()
    try:
        yield request.param.rpartition(":")[0].strip("[]"), srv.port
    finally:
        srv.stop()


def fetch(host: str, port: int, method: str, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def test_health_server_get_and_head(server: tuple[str, int]) -> None:
    host, port = server
    status, ctype, body = fetch(host, port, "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=") and b"demo_events_total 0.0" in body
    status, _, body = fetch(host, port, "HEAD", "/metrics")
    assert status == 200 and body == b""
    assert fetch(host, port, "GET", "/healthz")[0] == 200
    assert fetch(host, port, "GET", "/readyz")[:3:2] == (503, b"not attached\n")
    assert fetch(host, port, "HEAD", "/readyz")[0] == 503
    assert fetch(host, port, "GET", "/nope")[0] == 404
