"""What one peer can hold on the embedded target is bounded (issue 17.5).

Each StreamChannel holds a worker thread for its life. Before, 32 idle streams took every worker
and locked every controller out. Now at most MAX_STREAMS streams are served (more are refused
with RESOURCE_EXHAUSTED, spec §"Rules for Handling MasterArbitrationUpdate Messages"), a stream
that never arbitrates is ended, and Write/Read keep workers of their own.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt.arbitration import set_election_id
from k8s_offload.p4rt.grpc_api import P4RuntimeStub
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target import server as server_module
from k8s_offload.target.server import MAX_STREAMS, EmbeddedTarget
from tests.embedded_fixtures import connect

_END = object()


class RawStream:
    """A StreamChannel that optionally arbitrates once and then says nothing."""

    def __init__(self, address: str, election_id: int | None) -> None:
        self.channel = grpc.insecure_channel(address)
        self.requests: queue.Queue[Any] = queue.Queue()
        self.responses: list[Any] = []
        self.code: grpc.StatusCode | None = None
        self.ended = threading.Event()
        if election_id is not None:
            req = p4r.StreamMessageRequest()
            req.arbitration.device_id = 1
            set_election_id(req.arbitration.election_id, election_id)
            self.requests.put(req)
        self.call = P4RuntimeStub(self.channel).StreamChannel(self._iter())
        threading.Thread(target=self._read, daemon=True).start()

    def _iter(self) -> Iterator[Any]:
        while (item := self.requests.get()) is not _END:
            yield item

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.responses.append(msg)
        except grpc.RpcError as err:
            self.code = err.code()
        self.ended.set()

    def close(self) -> None:
        self.requests.put(_END)
        self.call.cancel()
        self.channel.close()


def test_idle_streams_cannot_lock_the_primary_out(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    loader = connect(switch.address, election_id=1000, p4info=p4info)
    streams = [RawStream(switch.address, election_id=i + 1) for i in range(2 * MAX_STREAMS + 8)]
    try:
        expected = len(streams) - (MAX_STREAMS - 1)  # the loader holds one stream
        deadline = time.monotonic() + 20
        while sum(s.ended.is_set() for s in streams) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [s for s in streams if s.ended.is_set()]
        assert len(refused) == expected
        assert {s.code for s in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        # The primary still writes and reads: unary RPCs have workers of their own.
        assert Syncer(loader, schema).sync(bundle_items(schema, shop_bundle)).ok
    finally:
        for s in streams:
            s.close()
        loader.close()
    again = connect(switch.address, election_id=2000)  # slots are given back
    try:
        assert again.is_primary
    finally:
        again.close()


def test_a_stream_that_never_arbitrates_is_ended(
    switch: EmbeddedTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "ARBITRATION_TIMEOUT", 0.3)
    silent = [RawStream(switch.address, election_id=None) for _ in range(MAX_STREAMS)]
    try:
        for s in silent:
            assert s.ended.wait(10)
        assert {s.code for s in silent} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        client = connect(switch.address, election_id=5)
        try:
            assert client.is_primary
        finally:
            client.close()
    finally:
        for s in silent:
            s.close()
