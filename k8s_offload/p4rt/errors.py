"""P4Runtime error reporting (spec §"Error Reporting Messages", §"Write RPC / Error Reporting").

A failed batch comes back as gRPC status UNKNOWN whose `grpc-status-details-bin` trailer holds a
`google.rpc.Status` with one `p4.v1.Error` per update, in request order. Both sides live here so
the embedded server and the client agree on the encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from k8s_offload.p4rt.proto import code_pb2, status_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r

DETAILS_KEY = "grpc-status-details-bin"
P4_ERROR_TYPE_URL = "type.googleapis.com/p4.v1.Error"


def code_name(code: int) -> str:
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)


@dataclass(frozen=True, slots=True)
class UpdateError:
    """The outcome of one update of a batch; `code` 0 means it was applied."""

    code: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.code == code_pb2.OK)

    def __str__(self) -> str:
        return f"{code_name(self.code)}: {self.message}" if self.message else code_name(self.code)


class P4RuntimeRpcError(Exception):
    """An RPC failed as a whole (no per-update details): the gRPC code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code.name}: {message}")


class WriteError(Exception):
    """A Write whose updates partly or wholly failed; `errors` is aligned with the request's updates."""

    def __init__(self, message: str, errors: Sequence[UpdateError]) -> None:
        self.errors = tuple(errors)
        failed = sum(not e.ok for e in self.errors)
        super().__init__(f"{message} ({failed} of {len(self.errors)} updates failed)")

    def failed(self) -> list[tuple[int, UpdateError]]:
        return [(i, e) for i, e in enumerate(self.errors) if not e.ok]


# ---- server side -------------------------------------------------------------------------------


def batch_status(message: str, errors: Sequence[tuple[int, str]]) -> Any:
    """google.rpc.Status UNKNOWN carrying one p4.v1.Error per (code, message), in order."""
    status = status_pb2.Status(code=code_pb2.UNKNOWN, message=message)
    for code, text in errors:
        err = p4r.Error(canonical_code=code)
        if code != code_pb2.OK:
            err.message = text
        status.details.add(type_url=P4_ERROR_TYPE_URL, value=err.SerializeToString())
    return status


def abort_with_details(context: grpc.ServicerContext, status: Any) -> None:
    """End the RPC with `status` as both gRPC status and binary details, like C++ SetErrorDetails."""
    context.set_trailing_metadata(((DETAILS_KEY, status.SerializeToString()),))
    context.set_code(grpc_code(status.code))
    context.set_details(status.message)


def grpc_code(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a google.rpc code (UNKNOWN for one gRPC does not know)."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


# ---- client side -------------------------------------------------------------------------------


def _details(err: grpc.RpcError) -> Any | None:
    trailers: Any = err.trailing_metadata() if isinstance(err, grpc.Call) else None
    for key, value in trailers or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def decode_rpc_error(err: grpc.RpcError, n_updates: int | None = None) -> WriteError | P4RuntimeRpcError:
    """A WriteError when the status carries p4.v1.Error details, else a P4RuntimeRpcError."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (err.details() if isinstance(err, grpc.Call) else str(err)) or ""
    status = _details(err)
    if status is None or not status.details:
        return P4RuntimeRpcError(code, message)
    errors: list[UpdateError] = []
    for detail in status.details:
        if not detail.type_url.endswith("p4.v1.Error"):
            continue
        p4err = p4r.Error.FromString(detail.value)
        errors.append(UpdateError(p4err.canonical_code, p4err.message))
    if n_updates is not None and len(errors) != n_updates:
        # Not one outcome per update (spec §"Write RPC / Error Reporting"): which updates applied
        # is unknown, exactly as when the details are missing altogether.
        return P4RuntimeRpcError(code, f"{message} ({len(errors)} error details for {n_updates} updates)")
    return WriteError(message or "write failed", errors)


def decode_read_error(err: grpc.RpcError) -> P4RuntimeRpcError:
    """A failed Read as one error: the RPC's code, naming the failed requests of the batch."""
    decoded = decode_rpc_error(err)
    if isinstance(decoded, P4RuntimeRpcError):
        return decoded
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    failed = "; ".join(f"request {i}: {e}" for i, e in decoded.failed())
    return P4RuntimeRpcError(code, failed)
