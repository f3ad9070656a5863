"""bmv2 as the reference `Dataplane` of the differential harness (tests/differential/harness.py)."""

from __future__ import annotations

import time
from typing import Any

from k8s_offload.p4rt.client import CONTINUE_ON_ERROR, P4RuntimeClient
from k8s_offload.p4rt.errors import WriteError
from tests.bmv2.switch import Bmv2
from tests.differential.harness import DROP_COUNTER, Outcome, counter_read

FRAME_TIMEOUT = 1.0
"""Seconds to wait for what the interpreter says a frame does; only a mismatch waits this long."""


class Bmv2Dataplane:
    name = "bmv2"

    def __init__(self, switch: Bmv2, client: P4RuntimeClient, p4info: Any) -> None:
        self.switch = switch
        self.client = client
        self.counter = next(c.preamble.id for c in p4info.counters if c.preamble.name.endswith(DROP_COUNTER))
        self.size = next(c.size for c in p4info.counters if c.preamble.id == self.counter)

    def install(self, updates: list[Any]) -> None:
        for i in range(0, len(updates), 1000):
            batch = updates[i : i + 1000]
            try:
                self.client.write(batch, CONTINUE_ON_ERROR)
            except WriteError as err:
                bad = [
                    (u.entity.WhichOneof("entity"), e.message)
                    for u, e in zip(batch, err.errors, strict=False)
                    if not e.ok
                ]
                raise AssertionError(f"bmv2 rejected updates: {bad[:5]}") from err

    def _dropped_total(self) -> int:
        return sum(
            int(e.counter_entry.data.packet_count) for e in self.client.read([counter_read(self.counter)])
        )

    def send(self, port: int, frame: bytes, expect: Outcome) -> Outcome:
        before = self._dropped_total() if expect.dropped else 0
        self.switch.send(port, frame)
        outputs = self.switch.wait_frames(len(expect.outputs), FRAME_TIMEOUT if expect.outputs else 0.0)
        dropped = False
        if expect.dropped:
            deadline = time.monotonic() + FRAME_TIMEOUT
            while not dropped and time.monotonic() < deadline:
                dropped = self._dropped_total() > before
                if not dropped:
                    time.sleep(0.002)
            outputs += self.switch.wait_frames(0, 0.0)
        return Outcome(tuple(outputs), dropped)

    def drop_counts(self) -> list[tuple[int, int]]:
        out = [(0, 0)] * self.size
        for e in self.client.read([counter_read(self.counter)]):
            c = e.counter_entry
            out[c.index.index] = (int(c.data.packet_count), int(c.data.byte_count))
        return out

    def settle(self) -> list[tuple[int, bytes]]:
        return self.switch.drain(0.2)
