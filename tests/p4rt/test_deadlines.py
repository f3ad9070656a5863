"""Write deadlines grow with the batch: a fixed 5-10 s deadline failed the single 298k-update
write of a size-M first sync (gRPC DEADLINE_EXCEEDED, retried forever)."""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt.client import MIN_WRITE_RATE, P4RuntimeClient
from k8s_offload.p4rt.proto import p4runtime as p4r


class _RecordingStub:
    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def Write(self, request: Any, timeout: float) -> Any:  # the gRPC method name
        self.timeouts.append(timeout)
        return p4r.WriteResponse()


def test_write_deadline_scales_with_batch_size() -> None:
    client = P4RuntimeClient("127.0.0.1:1", timeout=5.0)  # never connects: the stub is replaced
    stub = _RecordingStub()
    client.stub = stub  # type: ignore[assignment]
    client._primary = client._connected = True
    client.write([p4r.Update()] * 10)
    client.write([p4r.Update()] * 300_000)
    small, large = stub.timeouts
    assert small < 5.1
    assert large == 5.0 + 300_000 / MIN_WRITE_RATE
    client.channel.close()
