"""The loader daemon: keep one device equal to what the manifests compile to.

Each round: reload sources if they changed (a compile error keeps the last good desired state and
the device untouched); (re)connect with capped, jittered backoff when the stream is down; make
sure the device runs our pipeline and prove it forwards with it (bootstrap.py: a fresh device, a
foreign pipeline, a config loaded but never committed); reconcile from what the device reports,
never from local memory, so a restarted loader writes only the difference.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_offload.cluster.source import ClusterSource, node_facts_for
from k8s_offload.cluster.watch import SERVICE_ACCOUNT_DIR, WatchConfig, api_client
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.nodefacts import NodeFacts, load_node_facts
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.console import PhaseHook
from k8s_offload.loader.bootstrap import PipelineError, PipelineManager
from k8s_offload.loader.delta import delta_plan
from k8s_offload.loader.entities import (
    Item,
    Key,
    bundle_items,
    complete_initial_defaults,
    container,
    with_initial_defaults,
)
from k8s_offload.loader.metrics import Metrics, loader_metrics
from k8s_offload.loader.plan import INSERT, MODIFY
from k8s_offload.loader.sources import SourceWatcher
from k8s_offload.loader.sync import Syncer, SyncResult
from k8s_offload.p4rt.client import (
    Arbitration,
    NotPrimaryError,
    P4RuntimeClient,
    TlsOptions,
)
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.proto import protobuf_backend
from k8s_offload.target.server import EmbeddedTarget

log = logging.getLogger(__name__)


@dataclass
class LoaderConfig:
    sources: Sequence[str | Path]
    node: str | Path | None = None
    target: str | None = None  # None or "embedded": an in-process embedded target
    device_id: int = 1
    election_id: int = 1
    role: str = ""
    batch_size: int = 1000
    atomicity: str = "auto"  # auto | dataplane | rollback | continue
    p4info: Any = None  # P4Info message; default: the committed contract
    device_config: bytes = b""
    tls: TlsOptions | None = None
    poll_interval: float = 1.0
    resync_interval: float = 60.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    connect_timeout: float = 5.0
    embedded_continue_only: bool = False
    # How a pushed (or found) pipeline is shown to be the one forwarding: "probe" (a PacketOut
    # through the data plane, bootstrap.py) or "cookie" (the read-back alone).
    pipeline_check: str = "probe"
    probe_timeout: float = 3.0
    extra: dict[str, Any] = field(default_factory=dict)
    # The target profile and load-balancing mode the entries are lowered for (docs/passes.md);
    # None: every pass, bmv2, the selector's hash.
    passes: PassConfig | None = None
    # Following a live cluster instead of `sources` (k8s_offload/cluster/source.py): a kubeconfig file, or the
    # in-cluster service account; `node_name` overrides the node facts' nodeName.
    kubeconfig: str | None = None
    in_cluster: bool = False
    service_account_dir: str = SERVICE_ACCOUNT_DIR
    node_name: str | None = None
    watch: WatchConfig | None = None
    # Called after each compile phase and each sync (k8s_offload.console.Progress); None: silent.
    progress: PhaseHook | None = None
    # Deletion guard (docs/runtime.md): a reload of manifest files that would delete more than this
    # share of the entities waits for a second read to confirm it; 1.0 turns the guard off.
    max_delete_share: float = 0.5

    @property
    def follows_cluster(self) -> bool:
        return bool(self.kubeconfig) or self.in_cluster


def pipeline_cookie(p4info: Any, device_config: bytes) -> int:
    """64 bits of a hash of what we push: equal cookies mean the device runs our pipeline."""
    digest = hashlib.sha256(p4info.SerializeToString(deterministic=True) + device_config).digest()
    return int.from_bytes(digest[:8], "big")


class Loader:
    def __init__(self, config: LoaderConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or loader_metrics()
        backend = protobuf_backend()
        if backend == "python":
            log.warning(
                "protobuf runs on its pure-Python backend (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python?): "
                "every sync is 10-20x slower; unset it to use upb"
            )
        else:
            log.info("protobuf backend: %s", backend)
        self.p4info = config.p4info if config.p4info is not None else read_p4info()
        # The P4Info we push is the one given (p4c's has no initial_default_action); the desired
        # defaults come from it completed with our front end's where the tables agree.
        defaults_info, unknown = complete_initial_defaults(self.p4info, read_p4info())
        if unknown:
            log.warning("the P4Info gives no initial default for %s: their defaults are not managed", unknown)
        self.schema = Schema(defaults_info)
        self.cookie = pipeline_cookie(self.p4info, config.device_config)
        self.watcher = SourceWatcher(config.sources, config.node)
        self.desired: Mapping[Key, Item] | None = None
        self.compile_error: str | None = None
        self.embedded: EmbeddedTarget | None = None
        self.client: P4RuntimeClient | None = None
        self.syncer: Syncer | None = None
        self.last_result: SyncResult | None = None
        self.in_sync = False
        self._need_sync = True
        self._pipeline_ok = False
        self.pipeline_error = ""
        self._heartbeat = time.monotonic()
        self._last_sync = 0.0
        self._attempt = 0
        self.on_sync: list[Callable[[SyncResult], None]] = []
        self.cluster: ClusterSource | None = None
        self._entries: dict[str, int] = {}
        self._held: Mapping[Key, Item] | None = None
        self._recheck = False
        # The first sync after a start compares with what the device holds (a restarted loader
        # has no compiled state of its own to compare with); later ones compare reloads.
        self._device_checked = False
        self._device_held: Mapping[Key, Item] | None = None
        self.metrics.declare(
            "offload_deletion_guard_holds_total",
            "counter",
            "Source reloads (and first syncs after a start) whose deletions exceeded --max-delete-share and "
            "waited for a second read of the sources",
        )
        self.metrics.healthy = lambda: (
            time.monotonic() - self._heartbeat < max(30.0, 5 * config.poll_interval)
        )
        self.metrics.unready_reason = self.unready_reason
        self._connect_error = ""
        self._arbitration_seen: tuple[str, int | None] | None = None
        self._publish_arbitration(None)

    def unready_reason(self) -> str:
        """Why the device is not known to hold the desired state ("" when it is): for /readyz."""
        if self.cluster is not None and not self.cluster.ready:
            return "waiting for the first list of every watched kind"
        if self.desired is None:
            return (
                f"no desired state: {self.compile_error}" if self.compile_error else "sources not loaded yet"
            )
        client = self.client
        if client is None or not client.connected:
            target = self.config.target or "embedded"
            return f"not connected to {target}" + (f": {self._connect_error}" if self._connect_error else "")
        if not client.is_primary:
            return client.arbitration().explain()
        if not self._pipeline_ok:
            return f"pipeline not proven to forward: {self.pipeline_error or 'not checked yet'}"
        if not self.in_sync:
            r = self.last_result
            return f"last sync failed: {r.reason}" if r is not None and not r.ok else "first sync pending"
        return ""

    def _publish_arbitration(self, client: P4RuntimeClient | None) -> None:
        """Metric and one log line whenever our standing or the primary's election id changes."""
        cfg = self.config
        state = (
            client.arbitration()
            if client is not None
            else Arbitration(cfg.device_id, cfg.role, cfg.election_id, None, "disconnected")
        )
        self.metrics.set_info(
            "offload_arbitration_info",
            device_id=str(state.device_id),
            role=state.role,
            election_id=str(state.election_id),
            primary_election_id="" if state.primary_election_id is None else str(state.primary_election_id),
            status=state.status,
        )
        seen = (state.status, state.primary_election_id)
        if client is not None and seen != self._arbitration_seen:
            level = logging.INFO if state.status == "primary" else logging.WARNING
            log.log(level, "%s", state.explain())
        self._arbitration_seen = seen

    # ---- pieces -----------------------------------------------------------------------------

    def address(self) -> str:
        target = self.config.target
        if target in (None, "", "embedded"):
            if self.embedded is None:
                self.embedded = EmbeddedTarget(
                    continue_on_error_only=self.config.embedded_continue_only
                ).start()
            return self.embedded.address
        assert target is not None
        return target

    def reload(self, force: bool = False) -> bool:
        """Recompile when sources changed; True when the desired state changed."""
        if self.config.follows_cluster:
            return self._reload_cluster()
        if not self.watcher.changed() and not force and not self._recheck:
            return False
        self._recheck = False
        try:
            result = compile_sources(
                self.config.sources,
                self.config.node,
                schema=self.schema,
                passes=self.config.passes,
                progress=self.config.progress,
            )
        except Exception as err:  # any compile failure: keep the last good state, keep watching
            self.compile_error = str(err)
            self.metrics.inc("offload_compile_errors_total")
            log.error("compile failed, keeping the last good state on the device: %s", err)
            return False
        desired = with_initial_defaults(self.schema, bundle_items(self.schema, result.lowered.bundle))
        if not self._deletions_confirmed(desired):
            return False
        for diag in result.diagnostics:
            log.warning("%s", diag)
        self.compile_error = None
        self.desired = desired
        log.info("compiled %d entities from %s", len(self.desired), ", ".join(map(str, self.config.sources)))
        return True

    def _deletions_confirmed(self, new: Mapping[Key, Item]) -> bool:
        """The deletion guard on a reload: compared with the last state compiled."""
        old = self.desired
        if old is None:
            return True  # the first compile: the first sync compares with the device
        confirmed, self._held = self._guard(new, old, self._held, "the sources")
        if not confirmed:
            self._recheck = True
        return confirmed

    def _device_confirmed(self, current: Mapping[Key, Item]) -> bool:
        """The deletion guard on the first sync after a start: compared with what the device
        holds (a restarted loader reading a directory caught empty must not wipe the device)."""
        assert self.desired is not None
        confirmed, self._device_held = self._guard(self.desired, current, self._device_held, "the first sync")
        if confirmed:
            self._device_checked = True
        else:
            self._recheck = True  # read the sources again before the next try
        return confirmed

    def _guard(
        self, new: Mapping[Key, Item], old: Mapping[Key, Item], held: Mapping[Key, Item] | None, what: str
    ) -> tuple[bool, Mapping[Key, Item] | None]:
        """(apply?, what to hold): more than `max_delete_share` of `old`'s entities (default
        entries aside: they always exist) gone from `new` is applied only when the next read of
        the sources gives the same entities (`held`). A directory caught empty or half-written (a
        sync tool swapping it, a volume remounted) then costs one poll interval instead of the
        device's Services, pods and policies."""
        share = self.config.max_delete_share
        if share >= 1.0:
            return True, None
        total = sum(1 for key in old if key[0] != "default")
        removed = sum(1 for key in old if key[0] != "default" and key not in new)
        if removed <= share * total:
            return True, None
        if held is not None and held.keys() == new.keys():
            log.warning("a second read confirms deleting %d of %d entities; applying it", removed, total)
            return True, None
        self.metrics.inc("offload_deletion_guard_holds_total")
        log.warning(
            "%s would delete %d of %d entities (more than %g of them); keeping the device as it "
            "is until the next read of the sources confirms it (--max-delete-share)",
            what,
            removed,
            total,
            share,
        )
        return False, new

    def _facts(self) -> NodeFacts | None:
        facts = load_node_facts(self.config.node) if self.config.node else None
        return node_facts_for(facts, self.config.node_name)

    def _reload_cluster(self) -> bool:
        """Apply watch events; push a delta straight away when the device holds the last state.
        True when a full sync is needed instead (the first list, or the device is not in sync)."""
        cfg = self.config
        if self.cluster is None:
            self.watcher.changed()  # the node facts file as it is now
            client = api_client(cfg.kubeconfig, service_account_dir=cfg.service_account_dir)
            self.cluster = ClusterSource(self.schema, client, self._facts(), cfg.watch, cfg.passes).start()
        elif self.watcher.changed():
            try:
                self.cluster.set_facts(self._facts())
            except Exception as err:  # a half-written facts file: keep the old facts
                log.error("cannot read node facts: %s", err)
        update = self.cluster.poll(timeout=cfg.poll_interval)
        self.compile_error = self.cluster.error
        if self.cluster.error:
            self.metrics.inc("offload_compile_errors_total")
        if update is None:
            return False
        self.desired = self.cluster.desired
        new, old = update
        if self.cluster.need_full_sync:
            self.cluster.need_full_sync = False
            return True
        if self.in_sync and not self._need_sync and self.syncer is not None and self.client is not None:
            self.push_delta(new, old)
            return False
        return True

    def push_delta(self, new: Mapping[Key, Item], old: Mapping[Key, Item]) -> SyncResult | None:
        """Write only the changed entities; any doubt (a replace, a failure) means a full sync."""
        assert self.syncer is not None and self.cluster is not None
        t0 = time.perf_counter()
        plan = delta_plan(self.schema, new, old, (self.cluster.facts, self.cluster.desired))
        planned = time.perf_counter() - t0
        if plan is None:
            self._need_sync = True
            return None
        try:
            result = self.syncer.push(plan, self.cluster.before(new, old))
        except (P4RuntimeRpcError, NotPrimaryError) as err:
            log.warning("delta push interrupted: %s", err)
            self._need_sync = True
            return None
        result.phases["plan"] = planned
        for op in plan.ops():
            if op.item.key[0] != "default" and op.type != MODIFY:
                name = container(self.schema, op.item.key)
                self._entries[name] = self._entries.get(name, 0) + (1 if op.type == INSERT else -1)
        result.entries = dict(self._entries)
        self.metrics.inc("offload_delta_pushes_total")
        self.last_result = result
        self._record(result)
        self.in_sync = result.ok
        self._need_sync = not result.ok
        for callback in list(self.on_sync):
            callback(result)
        return result

    def connect(self) -> None:
        """One connection attempt: stream, arbitration, pipeline. Raises on failure."""
        self.disconnect()
        cfg = self.config
        client = P4RuntimeClient(
            self.address(), cfg.device_id, cfg.election_id, cfg.role, tls=cfg.tls, timeout=cfg.connect_timeout
        )
        try:
            client.on_primary_change.append(self._primary_changed)
            client.on_arbitration.append(lambda: self._publish_arbitration(client))
            client.connect(cfg.connect_timeout)
            self.metrics.set("offload_connected", 1)
            self.client = client
            self._pipeline_ok = False
            if client.is_primary:
                self.ensure_pipeline()
        except BaseException:
            client.close()
            self.client = None
            raise
        self.syncer = Syncer(client, self.schema, cfg.batch_size, cfg.atomicity)
        self.metrics.inc("offload_reconnects_total")
        self._need_sync = True

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            self.syncer = None
        self.metrics.set("offload_connected", 0)
        self.metrics.set("offload_primary", 0)
        self._publish_arbitration(None)

    def _primary_changed(self, primary: bool) -> None:
        self.metrics.set("offload_primary", 1 if primary else 0)
        if primary:
            self._need_sync = True
        else:
            self.in_sync = False

    def ensure_pipeline(self) -> None:
        """Make our pipeline the one forwarding and prove it (bootstrap.py); raises PipelineError.
        When the device's state was lost or replaced on the way, nothing we knew of it holds."""
        assert self.client is not None
        cfg = self.config
        manager = PipelineManager(
            self.client, self.p4info, cfg.device_config, self.cookie, cfg.pipeline_check, cfg.probe_timeout
        )
        self._pipeline_ok = False
        try:
            changed = manager.ensure()
        except PipelineError as err:
            self.pipeline_error = str(err)  # why /readyz stays 503
            raise
        if changed:
            self.in_sync = False
            self._need_sync = True
            self._entries = {}
        self.pipeline_error = ""
        self._pipeline_ok = True

    def sync(self) -> SyncResult | None:
        """Reconcile the device with the desired state (None when there is nothing to do it with)."""
        if self.desired is None or self.syncer is None or self.client is None or not self.client.is_primary:
            return None
        confirm = None if self._device_checked else self._device_confirmed
        result = self.syncer.sync(self.desired, confirm)
        if self.config.progress is not None:
            self.config.progress("sync", result.updates, "updates")
        self._entries = dict(result.entries)
        self.last_result = result
        self._record(result)
        self.in_sync = result.ok
        self._need_sync = not result.ok
        self._last_sync = time.monotonic()
        for callback in list(self.on_sync):
            callback(result)
        return result

    def _record(self, r: SyncResult) -> None:
        m = self.metrics
        m.observe("offload_sync_duration_seconds", r.duration)
        for seconds in r.write_seconds:
            m.observe("offload_write_duration_seconds", seconds)
        m.set("offload_last_sync_duration_seconds", r.duration)
        for kind, n in r.counts.items():
            if n:
                m.inc("offload_updates_total", n, type=kind.lower())
        if r.errors:
            m.inc("offload_write_errors_total", len(r.errors))
        if r.compensated:
            m.inc("offload_compensations_total")
        if r.ok:
            m.set("offload_last_successful_sync_timestamp_seconds", time.time())
            m.replace("offload_entries", {k: float(v) for k, v in r.entries.items()}, "table")
        log.info(
            "sync %s in %.3fs: %s, %d updates in %d writes (%s)%s",
            "ok" if r.ok else "FAILED",
            r.duration,
            r.counts,
            r.updates,
            r.writes,
            r.mode or "nothing to write",
            f": {r.reason}" if r.reason else "",
        )

    def matches(self) -> bool:
        """Read back and compare: does the device hold exactly the desired state?"""
        if self.desired is None or self.syncer is None:
            return False
        return len(self.syncer.diff(self.desired)) == 0

    # ---- loops ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Compile, connect, sync, verify. 0 when the device matches; 1 otherwise; 2 compile error."""
        self.reload(force=True)
        deadline = time.monotonic() + 60.0
        while self.cluster is not None and not self.cluster.ready and time.monotonic() < deadline:
            self.reload()  # the first full list of every kind
        if self.desired is None:
            return 2
        try:
            self.connect()
            if self.client is None or not self.client.is_primary:
                log.error("not primary for device %d: another controller holds it", self.config.device_id)
                return 1
            result = self.sync()
            if result is not None and result.held:  # the deletion guard: read the sources again
                self.reload(force=True)
                result = self.sync()
            ok = result is not None and result.ok and self._pipeline_ok and self.matches()
            return 0 if ok else 1
        except PipelineError as err:
            log.error("pipeline: %s", err)
            return 1
        except (P4RuntimeRpcError, NotPrimaryError, OSError) as err:
            log.error("sync failed: %s", err)
            return 1
        finally:
            self.close()

    def step(self) -> None:
        """One round of the daemon loop (also what tests drive)."""
        self._heartbeat = time.monotonic()
        if self.reload():
            self._need_sync = True
        if self.client is None or not self.client.connected:
            self._reconnect_once()
            return
        if not self.client.is_primary:
            self.client.send_arbitration()  # regain primary if the role has none any more
            return
        due = time.monotonic() - self._last_sync >= self.config.resync_interval
        if self._need_sync or due:
            try:
                if not self._pipeline_ok:  # we became primary after connecting as a backup
                    self.ensure_pipeline()
                self.sync()
            except (P4RuntimeRpcError, NotPrimaryError, PipelineError) as err:
                log.warning("sync interrupted: %s", err)
                self._need_sync = True

    def _reconnect_once(self) -> None:
        try:
            self.connect()
            self._attempt = 0
            self._connect_error = ""
            log.info("connected to %s", self.client.address if self.client else "?")
        except Exception as err:
            self._connect_error = str(err)
            self._attempt += 1
            delay = self.backoff(self._attempt)
            log.warning("cannot reach the target (%s); retrying in %.2fs", err, delay)
            self._sleep(delay)

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter (half to all of the step), so restarts don't align."""
        step = min(self.config.backoff_max, self.config.backoff_initial * 2.0 ** max(0, attempt - 1))
        return step * random.uniform(0.5, 1.0)

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # one bad round must not end the daemon; the next one starts over
                log.exception("loader round failed")
                self._need_sync = True
            if self.cluster is None:  # a cluster source blocks in reload() until events arrive
                stop.wait(self.config.poll_interval)
            elif self.client is None:
                stop.wait(0.05)
        self.close()

    def _sleep(self, seconds: float) -> None:
        stop: threading.Event | None = getattr(self, "_stop", None)
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        self.disconnect()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
