"""The embedded P4Runtime target: a real gRPC server over `k8s_offload.target`, for tests and the demo.

It implements what it offers the way the spec says (sections cited per RPC), including the two
optional batch atomicity modes that bmv2, Stratum and infrap4d lack; `continue_on_error_only`
makes it answer UNIMPLEMENTED for those, so the loader's fallback is tested against the same
behaviour as real targets (spec §"Batch Atomicity").
"""

from __future__ import annotations

import importlib.metadata
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from k8s_offload.p4rt import wire
from k8s_offload.p4rt.arbitration import ArbitrationError, Controller, election_id_of
from k8s_offload.p4rt.errors import abort_with_details, batch_status, grpc_code
from k8s_offload.p4rt.grpc_api import add_p4runtime_servicer, grpc_options
from k8s_offload.p4rt.packet_io import PacketMetadataError
from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.p4rt.tls import TlsFlags, check_tls_files
from k8s_offload.target.device import CONTINUE_ON_ERROR, Device, PipelineFactory, interpreter_pipeline
from k8s_offload.target.errors import P4RuntimeError

log = logging.getLogger(__name__)

API_VERSION = importlib.metadata.version("p4runtime")
"""The P4Runtime API we implement: that of the p4runtime package whose schema we serve."""
READ_CHUNK = 1000
MAX_STREAMS = 16
"""StreamChannels served at once (each holds a worker thread and a reader thread)."""
UNARY_WORKERS = 16
"""Worker threads beyond the streams' own, for Write, Read and the pipeline RPCs."""
ARBITRATION_TIMEOUT = 10.0
"""Seconds a new StreamChannel may stay silent before its first MasterArbitrationUpdate."""
_CLOSE = object()


class TargetServicer:
    """P4Runtime service for a set of devices."""

    def __init__(
        self,
        device_ids: Iterable[int] = (1,),
        *,
        continue_on_error_only: bool = False,
        factory: PipelineFactory = interpreter_pipeline,
        cpu_port: int | None = None,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.devices = {d: Device(d, factory, cpu_port) for d in device_ids}
        self.continue_on_error_only = continue_on_error_only
        self.write_count = 0  # Write RPCs served, for tests that count round trips
        self.max_streams = max_streams
        self._streams = threading.BoundedSemaphore(max_streams)

    def _device(self, device_id: int, context: grpc.ServicerContext) -> Device:
        dev = self.devices.get(device_id)
        if dev is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown device_id {device_id}")
        assert dev is not None
        return dev

    def _check_primary(self, dev: Device, request: Any, context: grpc.ServicerContext) -> None:
        """Spec §"Write RPC" checks 1-2: known role, then the sender must be the primary."""
        if not dev.arbiter.has_role(request.role):
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"no controller has arbitrated for role {request.role!r}"
            )
        eid = election_id_of(request.election_id) if request.HasField("election_id") else None
        if not dev.arbiter.is_primary(request.role, eid):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not the primary for this device and role")

    # ---- unary RPCs -----------------------------------------------------------------------------

    def Write(self, request: Any, context: grpc.ServicerContext) -> Any:
        dev = self._device(request.device_id, context)
        with dev.write_lock:
            self._check_primary(dev, request, context)
            if dev.pipeline is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
            if self.continue_on_error_only and request.atomicity != CONTINUE_ON_ERROR:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "only CONTINUE_ON_ERROR is supported")
            self.write_count += 1
            errors = dev.write(request.updates, request.atomicity)
        if errors is not None:
            abort_with_details(context, batch_status("write failure", errors))
        return p4r.WriteResponse()

    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """Spec §"Read RPC" / "Batch Processing": each request is answered on its own; entities of
        the valid ones stream back in chunks, and failed requests end the RPC with one p4.v1.Error
        per request (OK for the others). A lone request's failure is the RPC's own code (e.g. the
        INVALID_ARGUMENT an empty Entity must get, §"Wildcard Reads"); several give UNKNOWN."""
        dev = self._device(request.device_id, context)
        if dev.pipeline is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
        pending: list[bytes] = []  # serialized Entities not sent yet
        outcomes: list[tuple[int, str]] = []
        for entity in request.entities:
            try:
                found = dev.read_encoded(entity)
            except P4RuntimeError as err:
                outcomes.append((err.code, err.message))
                continue
            outcomes.append((code_pb2.OK, ""))
            pending += found
            if len(pending) >= READ_CHUNK:
                full = len(pending) - len(pending) % READ_CHUNK
                for i in range(0, full, READ_CHUNK):
                    yield wire.read_response(pending[i : i + READ_CHUNK])
                del pending[:full]
        if pending or not request.entities:
            yield wire.read_response(pending)
        failed = [(code, text) for code, text in outcomes if code != code_pb2.OK]
        if failed:
            status = batch_status("read failure", outcomes)
            if len(outcomes) == 1:
                status.code, status.message = failed[0][0], failed[0][1]
            abort_with_details(context, status)

    def SetForwardingPipelineConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        dev = self._device(request.device_id, context)
        self._check_primary(dev, request, context)
        try:
            dev.set_pipeline(request.action, request.config, request.HasField("config"))
        except P4RuntimeError as err:
            context.abort(grpc_code(err.code), err.message)
        return p4r.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        dev = self._device(request.device_id, context)
        out = p4r.GetForwardingPipelineConfigResponse()
        pipe = dev.pipeline
        if pipe is None:
            return out  # spec: config left unset while none is known
        kind = request.response_type
        rt = p4r.GetForwardingPipelineConfigRequest
        out.config.cookie.CopyFrom(pipe.config.cookie)
        if kind in (rt.ALL, rt.P4INFO_AND_COOKIE):
            out.config.p4info.CopyFrom(pipe.config.p4info)
        if kind in (rt.ALL, rt.DEVICE_CONFIG_AND_COOKIE):
            out.config.p4_device_config = pipe.config.p4_device_config
        return out

    def Capabilities(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Spec §"Capabilities RPC": the API version we implement; NOT_FOUND for an unknown device."""
        if request.device_id:
            self._device(request.device_id, context)
        return p4r.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    # ---- stream ---------------------------------------------------------------------------------

    def StreamChannel(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """Arbitration and packet I/O on one stream (spec §"Client Arbitration Update", §"Packet I/O").

        A stream holds a worker thread for its whole life, so what a peer can hold is bounded: at
        most `max_streams` streams (more get RESOURCE_EXHAUSTED, spec §"Rules for Handling
        MasterArbitrationUpdate Messages": "exceeds the supported limit"), and a stream that has
        not arbitrated within ARBITRATION_TIMEOUT seconds is ended with DEADLINE_EXCEEDED. The
        pool has UNARY_WORKERS threads beyond the streams, so Write and Read are always served."""
        if not self._streams.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this target serves at most {self.max_streams} StreamChannels; close one first",
            )
        try:
            yield from self._stream(requests, context)
        finally:
            self._streams.release()

    def _stream(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        outbox: queue.Queue[Any] = queue.Queue()
        session = _Session(self, outbox)
        context.add_callback(lambda: outbox.put(_CLOSE))
        reader = threading.Thread(target=session.consume, args=(requests,), daemon=True)
        reader.start()
        deadline = time.monotonic() + ARBITRATION_TIMEOUT
        try:
            while True:
                try:
                    wait = None if session.ctrl is not None else max(0.0, deadline - time.monotonic())
                    item = outbox.get(timeout=wait)
                except queue.Empty:
                    if session.ctrl is not None:
                        continue
                    context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"no MasterArbitrationUpdate within {ARBITRATION_TIMEOUT:g} s of opening the stream",
                    )
                if item is _CLOSE:
                    break
                if isinstance(item, ArbitrationError):
                    context.abort(grpc_code(item.code), item.message)
                yield item
        finally:
            session.close()


class _Session:
    """The controller behind one StreamChannel: its arbitration and its PacketIn subscription."""

    def __init__(self, servicer: TargetServicer, outbox: queue.Queue[Any]) -> None:
        self.servicer = servicer
        self.outbox = outbox
        self.device: Device | None = None
        self.ctrl: Controller | None = None
        self._lock = threading.Lock()

    def consume(self, requests: Iterator[Any]) -> None:
        try:
            for req in requests:
                which = req.WhichOneof("update")
                if which == "arbitration":
                    if not self._arbitrate(req.arbitration):
                        return
                elif which == "packet":
                    self._packet_out(req.packet)
        except grpc.RpcError:
            pass
        finally:
            self.outbox.put(_CLOSE)

    def _arbitrate(self, msg: Any) -> bool:
        dev = self.device or self.servicer.devices.get(msg.device_id)
        try:
            if dev is None:
                raise ArbitrationError(code_pb2.NOT_FOUND, f"unknown device_id {msg.device_id}")
            with dev.write_lock:  # in-flight writes of a previous primary finish first (spec §7.3)
                self.ctrl = dev.arbiter.update(self.ctrl, msg, self.outbox.put)
        except ArbitrationError as err:
            self.outbox.put(err)
            return False
        if self.device is None:
            self.device = dev
            dev.packet_in_sinks.append(self._packet_in)
        return True

    def _is_primary(self) -> bool:
        ctrl, dev = self.ctrl, self.device
        return ctrl is not None and dev is not None and dev.arbiter.is_primary(ctrl.role, ctrl.election_id)

    def _packet_in(self, msg: Any) -> None:
        if self._is_primary():
            self.outbox.put(msg)

    def _packet_out(self, packet: Any) -> None:
        dev = self.device
        err = p4r.StreamMessageResponse()
        err.error.packet_out.packet_out.CopyFrom(packet)
        if dev is None or not self._is_primary():
            err.error.canonical_code = code_pb2.PERMISSION_DENIED
            err.error.message = "only the primary may send PacketOut"
            self.outbox.put(err)
            return
        try:
            dev.packet_out(packet)
        except PacketMetadataError as exc:
            err.error.canonical_code, err.error.message = code_pb2.INVALID_ARGUMENT, str(exc)
            self.outbox.put(err)
        except P4RuntimeError as exc:
            err.error.canonical_code, err.error.message = exc.code, exc.message
            self.outbox.put(err)

    def close(self) -> None:
        with self._lock:
            dev, ctrl = self.device, self.ctrl
            self.device = self.ctrl = None
        if dev is not None:
            if self._packet_in in dev.packet_in_sinks:
                dev.packet_in_sinks.remove(self._packet_in)
            if ctrl is not None:
                with dev.write_lock:
                    dev.arbiter.leave(ctrl)


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM files: our certificate and key; with `client_ca`, clients must present a certificate it
    signed (mutual TLS) and are refused during the handshake otherwise."""

    cert: str
    key: str
    client_ca: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        check_tls_files(self.client_ca, self.cert, self.key, TlsFlags(ca="--tls-client-ca"))
        ca = Path(self.client_ca).read_bytes() if self.client_ca else None
        pair = (Path(self.key).read_bytes(), Path(self.cert).read_bytes())
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


class EmbeddedTarget:
    """The target as a gRPC server in this process: `with EmbeddedTarget() as sw: sw.address`."""

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        device_ids: Iterable[int] = (1,),
        continue_on_error_only: bool = False,
        factory: PipelineFactory = interpreter_pipeline,
        max_streams: int = MAX_STREAMS,
        tls: ServerTls | None = None,
    ) -> None:
        self.tls = tls
        self.servicer = TargetServicer(
            device_ids,
            continue_on_error_only=continue_on_error_only,
            factory=factory,
            max_streams=max_streams,
        )
        self._listen = listen
        self._max_workers = max_streams + UNARY_WORKERS
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        host = self._listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def device(self, device_id: int = 1) -> Device:
        return self.servicer.devices[device_id]

    def start(self) -> EmbeddedTarget:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="p4rt"),
            # No SO_REUSEPORT: a second server on a taken port must fail, not share it (the kernel
            # would split clients between two devices). Keepalive pings find dead peers, whose
            # streams would otherwise hold their threads.
            options=[
                *grpc_options(),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000),
            ],
            maximum_concurrent_rpcs=self._max_workers * 4,
        )
        add_p4runtime_servicer(server, self.servicer)
        try:
            if self.tls is None:
                self.port = server.add_insecure_port(self._listen)
            else:
                self.port = server.add_secure_port(self._listen, self.tls.credentials())
        except RuntimeError:  # grpcio >= 1.50 raises where older versions returned 0
            self.port = 0
        if self.port == 0:
            server.stop(None)
            raise OSError(f"cannot listen on {self._listen}: address in use or not available")
        server.start()
        self._server = server
        log.info(
            "embedded P4Runtime target listening on %s (%s)",
            self.address,
            "plaintext" if self.tls is None else "mTLS" if self.tls.client_ca else "TLS",
        )
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> EmbeddedTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
