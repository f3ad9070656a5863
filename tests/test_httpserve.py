"""The one HTTP server of the daemons (k8s_offload/httpserve.py): the loader's --metrics, the ARP
proxy's --health-listen and the CNI server's --health-listen all are this server. No root."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from k8s_offload import httpserve
from k8s_offload.httpserve import MAX_CONNECTIONS, HealthServer, parse_listen
from tests.embedded_fixtures import until


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9102", ("127.0.0.1", 9102)),
        ("[::1]:80", ("::1", 80)),
        ("fd00::1:9465", ("fd00::1", 9465)),  # $(POD_IP):9465 on an IPv6 cluster
        ("2001:db8::10:9464", ("2001:db8::10", 9464)),
        (":9102", ("", 9102)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9464", "host:port", "127.0.0.1:99999", "", "[::1]", "1.2.3.4:-1"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen(text)


def test_an_unresolvable_host_is_an_os_error() -> None:
    with pytest.raises(OSError, match="cannot resolve"):
        HealthServer("no-such-host.invalid:0", None, {})


@pytest.fixture(
    params=["127.0.0.1:0", pytest.param("[::1]:0", marks=IPV6), pytest.param("::1:0", marks=IPV6)],
    ids=["ipv4", "ipv6", "bare-ipv6"],
)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    registry = CollectorRegistry()
    Counter("demo_events", "Events.", registry=registry)
    state = {"ready": False}
    srv = HealthServer(
        request.param,
        registry,
        {"/healthz": lambda: (True, "ok"), "/readyz": lambda: (state["ready"], "not attached")},
    ).start()
    try:
        yield parse_listen(request.param)[0], srv.port
    finally:
        srv.stop()


def fetch(host: str, port: int, method: str, path: str, **headers: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def test_get_head_probes_and_metrics(server: tuple[str, int]) -> None:
    host, port = server
    status, ctype, body = fetch(host, port, "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=") and b"demo_events_total 0.0" in body
    status, _, body = fetch(host, port, "HEAD", "/metrics")
    assert status == 200 and body == b""
    assert fetch(host, port, "GET", "/healthz")[::2] == (200, b"ok\n")
    assert fetch(host, port, "GET", "/readyz?verbose")[::2] == (503, b"not attached\n")
    assert fetch(host, port, "HEAD", "/readyz")[::2] == (503, b"")
    assert fetch(host, port, "GET", "/nope")[0] == 404
    assert fetch(host, port, "POST", "/metrics")[0] == 501


def test_openmetrics_when_the_scraper_asks_for_it(server: tuple[str, int]) -> None:
    host, port = server
    status, ctype, body = fetch(host, port, "GET", "/metrics", Accept="application/openmetrics-text")
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_no_registry_means_no_metrics_path() -> None:
    srv = HealthServer("127.0.0.1:0", None, {"/healthz": lambda: (True, "ok")}).start()
    try:
        assert fetch("127.0.0.1", srv.port, "GET", "/metrics")[0] == 404
    finally:
        srv.stop()


@IPV6
def test_an_empty_host_listens_on_both_families() -> None:
    srv = HealthServer(":0", None, {"/healthz": lambda: (True, "ok")}).start()
    try:
        assert fetch("127.0.0.1", srv.port, "GET", "/healthz")[0] == 200
        assert fetch("::1", srv.port, "GET", "/healthz")[0] == 200
    finally:
        srv.stop()


@IPV6
def test_an_explicit_ipv6_address_leaves_ipv4_alone() -> None:
    """IPV6_V6ONLY for an explicit address: `[::]:P` does not also take 0.0.0.0:P (only `:P` does)."""
    srv = HealthServer("[::]:0", None, {}).start()
    try:
        with socket.socket() as s:
            s.bind(("0.0.0.0", srv.port))
    finally:
        srv.stop()


def test_idle_connections_do_not_pile_up_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpserve, "IDLE_TIMEOUT", 0.5)
    srv = HealthServer("127.0.0.1:0", None, {"/healthz": lambda: (True, "ok")}).start()

    def handlers() -> int:  # the server's connection threads only: other tests' threads come and go
        return sum("process_request_thread" in t.name for t in threading.enumerate())

    base = handlers()
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(5 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # let the server accept what it will
        assert handlers() - base <= MAX_CONNECTIONS
        # the idle ones time out; a probe is served again
        assert until(lambda: fetch("127.0.0.1", srv.port, "GET", "/healthz")[0] == 200)
    finally:
        for s in idle:
            s.close()
        srv.stop()
