"""The P4Runtime gRPC service, bound to our message classes.

The p4runtime wheel's `p4runtime_pb2_grpc` imports its own generated `_pb2` modules, which do not
load on current protobuf, so the stub and the server registration are written here against the
method paths of `service P4Runtime` (p4runtime.proto) and `k8s_offload.p4rt.proto`'s classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc

from k8s_offload.p4rt.proto import p4runtime as p4r

SERVICE = "p4.v1.P4Runtime"

MAX_MESSAGE = 256 << 20
"""Largest message either side accepts: a whole plan as one DATAPLANE_ATOMIC batch is ~4 MB per
100k updates (spec §"Guidelines for Implementations": "gRPC Server Maximum Receive Message Size")."""
MAX_METADATA = 64 << 20
"""Largest metadata (trailers) either side accepts. A failed Write carries one p4.v1.Error per
update in its status trailer, ~40-150 bytes each; gRPC's default 8 KiB soft / 16 KiB hard limit
loses the details past ~130 updates and the caller sees RESOURCE_EXHAUSTED instead (spec
§"Guidelines for Implementations": "gRPC Metadata Maximum Size"). Only the receiver's limit
matters, but both sides set it so a server's own client (tests, tools) gets the same."""


def grpc_options() -> list[tuple[str, Any]]:
    """Channel/server arguments of every P4Runtime connection made here, client and server alike."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_metadata_size", MAX_METADATA),
        ("grpc.absolute_max_metadata_size", MAX_METADATA),
    ]


# method -> (request class, response class, request streams, response streams)
_METHODS: dict[str, tuple[Any, Any, bool, bool]] = {
    "Write": (p4r.WriteRequest, p4r.WriteResponse, False, False),
    "Read": (p4r.ReadRequest, p4r.ReadResponse, False, True),
    "SetForwardingPipelineConfig": (
        p4r.SetForwardingPipelineConfigRequest,
        p4r.SetForwardingPipelineConfigResponse,
        False,
        False,
    ),
    "GetForwardingPipelineConfig": (
        p4r.GetForwardingPipelineConfigRequest,
        p4r.GetForwardingPipelineConfigResponse,
        False,
        False,
    ),
    "StreamChannel": (p4r.StreamMessageRequest, p4r.StreamMessageResponse, True, True),
    "Capabilities": (p4r.CapabilitiesRequest, p4r.CapabilitiesResponse, False, False),
}


def method_path(name: str) -> str:
    return f"/{SERVICE}/{name}"


def _serialize(msg: Any) -> bytes:
    """A message's bytes; bytes pass as they are (a request or response assembled by
    `k8s_offload.p4rt.wire` from parts serialized once)."""
    if isinstance(msg, bytes):
        return msg
    data: bytes = msg.SerializeToString()
    return data


class P4RuntimeStub:
    """Client-side callables, one per RPC, as `grpc` multi-callables."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Write = channel.unary_unary(
            method_path("Write"),
            request_serializer=_serialize,
            response_deserializer=p4r.WriteResponse.FromString,
        )
        self.Read = channel.unary_stream(
            method_path("Read"),
            request_serializer=_serialize,
            response_deserializer=p4r.ReadResponse.FromString,
        )
        self.SetForwardingPipelineConfig = channel.unary_unary(
            method_path("SetForwardingPipelineConfig"),
            request_serializer=_serialize,
            response_deserializer=p4r.SetForwardingPipelineConfigResponse.FromString,
        )
        self.GetForwardingPipelineConfig = channel.unary_unary(
            method_path("GetForwardingPipelineConfig"),
            request_serializer=_serialize,
            response_deserializer=p4r.GetForwardingPipelineConfigResponse.FromString,
        )
        self.StreamChannel = channel.stream_stream(
            method_path("StreamChannel"),
            request_serializer=_serialize,
            response_deserializer=p4r.StreamMessageResponse.FromString,
        )
        self.Capabilities = channel.unary_unary(
            method_path("Capabilities"),
            request_serializer=_serialize,
            response_deserializer=p4r.CapabilitiesResponse.FromString,
        )


class P4RuntimeServicer(Protocol):
    """What a server implements; the signatures of grpc's synchronous servicers."""

    def Write(self, request: Any, context: grpc.ServicerContext) -> Any: ...

    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]: ...

    def SetForwardingPipelineConfig(self, request: Any, context: grpc.ServicerContext) -> Any: ...

    def GetForwardingPipelineConfig(self, request: Any, context: grpc.ServicerContext) -> Any: ...

    def StreamChannel(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]: ...

    def Capabilities(self, request: Any, context: grpc.ServicerContext) -> Any: ...


def add_p4runtime_servicer(server: grpc.Server, servicer: P4RuntimeServicer) -> None:
    """Register every RPC of `servicer` on `server` under the `p4.v1.P4Runtime` service name."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for name, (req_cls, _resp, req_stream, resp_stream) in _METHODS.items():
        behavior: Callable[..., Any] = getattr(servicer, name)
        if req_stream and resp_stream:
            make = grpc.stream_stream_rpc_method_handler
        elif resp_stream:
            make = grpc.unary_stream_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        handlers[name] = make(
            behavior, request_deserializer=req_cls.FromString, response_serializer=_serialize
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
