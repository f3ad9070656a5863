"""One reconciliation: read the device, diff against the desired entities, push the plan.

Atomicity: DATAPLANE_ATOMIC is tried first (the whole plan as one transaction); a target that
answers UNIMPLEMENTED (bmv2, Stratum, infrap4d: spec §"Batch Atomicity" makes it optional) gets
the staged plan under CONTINUE_ON_ERROR, whose ordering keeps packets consistent (plan.py). If a
staged batch fails, the updates already applied are undone by a second plan from what the device
now holds back to what it held before: the last good state.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from k8s_offload import gcpause
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import Item, Key, container, describe, device_items, same
from k8s_offload.loader.plan import DELETE, TYPE_NAMES, Op, Plan, make_plan
from k8s_offload.p4rt.client import (
    CONTINUE_ON_ERROR,
    DATAPLANE_ATOMIC,
    ROLLBACK_ON_ERROR,
    NotPrimaryError,
    P4RuntimeClient,
)
from k8s_offload.p4rt.errors import P4RuntimeRpcError, UpdateError, WriteError, code_name
from k8s_offload.p4rt.proto import code_pb2

log = logging.getLogger(__name__)

LOGGED_ERRORS = 20
"""Rejected updates logged one per line; the rest are counted (a 100k-update batch can all fail)."""

MODES = {"auto": DATAPLANE_ATOMIC, "dataplane": DATAPLANE_ATOMIC, "rollback": ROLLBACK_ON_ERROR}


@dataclass(frozen=True, slots=True)
class EntityError:
    """A rejected update, traced back to the Kubernetes objects that produced the entity."""

    origin: tuple[str, ...]
    what: str
    update: str
    code: int
    message: str

    def __str__(self) -> str:
        who = ", ".join(self.origin) or "(no origin)"
        return f"{who}: {self.update} {self.what}: {code_name(self.code)}: {self.message}"


@dataclass
class SyncResult:
    ok: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    updates: int = 0  # updates sent, including compensation
    writes: int = 0  # Write RPCs
    errors: list[EntityError] = field(default_factory=list)
    compensated: bool = False
    mode: str = ""
    reason: str = ""
    duration: float = 0.0
    entries: dict[str, int] = field(default_factory=dict)
    # Seconds per phase of a delta push: "plan" (delta_plan), "build" (Update protos), "write"
    # (the Write RPCs, the target's work included).
    phases: dict[str, float] = field(default_factory=dict)
    write_seconds: list[float] = field(default_factory=list)  # per Write RPC, for the histogram
    held: bool = False  # the caller's `confirm` refused what the device holds: nothing written


def applied(op: Op, device: Mapping[Key, Item]) -> bool:
    """Whether the device shows the effect of `op`: its entity there and equal, or gone for DELETE."""
    if op.type == DELETE:
        return op.item.key not in device
    held = device.get(op.item.key)
    return held is not None and same(held, op.item)


class Syncer:
    """Pushes desired entities to one connected client; remembers whether atomic writes work."""

    def __init__(
        self, client: P4RuntimeClient, schema: Schema, batch_size: int = 1000, mode: str = "auto"
    ) -> None:
        if mode not in (*MODES, "continue"):
            raise ValueError(f"unknown atomicity mode {mode!r}")
        if batch_size < 1:  # 0 would send empty writes and call the sync a success
            raise ValueError(f"batch size must be at least 1, not {batch_size}")
        self.client = client
        self.schema = schema
        self.batch_size = batch_size
        self.mode = mode
        self.atomic_supported = mode != "continue"

    def read_device(self) -> dict[Key, Item]:
        return device_items(self.client.read_all(self.schema.p4info))

    def diff(self, desired: Mapping[Key, Item]) -> Plan:
        return make_plan(self.schema, desired, self.read_device())

    def sync(
        self, desired: Mapping[Key, Item], confirm: Callable[[Mapping[Key, Item]], bool] | None = None
    ) -> SyncResult:
        """Read the device, plan, write. `confirm` sees what the device holds before anything is
        planned; False leaves the device untouched (`held`, not ok): the loader's deletion guard
        for a device it has not synced since it started."""
        start = time.monotonic()
        result = SyncResult()
        with gcpause.paused():  # every entity read, planned and written: k8s_offload/gcpause.py
            current = self.read_device()
            if confirm is not None and not confirm(current):
                result.ok, result.held, result.reason = False, True, "held by the deletion guard"
                result.duration = time.monotonic() - start
                return result
            plan = make_plan(self.schema, desired, current)
            result.counts = plan.counts()
            if len(plan):
                self._push(plan, current, result)
        result.duration = time.monotonic() - start
        if result.ok:
            result.entries = self._entries(desired)
        return result

    def push(self, plan: Plan, last_good: Mapping[Key, Item]) -> SyncResult:
        """Write a plan made elsewhere (a delta) without reading the device first; `last_good`
        is what the device held before, for compensation."""
        start = time.monotonic()
        result = SyncResult()
        result.counts = plan.counts()
        if len(plan):
            with gcpause.paused():
                self._push(plan, last_good, result)
        result.duration = time.monotonic() - start
        return result

    def _push(self, plan: Plan, last_good: Mapping[Key, Item], result: SyncResult) -> None:
        if self.atomic_supported:
            ops = list(plan.ops())
            atomicity = MODES[self.mode]
            result.mode = "DATAPLANE_ATOMIC" if atomicity == DATAPLANE_ATOMIC else "ROLLBACK_ON_ERROR"
            try:
                self._write(ops, atomicity, result)
                return
            except P4RuntimeRpcError as err:
                if err.code != grpc.StatusCode.UNIMPLEMENTED or self.mode != "auto":
                    self._unknown_outcome(ops, err, last_good, result)
                    return
                log.info("target has no DATAPLANE_ATOMIC; using staged CONTINUE_ON_ERROR writes")
                self.atomic_supported = False
                result.writes -= 1
                result.updates -= len(ops)
            except WriteError as err:
                self._fail(result, ops, err.errors, "the device rejected the batch; it is unchanged")
                return
        result.mode = "CONTINUE_ON_ERROR"
        for batch in plan.batches(self.batch_size):
            try:
                self._write(batch, CONTINUE_ON_ERROR, result)
            except WriteError as err:
                self._fail(result, batch, err.errors, "the device rejected updates")
                self._compensate(last_good, result)
                return
            except P4RuntimeRpcError as err:
                if not self._unknown_outcome(batch, err, last_good, result):
                    return

    def _write(self, ops: list[Op], atomicity: int, result: SyncResult) -> None:
        result.writes += 1
        result.updates += len(ops)
        t0 = time.perf_counter()
        updates = [op.encoded() for op in ops]
        t1 = time.perf_counter()
        try:
            self.client.write(updates, atomicity)
        finally:
            phases = result.phases
            phases["build"] = phases.get("build", 0.0) + t1 - t0
            took = time.perf_counter() - t1
            phases["write"] = phases.get("write", 0.0) + took
            result.write_seconds.append(took)

    def _unknown_outcome(
        self, ops: list[Op], err: P4RuntimeRpcError, last_good: Mapping[Key, Item], result: SyncResult
    ) -> bool:
        """A Write failed without one p4.v1.Error per update (details lost to a metadata limit,
        a deadline, a broken connection, an RPC-wide error): which updates applied is unknown, so
        ask the device. True when every update is there after all (carry on); else the missing
        ones are reported with their objects and the device is compensated. Re-raises `err` when
        we are no longer primary or the device cannot be read either: the next session's full
        sync reconciles then."""
        if err.code == grpc.StatusCode.PERMISSION_DENIED or not self.client.is_primary:
            raise err  # deposed: we may not write, so not compensate either; the next primary reconciles
        try:
            device = self.read_device()
        except (P4RuntimeRpcError, NotPrimaryError):
            raise err from None
        missing = {i for i, op in enumerate(ops) if not applied(op, device)}
        if not missing:
            log.warning("write failed (%s) but all %d updates are on the device", err, len(ops))
            return True
        lost = UpdateError(int(err.code.value[0]), err.message)
        errors = [lost if i in missing else UpdateError(code_pb2.OK) for i in range(len(ops))]
        self._fail(
            result,
            ops,
            tuple(errors),
            f"write failed ({err}); {len(missing)} of {len(ops)} updates not applied",
        )
        self._compensate(last_good, result, device)
        return False

    def _fail(self, result: SyncResult, ops: list[Op], errors: tuple[UpdateError, ...], reason: str) -> None:
        result.ok = False
        result.reason = reason
        for op, err in zip(ops, errors, strict=False):
            if err.ok or err.code == code_pb2.ABORTED:  # collateral of another update's failure
                continue
            what = describe(self.schema, op.item.key)
            result.errors.append(
                EntityError(op.item.origin, what, TYPE_NAMES[op.type], err.code, err.message)
            )
        for e in result.errors[:LOGGED_ERRORS]:
            log.error("%s", e)
        if len(result.errors) > LOGGED_ERRORS:
            log.error("... and %d more rejected updates", len(result.errors) - LOGGED_ERRORS)

    def _compensate(
        self, last_good: Mapping[Key, Item], result: SyncResult, device: Mapping[Key, Item] | None = None
    ) -> None:
        """Undo a partly applied plan: diff the device against the state read before it, push that."""
        try:
            back = make_plan(self.schema, last_good, self.read_device() if device is None else device)
            for batch in back.batches(self.batch_size):
                self._write(batch, CONTINUE_ON_ERROR, result)
            result.compensated = True
            log.warning("compensated: %d updates restored the last good state", len(back))
        except (WriteError, P4RuntimeRpcError, NotPrimaryError) as err:
            result.reason += f"; compensation failed: {err}"
            log.error("compensation failed: %s", err)

    def _entries(self, desired: Mapping[Key, Item]) -> dict[str, int]:
        """Entities per table or profile part (counted per (kind, id) first: one name per part)."""
        parts = Counter(key[:2] for key in desired if key[0] != "default")
        out: dict[str, int] = {}
        for part, n in parts.items():
            name = container(self.schema, part)
            out[name] = out.get(name, 0) + n
        return out
