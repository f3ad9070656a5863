"""One device of the embedded target: its pipeline, its P4Runtime state and its data plane.

The state is `k8s_offload.target`'s `TargetState` (validation and table semantics live there); packets
go through the `Interpreter` when the P4 front end can build one for the committed P4Info. Two locks
give the spec's guarantees: `write_lock` serializes Write batches (strict serializability, spec
§"Batching and Ordering of Updates"), `state_lock` makes each update, or a whole DATAPLANE_ATOMIC
batch, atomic with respect to packets (spec §"Atomicity of Individual Write and Read Operations").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from k8s_offload import gcpause
from k8s_offload.p4rt.arbitration import Arbiter
from k8s_offload.p4rt.packet_io import ControllerHeader, controller_headers
from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.state import TargetState

log = logging.getLogger(__name__)

CONTINUE_ON_ERROR = p4r.WriteRequest.CONTINUE_ON_ERROR
ROLLBACK_ON_ERROR = p4r.WriteRequest.ROLLBACK_ON_ERROR
DATAPLANE_ATOMIC = p4r.WriteRequest.DATAPLANE_ATOMIC


class Dataplane(Protocol):
    """Runs one packet against the state it was built with: (egress port or None, bytes)."""

    def process(self, ingress_port: int, data: bytes, time_us: int = 0) -> Any: ...


@dataclass
class Pipeline:
    config: Any  # p4.v1.ForwardingPipelineConfig as committed
    state: TargetState
    dataplane: Dataplane | None
    headers: dict[str, ControllerHeader]
    cpu_port: int | None = None  # the program's CPU_PORT: PacketOut enters here, PacketIn leaves here


class PipelineFactory(Protocol):
    """Builds a pipeline for a config, on `state` (same P4Info, kept as is) when one is given."""

    def __call__(self, config: Any, state: TargetState | None = None) -> Pipeline: ...


def interpreter_pipeline(config: Any, state: TargetState | None = None) -> Pipeline:
    """State plus the behavioral model of our program; state alone if the model cannot be built."""
    headers = controller_headers(config.p4info)
    from k8s_offload.compiler.contract import default_schema
    from k8s_offload.target.p4info_check import describe, p4info_mismatches

    problems = p4info_mismatches(default_schema().p4info, config.p4info)
    if problems:  # sizes, widths or objects the program does not have: refuse (issue 17.5)
        raise ValueError(describe(problems))
    try:
        from k8s_offload.p4 import load_program
        from k8s_offload.target.interpreter import Interpreter

        program = load_program()
        sim = Interpreter(program, config.p4info, state)
        try:
            cpu = program.constant("CPU_PORT").value
            cpu_port = cpu.value if isinstance(cpu.value, int) else None
        except KeyError:
            cpu_port = None
        return Pipeline(config, sim.state, sim, headers, cpu_port)
    except (ImportError, AttributeError) as err:
        log.warning("no behavioral model (%s): packets are not processed", err)
    return Pipeline(config, state or TargetState(config.p4info), None, headers)


def state_only_pipeline(config: Any, state: TargetState | None = None) -> Pipeline:
    return Pipeline(config, state or TargetState(config.p4info), None, controller_headers(config.p4info))


def same_p4info(a: Any, b: Any) -> bool:
    return bool(a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True))


def replay(old: TargetState, new: TargetState) -> None:
    """Copy forwarding state into a new pipeline (RECONCILE_AND_COMMIT); raises on the first misfit."""
    kinds = (
        ("action_profile_member", p4r.Update.INSERT),
        ("action_profile_group", p4r.Update.INSERT),
        ("table_entry", p4r.Update.INSERT),
    )
    for kind, utype in kinds:
        filt = p4r.Entity()
        getattr(filt, kind).SetInParent()
        for entity in old.read(filt):
            new.apply(p4r.Update(type=utype, entity=entity))
    for table_id in old.tables:
        filt = p4r.Entity()
        filt.table_entry.table_id = table_id
        filt.table_entry.is_default_action = True
        for entity in old.read(filt):
            target = new.tables.get(table_id)
            if target is not None and not target.info.const_default and target.profile is None:
                new.apply(p4r.Update(type=p4r.Update.MODIFY, entity=entity))


class Device:
    """Arbitration, pipeline and state of one device id."""

    def __init__(self, device_id: int, factory: PipelineFactory, cpu_port: int | None = None) -> None:
        self.device_id = device_id
        self.arbiter = Arbiter(device_id)
        self.factory = factory
        self._cpu_port = cpu_port  # None: the program's CPU_PORT
        self.pipeline: Pipeline | None = None
        self.saved: Any = None  # VERIFY_AND_SAVE'd config awaiting COMMIT
        self.write_lock = threading.RLock()
        self.state_lock = threading.RLock()
        self.packet_in_sinks: list[Callable[[Any], None]] = []
        self.port_sinks: list[Callable[[int, bytes], None]] = []
        # Called at every point where packets may see the state between updates (tests probe there).
        self.between_updates: list[Callable[[], None]] = []
        self._epoch = time.monotonic()
        self.last_write_seconds = 0.0  # time the last Write spent applying its updates (benchmarks)

    # ---- writes ---------------------------------------------------------------------------------

    def write(self, updates: Sequence[Any], atomicity: int) -> list[tuple[int, str]] | None:
        """Apply a batch; None when all succeeded, else (code, message) per update in request order."""
        assert self.pipeline is not None
        start = time.perf_counter()
        try:
            with gcpause.paused():  # a batch's entries outlive it: k8s_offload/gcpause.py
                return self._write(updates, atomicity)
        finally:
            self.last_write_seconds = time.perf_counter() - start

    def _write(self, updates: Sequence[Any], atomicity: int) -> list[tuple[int, str]] | None:
        assert self.pipeline is not None
        state = self.pipeline.state
        if atomicity == CONTINUE_ON_ERROR:
            results: list[tuple[int, str]] = []
            for update in updates:
                with self.state_lock:
                    try:
                        state.apply(update)
                        results.append((code_pb2.OK, ""))
                    except P4RuntimeError as err:
                        results.append((err.code, err.message))
                self._observe()
            return results if any(c != code_pb2.OK for c, _ in results) else None
        if atomicity == DATAPLANE_ATOMIC:
            with self.state_lock:
                out = self._all_or_none(state, updates)
            self._observe()
            return out
        return self._all_or_none(state, updates, per_update_lock=True)

    def _observe(self) -> None:
        for hook in list(self.between_updates):
            hook()

    def _all_or_none(
        self, state: TargetState, updates: Sequence[Any], per_update_lock: bool = False
    ) -> list[tuple[int, str]] | None:
        """A transaction on the state (`TargetState.begin`): the first failure rolls back all."""
        state.begin()
        done = 0
        try:
            for update in updates:
                if per_update_lock:
                    with self.state_lock:
                        state.apply(update)
                    self._observe()
                else:
                    state.apply(update)
                done += 1
        except P4RuntimeError as err:
            with self.state_lock:
                state.rollback()
            # Short: one of these per update travels in the status trailer (errors.batch_status).
            aborted = (code_pb2.ABORTED, f"rolled back: update {done} failed")
            out = [aborted] * len(updates)
            out[done] = (err.code, err.message)
            return out
        except BaseException:
            with self.state_lock:
                state.rollback()
            raise
        state.commit()
        return None

    def read(self, entity: Any) -> list[Any]:
        assert self.pipeline is not None
        with self.state_lock:
            return self.pipeline.state.read(entity)

    def read_encoded(self, entity: Any) -> list[bytes]:
        """`read`, each Entity serialized."""
        assert self.pipeline is not None
        with self.state_lock:
            return self.pipeline.state.read_encoded(entity)

    # ---- pipeline -------------------------------------------------------------------------------

    def set_pipeline(self, action: int, config: Any, has_config: bool) -> None:
        """SetForwardingPipelineConfig actions (spec §"SetForwardingPipelineConfig RPC")."""
        req = p4r.SetForwardingPipelineConfigRequest
        needs_config = (req.VERIFY, req.VERIFY_AND_SAVE, req.VERIFY_AND_COMMIT, req.RECONCILE_AND_COMMIT)
        if action in needs_config and (not has_config or not config.HasField("p4info")):
            raise P4RuntimeError(code_pb2.INVALID_ARGUMENT, "a config with a P4Info is required")
        if action == req.COMMIT:
            if has_config:
                raise P4RuntimeError(code_pb2.INVALID_ARGUMENT, "COMMIT takes no config")
            if self.saved is None:
                raise P4RuntimeError(code_pb2.NOT_FOUND, "no saved config to commit")
            config, action = self.saved, req.VERIFY_AND_COMMIT
        elif action not in needs_config:
            raise P4RuntimeError(code_pb2.INVALID_ARGUMENT, f"unknown action {action}")
        if action in (req.VERIFY, req.VERIFY_AND_SAVE):
            self._realize(config)
            if action == req.VERIFY_AND_SAVE:
                self.saved = config
            return
        with self.write_lock:
            old = self.pipeline if action == req.RECONCILE_AND_COMMIT else None
            # The same P4Info keeps the very state object (nothing to copy); another one is replayed.
            keep = old is not None and same_p4info(old.config.p4info, config.p4info)
            new = self._realize(config, old.state if keep and old is not None else None)
            with self.state_lock:
                if old is not None and not keep:
                    try:
                        replay(old.state, new.state)
                    except P4RuntimeError as err:
                        raise P4RuntimeError(
                            code_pb2.INVALID_ARGUMENT, f"forwarding state cannot be preserved: {err.message}"
                        ) from err
                self.pipeline = new
                self.saved = None

    def _realize(self, config: Any, state: TargetState | None = None) -> Pipeline:
        try:
            return self.factory(config, state)
        except Exception as err:
            raise P4RuntimeError(code_pb2.INVALID_ARGUMENT, f"config cannot be realized: {err}") from err

    # ---- packets --------------------------------------------------------------------------------

    @property
    def cpu_port(self) -> int | None:
        """The port PacketOut enters on and PacketIn leaves by: given, else the program's CPU_PORT."""
        if self._cpu_port is not None:
            return self._cpu_port
        return self.pipeline.cpu_port if self.pipeline is not None else None

    def inject(self, port: int, data: bytes) -> tuple[int | None, bytes]:
        """One packet into the data plane; its output goes to PacketIn (CPU port) or port sinks."""
        pipe = self.pipeline
        if pipe is None or pipe.dataplane is None:
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, "this pipeline has no behavioral model")
        now_us = int((time.monotonic() - self._epoch) * 1e6)
        with self.state_lock:
            result = pipe.dataplane.process(port, data, now_us)
        egress, out = result.egress_port, result.data
        if egress is None:
            return None, b""
        if egress == self.cpu_port and egress is not None and "packet_in" in pipe.headers:
            metadata, payload = pipe.headers["packet_in"].unpack(out)
            msg = p4r.StreamMessageResponse()
            msg.packet.payload = payload
            msg.packet.metadata.extend(metadata)
            for sink in list(self.packet_in_sinks):
                sink(msg)
        else:
            for port_sink in list(self.port_sinks):
                port_sink(egress, out)
        return egress, out

    def packet_out(self, packet: Any) -> None:
        """A PacketOut enters on the CPU port behind its `packet_out` header, as bmv2 does it."""
        pipe = self.pipeline
        if pipe is None:
            raise P4RuntimeError(code_pb2.FAILED_PRECONDITION, "no pipeline")
        cpu_port = self.cpu_port
        if cpu_port is None:
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, "the program declares no CPU_PORT")
        header = pipe.headers.get("packet_out")
        prefix = header.pack(packet.metadata) if header is not None else b""
        self.inject(cpu_port, prefix + packet.payload)
