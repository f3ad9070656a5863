"""The plugin's metrics as a node-exporter textfile (``metricsFile`` in the network config).

A CNI plugin is a short-lived process, so there is nothing to scrape. Each invocation instead
rewrites one Prometheus text file, atomically, which node_exporter's textfile collector (or any
agent that reads that format) serves: the result, time and duration of the last operation per
command, counters of operations per command and result (carried over from the previous file),
and the state of the device port pool. The previous file is parsed with prometheus_client's
parser; a missing or unreadable one starts the counters again from zero, which Prometheus treats
as a counter reset.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from k8s_offload.safefile import atomic_write

log = logging.getLogger("cni_plugin")

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC")
RESULTS = ("success", "error")
POOL_STATES = ("assigned", "available", "unavailable")
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Operation:
    """One finished invocation."""

    command: str
    code: int  # 0 on success, else the CNI error code
    started: float  # Unix time
    duration: float  # seconds
    pool: dict[str, int] | None  # POOL_STATES -> ports, when the invocation looked at the pool


class _State:
    """The series of the file, as read back from the previous one."""

    def __init__(self) -> None:
        self.operations = {(c, r): 0.0 for c in COMMANDS for r in RESULTS}
        self.last: dict[str, dict[str, float]] = {}  # metric suffix -> command -> value
        self.pool: dict[str, float] = {}

    def read(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                command = s.labels.get("command", "")
                if s.name == "offload_cni_operations_total":
                    key = (command, s.labels.get("result", ""))
                    if key in self.operations:
                        self.operations[key] = s.value
                elif s.name.startswith("offload_cni_last_operation_") and command in COMMANDS:
                    self.last.setdefault(s.name, {})[command] = s.value
                elif s.name == "offload_cni_pool_ports" and s.labels.get("state") in POOL_STATES:
                    self.pool[s.labels["state"]] = s.value

    def apply(self, op: Operation) -> None:
        self.operations[(op.command, "success" if op.code == 0 else "error")] += 1
        for name, value in (
            ("offload_cni_last_operation_timestamp_seconds", op.started),
            ("offload_cni_last_operation_duration_seconds", op.duration),
            ("offload_cni_last_operation_error_code", float(op.code)),
        ):
            self.last.setdefault(name, {})[op.command] = value
        if op.pool is not None:
            self.pool = {k: float(v) for k, v in op.pool.items()}

    def collect(self) -> Iterator[Metric]:
        ops = CounterMetricFamily(
            "offload_cni_operations", "CNI operations by command and result.", labels=["command", "result"]
        )
        for (command, result), value in sorted(self.operations.items()):
            ops.add_metric([command, result], value)
        yield ops
        for name, text in (
            ("offload_cni_last_operation_timestamp_seconds", "Unix time the last operation started."),
            ("offload_cni_last_operation_duration_seconds", "How long the last operation took."),
            ("offload_cni_last_operation_error_code", "CNI error code of the last operation, 0 on success."),
        ):
            family = GaugeMetricFamily(name, text, labels=["command"])
            for command, value in sorted(self.last.get(name, {}).items()):
                family.add_metric([command], value)
            yield family
        pool = GaugeMetricFamily(
            "offload_cni_pool_ports",
            "Device ports of the pool: assigned to pods, available, or unavailable (missing, stranded).",
            labels=["state"],
        )
        for state in POOL_STATES:
            if state in self.pool:
                pool.add_metric([state], self.pool[state])
        yield pool


def record(path: Path, op: Operation) -> None:
    """Fold ``op`` into the metrics file. Never raises: metrics must not fail an operation."""
    try:
        with _locked(path):
            state = _State()
            with contextlib.suppress(FileNotFoundError):
                with path.open("rb") as f:
                    raw = f.read(MAX_BYTES + 1)
                try:
                    state.read(raw.decode("utf-8") if len(raw) <= MAX_BYTES else "")
                except Exception as exc:  # a damaged file restarts the counters
                    log.warning("ignoring unreadable metrics file %s: %s", path, exc)
                    state = _State()
            state.apply(op)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(state)
            atomic_write(path, generate_latest(registry))
    except OSError as exc:
        log.warning("cannot write metrics file %s: %s", path, exc)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Concurrent invocations must not lose each other's counts: read-modify-write under a lock."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
