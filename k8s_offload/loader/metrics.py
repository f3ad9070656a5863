"""Loader metrics with prometheus_client, served with /healthz and /readyz by k8s_offload/httpserve.py.

The metrics live in a registry of their own per `Metrics` (tests build many loaders in one
process), with the process and Python GC collectors beside them. Code that reports adds to them by
name (`declare`, `set`, `inc`, `observe`), so a component can register a metric of its own without
importing prometheus_client; every series a metric can have is created at declaration, so counters
are scraped as 0 from the start, not only after their first increment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from k8s_offload.httpserve import HealthServer, exposition

KINDS = ("counter", "gauge", "histogram")
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: a no-op resync takes milliseconds, a first sync of a size-M cluster tens of seconds."""


class Metrics:
    """A registry of named metrics; `healthy` and `unready_reason` feed /healthz and /readyz."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._metrics: dict[str, Any] = {}
        self._labels: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self.healthy: Callable[[], bool] = lambda: True
        # "" when ready, else why not: /readyz says it, so an operator need not guess.
        self.unready_reason: Callable[[], str] = lambda: "not started"

    def ready(self) -> bool:
        return self.unready_reason() == ""

    def declare(
        self,
        name: str,
        kind: str,
        text: str,
        labels: Sequence[str] = (),
        series: Iterable[Sequence[str]] = (),
        buckets: Sequence[float] = SYNC_BUCKETS,
    ) -> None:
        """A metric `name` (counters end in `_total`, units are suffixes: Prometheus naming). For a
        labelled metric, `series` are the label values known up front: they exist from the start."""
        if kind not in KINDS:
            raise ValueError(f"metric {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"metric {name}: a counter's name ends in _total")
        with self._lock:
            if name in self._metrics:
                return
            labelnames = tuple(labels)
            metric: Any
            if kind == "counter":
                metric = Counter(name, text, labelnames, registry=self.registry)
            elif kind == "gauge":
                metric = Gauge(name, text, labelnames, registry=self.registry)
            else:
                metric = Histogram(name, text, labelnames, registry=self.registry, buckets=tuple(buckets))
            for values in series:
                metric.labels(*values)
            self._metrics[name] = metric
            self._labels[name] = labelnames

    def _child(self, name: str, labels: dict[str, str]) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            raise KeyError(f"metric {name} was not declared")
        return metric.labels(**labels) if self._labels[name] else metric

    def set(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).set(value)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._child(name, labels).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).observe(value)

    def replace(self, name: str, values: dict[str, float], label: str) -> None:
        """Set a whole labelled gauge at once (e.g. entries per table), dropping stale series."""
        metric = self._metrics[name]
        with self._lock:
            metric.clear()
            for key, value in values.items():
                metric.labels(**{label: key}).set(value)

    def set_info(self, name: str, **labels: str) -> None:
        """An info-style gauge: exactly one series, these labels, value 1."""
        metric = self._metrics[name]
        with self._lock:
            metric.clear()
            metric.labels(**labels).set(1)

    def get(self, name: str, **labels: str) -> float:
        """The current value of a counter or gauge series (0 when it has no sample)."""
        value = self.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else float(value)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an Accept header (Prometheus text, or OpenMetrics when asked)."""
        return exposition(self.registry, accept)


def loader_metrics() -> Metrics:
    m = Metrics()
    m.declare("offload_sync_duration_seconds", "histogram", "Duration of reconciliations and delta pushes")
    m.declare(
        "offload_write_duration_seconds", "histogram", "Duration of Write RPCs, the target's work included"
    )
    m.declare("offload_last_sync_duration_seconds", "gauge", "Duration of the last sync")
    m.declare("offload_last_successful_sync_timestamp_seconds", "gauge", "Unix time of the last good sync")
    m.declare(
        "offload_entries", "gauge", "Entities on the device after the last sync, per table/profile", ["table"]
    )
    m.declare(
        "offload_updates_total",
        "counter",
        "Updates planned, by type",
        ["type"],
        series=[("insert",), ("modify",), ("delete",)],
    )
    m.declare("offload_write_errors_total", "counter", "Updates the device rejected or did not apply")
    m.declare("offload_compile_errors_total", "counter", "Source reloads that did not compile")
    m.declare("offload_compensations_total", "counter", "Failed syncs rolled back by the loader")
    m.declare("offload_primary", "gauge", "1 while this loader is the P4Runtime primary")
    m.declare("offload_connected", "gauge", "1 while the P4Runtime stream is up")
    m.declare("offload_reconnects_total", "counter", "Connections (re)established to the target")
    m.declare("offload_delta_pushes_total", "counter", "Watch deltas written without a full reconcile")
    m.declare(
        "offload_arbitration_info",
        "gauge",
        "1 for the arbitration this loader last saw: its election id, the primary's (the highest "
        "the device knows, '' when none is known) and its status (primary, backup, no_primary, "
        "disconnected); ids are labels because they are 128-bit",
        ["device_id", "role", "election_id", "primary_election_id", "status"],
    )
    return m


class MetricsServer(HealthServer):
    """The loader's `/metrics`, `/healthz` (the loop is alive) and `/readyz` (the device matches
    the sources and we are primary, else why not) on the shared server (k8s_offload/httpserve.py)."""

    def __init__(self, metrics: Metrics, listen: str = "127.0.0.1:0") -> None:
        def healthz() -> tuple[bool, str]:
            ok = metrics.healthy()
            return ok, "ok" if ok else "unhealthy: the loop is stuck"

        def readyz() -> tuple[bool, str]:
            reason = metrics.unready_reason()
            return not reason, f"not ready: {reason}" if reason else "ready"

        super().__init__(listen, metrics.registry, {"/healthz": healthz, "/readyz": readyz}, name="metrics")
