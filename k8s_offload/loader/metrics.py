"""Loader metrics in the Prometheus text format, and /metrics, /healthz, /readyz on stdlib HTTP.

Small on purpose (no client library dependency): gauges and counters with optional labels, which
is all the loader reports (sync duration, entries per table, write errors, last success, primary).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._values: dict[str, dict[Labels, float]] = {}
        self.healthy: Callable[[], bool] = lambda: True
        self.ready: Callable[[], bool] = lambda: False

    def declare(self, name: str, kind: str, text: str) -> None:
        with self._lock:
            self._help[name] = (kind, text)
            self._values.setdefault(name, {})

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values.setdefault(name, {})[tuple(sorted(labels.items()))] = value

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def replace(self, name: str, values: dict[str, float], label: str) -> None:
        """Set a whole labelled gauge at once (e.g. entries per table), dropping stale series."""
        with self._lock:
            self._values[name] = {((label, k),): v for k, v in values.items()}

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._values):
                kind, text = self._help.get(name, ("untyped", ""))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(self._values[name].items()):
                    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    num = _number(value)
                    lines.append(f"{name}{{{inner}}} {num}" if inner else f"{name} {num}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Full precision (`:g` kept 6 digits, so Unix timestamps lost their seconds); Prometheus spellings."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def loader_metrics() -> Metrics:
    m = Metrics()
    m.declare("offload_sync_duration_seconds_sum", "counter", "Total time spent in syncs")
    m.declare("offload_sync_duration_seconds_count", "counter", "Number of syncs")
    m.declare("offload_last_sync_duration_seconds", "gauge", "Duration of the last sync")
    m.declare("offload_last_successful_sync_timestamp_seconds", "gauge", "Unix time of the last good sync")
    m.declare("offload_entries", "gauge", "Entities on the device after the last sync, per table/profile")
    m.declare("offload_updates_total", "counter", "Updates written, by type")
    m.declare("offload_write_errors_total", "counter", "Updates the device rejected")
    m.declare("offload_compile_errors_total", "counter", "Source reloads that did not compile")
    m.declare("offload_compensations_total", "counter", "Failed syncs rolled back by the loader")
    m.declare("offload_primary", "gauge", "1 while this loader is the P4Runtime primary")
    m.declare("offload_connected", "gauge", "1 while the P4Runtime stream is up")
    m.declare("offload_reconnects_total", "counter", "Connections (re)established to the target")
    m.declare("offload_delta_pushes_total", "counter", "Watch deltas written without a full reconcile")
    return m


class MetricsServer:
    """`/metrics`, `/healthz` (the loop is alive) and `/readyz` (the device matches the sources)."""

    def __init__(self, metrics: Metrics, listen: str = "127.0.0.1:0") -> None:
        host, port = listen.rsplit(":", 1)
        handler = _handler(metrics)
        self.httpd = ThreadingHTTPServer((host, int(port)), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="metrics")

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.render(), "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                ok = metrics.healthy()
                self._send(200 if ok else 503, "ok\n" if ok else "unhealthy\n")
            elif self.path == "/readyz":
                ok = metrics.ready()
                self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
            else:
                self._send(404, "not found\n")

        def _send(self, code: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def now() -> float:
    return time.time()
