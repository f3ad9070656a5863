"""Differential testing of the data plane: the same entries and the same frames through a reference
target (bmv2 here; DPDK SWX can plug in the same way) and through our interpreter, compared frame
by frame (output port and bytes) and, at the end, drop counter by drop counter.

A scenario is a generator of `Send` and `Wait` steps; after each `Send` the runner sends it back
our interpreter's `Outcome`, so a conversation can build its next frame (a reply from the port
the request left by, to the address it arrived with) from what came out. The reference target
gets the frames in the same order and the same real time passes for both (flow-cache ageing
reads the clock), so their state stays the same as long as they agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8s_offload.p4 import load_program
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.device import Device
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.interpreter import Interpreter

DROP_COUNTER = "drop_reasons"


@dataclass(frozen=True, slots=True)
class Send:
    port: int
    frame: bytes
    label: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Let real time pass on both targets (flow-cache and affinity ageing)."""

    seconds: float
    label: str = "wait"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one frame did: the frames that left (port, bytes) and whether it was counted a drop."""

    outputs: tuple[tuple[int, bytes], ...]
    dropped: bool


Step = Send | Wait
Scenario = Generator[Step, Outcome | None, None]


class Dataplane(Protocol):
    """A target under test: holds entities, takes frames, counts drops per reason."""

    name: str

    def install(self, updates: list[Any]) -> None:
        """Apply P4Runtime updates in order (any rejection is a failure)."""

    def send(self, port: int, frame: bytes, expect: Outcome) -> Outcome:
        """One frame in; `expect` (our interpreter's outcome) only says how long to wait for it."""

    def drop_counts(self) -> list[tuple[int, int]]:
        """(packets, bytes) per drop reason."""

    def settle(self) -> list[tuple[int, bytes]]:
        """Frames that left after their step's wait (any is a mismatch)."""


class InterpreterDataplane:
    """Our interpreter of p4src/k8s_dp.p4; its clock is real time since `epoch` (the reference's
    start), in microseconds, like bmv2's ingress_global_timestamp."""

    name = "interpreter"

    def __init__(self, p4info: Any, epoch: float | None = None) -> None:
        self.sim = Interpreter(load_program(), p4info)
        self.epoch = time.monotonic() if epoch is None else epoch
        index = self.sim.state.index
        self.counter = index.id_of(DROP_COUNTER)

    def install(self, updates: list[Any]) -> None:
        for update, error in zip(updates, self.sim.state.write(updates), strict=True):
            if error is not None:
                kind = update.entity.WhichOneof("entity")
                raise P4RuntimeError(error.code, f"{self.name} rejected a {kind}: {error.message}")

    def send(self, port: int, frame: bytes, expect: Outcome | None = None) -> Outcome:
        before = sum(self.sim.state.counters[self.counter][0])
        now = int((time.monotonic() - self.epoch) * 1e6)
        result = self.sim.process(port, frame, now)
        dropped = sum(self.sim.state.counters[self.counter][0]) > before
        outputs = () if result.egress_port is None else ((result.egress_port, result.data),)
        return Outcome(outputs, dropped)

    def drop_counts(self) -> list[tuple[int, int]]:
        packets, octets = self.sim.state.counters[self.counter]
        return list(zip(packets, octets, strict=True))

    def settle(self) -> list[tuple[int, bytes]]:
        return []


class DeviceDataplane:
    """A device of the embedded target (`offload-switch`) as the target under test: frames go in
    through `Device.inject`, what it writes to its ports is collected."""

    name = "embedded target"

    def __init__(self, device: Device) -> None:
        self.device = device
        self.out: list[tuple[int, bytes]] = []
        device.port_sinks.append(lambda port, data: self.out.append((port, data)))

    def _counter(self) -> tuple[list[int], list[int]]:
        pipe = self.device.pipeline
        assert pipe is not None
        return pipe.state.counters[pipe.state.index.id_of(DROP_COUNTER)]

    def install(self, updates: list[Any]) -> None:
        errors = self.device.write(updates, p4r.WriteRequest.CONTINUE_ON_ERROR)
        assert errors is None, errors

    def send(self, port: int, frame: bytes, expect: Outcome) -> Outcome:
        before = sum(self._counter()[0])
        self.out.clear()
        self.device.inject(port, frame)
        return Outcome(tuple(self.out), sum(self._counter()[0]) > before)

    def drop_counts(self) -> list[tuple[int, int]]:
        packets, octets = self._counter()
        return list(zip(packets, octets, strict=True))

    def settle(self) -> list[tuple[int, bytes]]:
        return []


@dataclass
class Report:
    """What a run compared and where the targets differed."""

    cases: int = 1
    frames: int = 0
    forwarded: int = 0
    dropped: int = 0
    mismatches: list[str] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    kept: dict[str, list[Outcome]] = field(default_factory=dict)
    """Our outcomes of the steps whose label starts with one of `run(keep=...)`."""

    def add(self, other: Report) -> None:
        self.cases += other.cases
        self.frames += other.frames
        self.forwarded += other.forwarded
        self.dropped += other.dropped
        self.mismatches += other.mismatches
        for k, v in other.labels.items():
            self.labels[k] = self.labels.get(k, 0) + v


def run(
    ours: InterpreterDataplane,
    reference: Dataplane,
    scenario: Scenario,
    *,
    max_mismatches: int = 20,
    sleep: Callable[[float], None] = time.sleep,
    keep: tuple[str, ...] = (),
) -> Report:
    """Drive one scenario through both targets; mismatches are described, never raised. Drop
    counters are compared as what this run added (a target may have counted before, e.g. the
    loader's pipeline probe)."""
    report = Report()
    base_ours, base_theirs = ours.drop_counts(), reference.drop_counts()
    step = next(scenario, None)
    while step is not None and len(report.mismatches) < max_mismatches:
        outcome: Outcome | None = None
        if isinstance(step, Wait):
            sleep(step.seconds)
        else:
            outcome = ours.send(step.port, step.frame)
            theirs = reference.send(step.port, step.frame, outcome)
            report.frames += 1
            kind = step.label.split(":", 1)[0]
            report.labels[kind] = report.labels.get(kind, 0) + 1
            if step.label.startswith(keep) and keep:
                report.kept.setdefault(step.label, []).append(outcome)
            report.forwarded += bool(outcome.outputs)
            report.dropped += outcome.dropped
            if theirs != outcome:
                report.mismatches.append(_describe(step, outcome, theirs, reference.name))
        try:
            step = scenario.send(outcome)
        except StopIteration:
            step = None
    late = reference.settle()
    if late:
        report.mismatches.append(
            f"{reference.name} sent {len(late)} frame(s) after their step: {_frames(late)}"
        )
    ours_counts = _minus(ours.drop_counts(), base_ours)
    theirs_counts = _minus(reference.drop_counts(), base_theirs)
    if ours_counts != theirs_counts:
        diff = [
            f"reason {i}: ours {a}, {reference.name} {b}"
            for i, (a, b) in enumerate(zip(ours_counts, theirs_counts, strict=True))
            if a != b
        ]
        report.mismatches.append("drop counters differ (packets, bytes): " + "; ".join(diff))
    return report


def _minus(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(p - q, x - y) for (p, x), (q, y) in zip(a, b, strict=True)]


def _describe(step: Send, ours: Outcome, theirs: Outcome, name: str) -> str:
    return (
        f"{step.label}: in on port {step.port}: {step.frame.hex()}\n"
        f"  ours:  {_frames(ours.outputs)} dropped={ours.dropped}\n"
        f"  {name}: {_frames(theirs.outputs)} dropped={theirs.dropped}"
    )


def _frames(frames: Iterable[tuple[int, bytes]]) -> str:
    return ", ".join(f"port {p}: {d.hex()}" for p, d in frames) or "nothing"


def counter_read(counter_id: int) -> Any:
    """The wildcard read of one indirect counter (every index)."""
    entity = p4r.Entity()
    entity.counter_entry.counter_id = counter_id
    return entity
