"""The loader's /metrics (prometheus_client), /healthz and /readyz, and arbitration you can see.

Issue 22.2/22.3: every series exists from the start, durations are histograms, process and GC
metrics are there, HEAD works, IPv6 listen addresses work, idle connections cannot pile up
threads, and a loader that is not primary says so (log, metric, /readyz) naming the primary's
election id and the one that takes over.
"""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.metrics import Metrics, MetricsServer, loader_metrics
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE, P4RT_SHELL_ELECTION_ID, SHOP, connect, until
from tests.test_httpserve import IPV6


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_every_series_exists_from_the_start_with_prometheus_names() -> None:
    m = loader_metrics()
    text = m.render()[0].decode()
    fams = _families(text)
    for name in ("offload_write_errors", "offload_compile_errors", "offload_compensations"):
        assert fams[name].type == "counter"
        assert _sample(text, f"{name}_total") == 0.0
    for kind in ("insert", "modify", "delete"):
        assert _sample(text, "offload_updates_total", type=kind) == 0.0
    assert fams["offload_sync_duration_seconds"].type == "histogram"
    assert _sample(text, "offload_sync_duration_seconds_count") == 0.0
    assert fams["offload_write_duration_seconds"].type == "histogram"
    assert "process_cpu_seconds_total" in text or "process_" in text
    assert "python_gc_collections_total" in text
    assert "python_info" in text


def test_counters_must_end_in_total_and_undeclared_names_fail() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="_total"):
        m.declare("offload_things", "counter", "x")
    with pytest.raises(KeyError):
        m.inc("offload_undeclared_total")
    m.declare("offload_guard_total", "counter", "a component's own metric")  # how others register
    m.inc("offload_guard_total", 2)
    assert m.get("offload_guard_total") == 2.0


@IPV6
@pytest.mark.parametrize("listen", ["[::1]:0", "::1:0"])  # the second: $(POD_IP):PORT on IPv6
def test_ipv6_listen_address_serves(listen: str) -> None:
    server = MetricsServer(loader_metrics(), listen).start()
    try:
        status, text = _get(f"http://[::1]:{server.port}/metrics")
        assert status == 200 and "offload_primary" in text
    finally:
        server.stop()


def test_head_answers_like_get_without_a_body() -> None:
    server = MetricsServer(loader_metrics()).start()
    try:
        for path in ("/metrics", "/healthz", "/readyz"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("HEAD", path)
            resp = conn.getresponse()
            assert resp.status in (200, 503), path
            assert int(resp.headers["Content-Length"]) > 0
            assert resp.read() == b""
            conn.close()
    finally:
        server.stop()


def _loader(target: str, election_id: int = 1) -> Loader:
    cfg = LoaderConfig(sources=[SHOP], node=NODE, target=target, poll_interval=0.05, election_id=election_id)
    return Loader(cfg)


def test_sync_is_observed_in_the_histograms(switch: EmbeddedTarget) -> None:
    loader = _loader(switch.address)
    try:
        loader.step()
        loader.step()
        text = loader.metrics.render()[0].decode()
        assert _sample(text, "offload_sync_duration_seconds_count") == 1.0
        assert (_sample(text, "offload_write_duration_seconds_count") or 0) >= 1.0
        assert (_sample(text, "offload_updates_total", type="insert") or 0) > 0
        assert _sample(text, "offload_arbitration_info", status="primary", election_id="1") == 1.0
    finally:
        loader.close()


def test_a_backup_loader_says_who_is_primary_and_how_to_take_over(
    switch: EmbeddedTarget, p4info: Any, caplog: pytest.LogCaptureFixture
) -> None:
    loader = _loader(switch.address)
    server = MetricsServer(loader.metrics).start()
    base = f"http://127.0.0.1:{server.port}"
    other = None
    try:
        loader.step()
        loader.step()
        assert _get(f"{base}/readyz") == (200, "ready\n")
        caplog.set_level(logging.WARNING, logger="k8s_offload.loader.daemon")
        other = connect(switch.address, election_id=P4RT_SHELL_ELECTION_ID)
        assert until(lambda: not loader.metrics.ready())
        loader.step()
        status, body = _get(f"{base}/readyz")
        top = P4RT_SHELL_ELECTION_ID
        assert status == 503
        assert f"election id {top} is primary" in body and f"--election-id {top + 1}" in body
        text = _get(f"{base}/metrics")[1]
        assert _sample(text, "offload_primary") == 0.0
        assert _sample(text, "offload_arbitration_info", status="backup", primary_election_id=str(top)) == 1.0
        assert any(f"election id {top} is primary" in r.getMessage() for r in caplog.records)
        # The primary leaves: the device remembers its id (spec §7), so we stay a backup and say so.
        other.close()
        other = None
        assert until(lambda: "no primary" in loader.unready_reason())
        loader.step()
        assert f"only --election-id {top} or higher" in _get(f"{base}/readyz")[1]
        assert not loader.metrics.ready()
    finally:
        if other is not None:
            other.close()
        server.stop()
        loader.close()
    # The documented way to take over: a higher --election-id.
    taker = _loader(switch.address, election_id=P4RT_SHELL_ELECTION_ID + 1)
    try:
        taker.step()
        taker.step()
        assert taker.metrics.ready() and taker.client is not None and taker.client.is_primary
    finally:
        taker.close()
