"""A threaded P4Runtime client: one StreamChannel for arbitration and packet I/O, unary RPCs beside it.

The stream decides whether we may write (spec §"Client Arbitration Update"): the flag `is_primary`
follows every MasterArbitrationUpdate the server sends, and `write` refuses to send anything
while it is false, so losing primary stops writes before the server has to reject them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from k8s_offload.p4rt import wire
from k8s_offload.p4rt.arbitration import election_id_of, set_election_id
from k8s_offload.p4rt.errors import P4RuntimeRpcError, WriteError, decode_read_error, decode_rpc_error
from k8s_offload.p4rt.grpc_api import P4RuntimeStub, grpc_options
from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.p4rt.tls import check_tls_files, explain_connect_failure

log = logging.getLogger(__name__)

CONTINUE_ON_ERROR = p4r.WriteRequest.CONTINUE_ON_ERROR
ROLLBACK_ON_ERROR = p4r.WriteRequest.ROLLBACK_ON_ERROR
DATAPLANE_ATOMIC = p4r.WriteRequest.DATAPLANE_ATOMIC
VERIFY_AND_COMMIT = p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT
RECONCILE_AND_COMMIT = p4r.SetForwardingPipelineConfigRequest.RECONCILE_AND_COMMIT
_END = object()

MIN_WRITE_RATE = 1000.0
"""Updates per second assumed of the slowest target when sizing a Write deadline."""
READ_DEADLINE = 300.0
"""Seconds a wildcard Read of the whole device may stream (100k entities read back in ~5 s here)."""


class NotPrimaryError(Exception):
    """This client is not (or no longer) the primary for its device and role."""


@dataclass(frozen=True, slots=True)
class Arbitration:
    """Our standing for (device, role): `status` is primary, backup (another controller is
    primary), no_primary (the primary left; only an id >= `primary_election_id` takes the role
    again, spec §7.3), disconnected or unknown."""

    device_id: int
    role: str
    election_id: int
    primary_election_id: int | None
    status: str

    def explain(self) -> str:
        """One line for logs and /readyz: who is primary and how to take over."""
        role = f"device {self.device_id} role {self.role!r}"
        ours = f"our election id is {self.election_id}"
        top = self.primary_election_id
        if self.status == "primary":
            return f"primary for {role} ({ours})"
        if self.status == "backup" and top is not None:
            return (
                f"backup for {role}: the controller with election id {top} is primary ({ours}); "
                f"to take over, stop it or restart the loader with --election-id {top + 1} or higher"
            )
        if self.status == "no_primary" and top is not None:
            return (
                f"no primary for {role}: the device's highest election id is {top} ({ours}); "
                f"only --election-id {top} or higher becomes primary (or restart the device)"
            )
        return f"{self.status} for {role} ({ours})"


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """PEM files: the CA that signed the server; our certificate and key for mTLS."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    def check(self) -> None:
        """ValueError naming the option and file when the material is incomplete or unusable."""
        check_tls_files(self.ca, self.cert, self.key)

    def credentials(self) -> grpc.ChannelCredentials:
        self.check()  # gRPC aborts the process for a certificate without its key

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


class P4RuntimeClient:
    """Connection to one (device_id, role) of a P4Runtime server."""

    def __init__(
        self,
        address: str,
        device_id: int = 1,
        election_id: int = 1,
        role: str = "",
        *,
        tls: TlsOptions | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.address = address
        self.tls = tls
        self.device_id = device_id
        self.election_id = election_id
        self.role = role
        self.timeout = timeout
        options = grpc_options()
        if tls is None:
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self.channel = grpc.secure_channel(address, tls.credentials(), options=options)
        self.stub = P4RuntimeStub(self.channel)
        self.packet_ins: queue.Queue[Any] = queue.Queue()
        self.stream_errors: queue.Queue[Any] = queue.Queue()
        self.on_primary_change: list[Callable[[bool], None]] = []
        self._primary = False
        self._connected = False
        self._arbitrated = threading.Event()
        self._requests: queue.Queue[Any] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stream: Any = None
        # From the last MasterArbitrationUpdate: the highest election id the device has seen for
        # our (device, role) (the primary's, if there is one), and the status code it gave us.
        self.primary_election_id: int | None = None
        self.arbitration_code: int | None = None
        self.on_arbitration: list[Callable[[], None]] = []
        self.stream_status: grpc.StatusCode | None = None

    # ---- session ------------------------------------------------------------------------------

    @property
    def is_primary(self) -> bool:
        return self._primary and self._connected

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout: float | None = None) -> bool:
        """Open the stream and arbitrate; True when we became primary. Raises P4RuntimeRpcError."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout or self.timeout)
        except grpc.FutureTimeoutError:
            raise P4RuntimeRpcError(grpc.StatusCode.UNAVAILABLE, self._why_unreachable()) from None
        self._arbitrated.clear()
        self.stream_status = None
        self._requests = queue.Queue()
        self._stream = self.stub.StreamChannel(self._request_iter(self._requests))
        self._connected = True
        self._reader = threading.Thread(target=self._read_stream, args=(self._stream,), daemon=True)
        self._reader.start()
        self.send_arbitration()
        if not self._arbitrated.wait(timeout or self.timeout):
            raise P4RuntimeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "no arbitration response")
        if not self._connected:
            code = self.stream_status or grpc.StatusCode.UNAVAILABLE
            raise P4RuntimeRpcError(code, "the server closed the stream during arbitration")
        return self.is_primary

    def _why_unreachable(self) -> str:
        """gRPC's reason for the channel not getting ready (TLS, refused, ...) as one line: a
        fail-fast RPC carries the last connection error that channel_ready_future does not."""
        try:
            self.stub.Capabilities(p4r.CapabilitiesRequest(), timeout=self.timeout)
            last = "the channel did not become ready in time"
        except grpc.RpcError as err:
            last = (err.details() if isinstance(err, grpc.Call) else str(err)) or ""
        return explain_connect_failure(self.address, last, self.tls is not None)

    def send_arbitration(self, election_id: int | None = None) -> None:
        if election_id is not None:
            self.election_id = election_id
        req = p4r.StreamMessageRequest()
        arb = req.arbitration
        arb.device_id = self.device_id
        if self.role:
            arb.role.name = self.role
        set_election_id(arb.election_id, self.election_id)
        self._requests.put(req)

    @staticmethod
    def _request_iter(requests: queue.Queue[Any]) -> Iterator[Any]:
        while True:
            item = requests.get()
            if item is _END:
                return
            yield item

    def _read_stream(self, stream: Any) -> None:
        try:
            for msg in stream:
                which = msg.WhichOneof("update")
                if which == "arbitration":
                    self._on_arbitration(msg.arbitration)
                elif which == "packet":
                    self.packet_ins.put(msg.packet)
                elif which == "error":
                    log.warning("stream error: %s", msg.error.message)
                    self.stream_errors.put(msg.error)
        except grpc.RpcError as err:
            self.stream_status = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            if self.stream_status != grpc.StatusCode.CANCELLED:
                log.warning("stream to %s ended: %s", self.address, self.stream_status)
        finally:
            if stream is self._stream:
                self._connected = False
                self._set_primary(False)
                self._arbitrated.set()

    def _on_arbitration(self, arb: Any) -> None:
        self.primary_election_id = election_id_of(arb.election_id) if arb.HasField("election_id") else None
        self.arbitration_code = arb.status.code
        self._set_primary(arb.status.code == code_pb2.OK)
        for callback in list(self.on_arbitration):
            callback()
        self._arbitrated.set()

    def arbitration(self) -> Arbitration:
        """Where this client stands, from the server's last MasterArbitrationUpdate (spec §7.2)."""
        if not self._connected:
            status = "disconnected"
        elif self.is_primary:
            status = "primary"
        elif self.arbitration_code == code_pb2.ALREADY_EXISTS:
            status = "backup"
        elif self.arbitration_code == code_pb2.NOT_FOUND:
            status = "no_primary"
        else:
            status = "unknown"
        return Arbitration(self.device_id, self.role, self.election_id, self.primary_election_id, status)

    def _set_primary(self, value: bool) -> None:
        changed = value != self._primary
        self._primary = value
        if changed:
            log.info(
                "device %d role %r: %s", self.device_id, self.role, "primary" if value else "not primary"
            )
            for callback in list(self.on_primary_change):
                callback(value)

    def close(self) -> None:
        self._requests.put(_END)
        if self._stream is not None:
            self._stream.cancel()
        self._connected = False
        self.channel.close()

    def __enter__(self) -> P4RuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- unary RPCs ---------------------------------------------------------------------------

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise decode_rpc_error(err) from None

    def capabilities(self) -> str:
        resp = self._call(self.stub.Capabilities, p4r.CapabilitiesRequest())
        return str(resp.p4runtime_api_version)

    def get_pipeline(self, response_type: int = p4r.GetForwardingPipelineConfigRequest.ALL) -> Any | None:
        """The device's ForwardingPipelineConfig, or None when it has none (spec: config unset)."""
        req = p4r.GetForwardingPipelineConfigRequest(device_id=self.device_id, response_type=response_type)
        resp = self._call(self.stub.GetForwardingPipelineConfig, req)
        return resp.config if resp.HasField("config") else None

    def set_pipeline(
        self, p4info: Any, device_config: bytes = b"", cookie: int = 0, action: int = VERIFY_AND_COMMIT
    ) -> None:
        req = p4r.SetForwardingPipelineConfigRequest(device_id=self.device_id, role=self.role, action=action)
        set_election_id(req.election_id, self.election_id)
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = device_config
        req.config.cookie.cookie = cookie
        self._call(self.stub.SetForwardingPipelineConfig, req)

    def commit_pipeline(self) -> None:
        """SetForwardingPipelineConfig COMMIT, which takes no config: realize the one saved but not
        committed (spec §16; NOT_FOUND when there is none)."""
        req = p4r.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, role=self.role, action=p4r.SetForwardingPipelineConfigRequest.COMMIT
        )
        set_election_id(req.election_id, self.election_id)
        self._call(self.stub.SetForwardingPipelineConfig, req)

    def write(self, updates: Sequence[Any], atomicity: int = CONTINUE_ON_ERROR) -> None:
        """One batch of `p4.v1.Update`s, each a message or its serialized bytes (what a big batch
        is cheapest built from, `wire.update`). Raises WriteError (per-update errors in request
        order), P4RuntimeRpcError or NotPrimaryError (checked before sending: a deposed client
        must not write)."""
        if not self.is_primary:
            raise NotPrimaryError(f"not primary for device {self.device_id} role {self.role!r}")
        header = p4r.WriteRequest(device_id=self.device_id, role=self.role, atomicity=atomicity)
        set_election_id(header.election_id, self.election_id)
        request = wire.write_request(
            header.SerializeToString(),
            (u if isinstance(u, bytes) else u.SerializeToString() for u in updates),
        )
        # A fixed deadline fails big batches (298k updates on a size-M first sync), so the deadline
        # grows with the batch at a rate any target sustains.
        deadline = self.timeout + len(updates) / MIN_WRITE_RATE
        try:
            self.stub.Write(request, timeout=deadline)
        except grpc.RpcError as err:
            raise decode_rpc_error(err, len(updates)) from None

    def read(self, entities: Iterable[Any]) -> Iterator[Any]:
        req = p4r.ReadRequest(device_id=self.device_id, role=self.role)
        req.entities.extend(entities)
        try:
            for resp in self.stub.Read(req, timeout=max(self.timeout, READ_DEADLINE)):
                yield from resp.entities
        except grpc.RpcError as err:
            raise decode_read_error(err) from None

    def read_all(self, p4info: Any, defaults: bool = True) -> list[Any]:
        """Wildcard reads of every table (and its default entry) and every action profile."""
        filters: list[Any] = []
        for prof in p4info.action_profiles:
            member, group = p4r.Entity(), p4r.Entity()
            member.action_profile_member.action_profile_id = prof.preamble.id
            group.action_profile_group.action_profile_id = prof.preamble.id
            filters += [member, group]
        for table in p4info.tables:
            ent = p4r.Entity()
            ent.table_entry.table_id = table.preamble.id
            filters.append(ent)
            if defaults and not table.const_default_action_id and not table.implementation_id:
                dflt = p4r.Entity()
                dflt.table_entry.table_id = table.preamble.id
                dflt.table_entry.is_default_action = True
                filters.append(dflt)
        return list(self.read(filters))

    def packet_out(self, payload: bytes, metadata: Iterable[tuple[int, int]] = ()) -> None:
        req = p4r.StreamMessageRequest()
        req.packet.payload = payload
        for mid, value in metadata:
            req.packet.metadata.add(
                metadata_id=mid, value=value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
            )
        self._requests.put(req)


__all__ = [
    "CONTINUE_ON_ERROR",
    "DATAPLANE_ATOMIC",
    "RECONCILE_AND_COMMIT",
    "ROLLBACK_ON_ERROR",
    "VERIFY_AND_COMMIT",
    "Arbitration",
    "NotPrimaryError",
    "P4RuntimeClient",
    "P4RuntimeRpcError",
    "TlsOptions",
    "WriteError",
]
