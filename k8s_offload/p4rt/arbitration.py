"""Primary election per (device_id, role), as P4Runtime spec §7 ("Client Arbitration and Controller
Replication") prescribes, kept free of gRPC so the rules can be read and tested on their own.

The primary is the live controller whose election_id is >= the highest the device ever saw for
that role; after the primary leaves there is none until a controller sends such an id again
(§7.3/§7.4). Every change is announced with MasterArbitrationUpdate: OK to the primary,
ALREADY_EXISTS to backups, NOT_FOUND to everyone while there is no primary. An election id in use
ends the stream with INVALID_ARGUMENT "election id N is already used", the wording clients such as
finsy recognise (they retry with a lower id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r


def election_id_of(msg: Any) -> int | None:
    """A Uint128 field as an int; None when unset (spec §"Unset Election ID": it ranks below every id)."""
    return None if msg is None else (msg.high << 64) | msg.low


def set_election_id(target: Any, value: int) -> None:
    target.high, target.low = value >> 64, value & ((1 << 64) - 1)


class ArbitrationError(Exception):
    """Ends the stream with this gRPC code (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(eq=False)
class Controller:
    """One StreamChannel that has sent a successful MasterArbitrationUpdate."""

    device_id: int
    role: str
    election_id: int | None
    send: Callable[[Any], None]


@dataclass
class _RoleState:
    controllers: list[Controller] = field(default_factory=list)
    highest: int | None = None
    primary: Controller | None = None
    config: Any = None


class Arbiter:
    """The arbitration state of one device; `on_change` runs (under the lock) when the primary moves."""

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self._roles: dict[str, _RoleState] = {}
        self.lock = threading.RLock()

    def has_role(self, role: str) -> bool:
        with self.lock:
            return role in self._roles

    def is_primary(self, role: str, election_id: int | None) -> bool:
        """Whether a request carrying (role, election_id) comes from the current primary."""
        with self.lock:
            state = self._roles.get(role)
            return (
                state is not None
                and state.primary is not None
                and election_id is not None
                and state.primary.election_id == election_id
            )

    def update(self, current: Controller | None, msg: Any, send: Callable[[Any], None]) -> Controller:
        """Handle an arbitration message from a stream (`current` is None on its first one)."""
        role = msg.role.name if msg.HasField("role") else ""
        eid = election_id_of(msg.election_id) if msg.HasField("election_id") else None
        with self.lock:
            if msg.device_id != self.device_id:
                code = code_pb2.FAILED_PRECONDITION if current else code_pb2.NOT_FOUND
                raise ArbitrationError(code, f"unknown device_id {msg.device_id}")
            if current is not None and current.role != role:
                raise ArbitrationError(code_pb2.FAILED_PRECONDITION, "a stream cannot change its role")
            state = self._roles.setdefault(role, _RoleState())
            if eid is not None and any(c.election_id == eid and c is not current for c in state.controllers):
                raise ArbitrationError(
                    code_pb2.INVALID_ARGUMENT, f"election id {eid} is already used by another controller"
                )
            ctrl = current or Controller(self.device_id, role, eid, send)
            ctrl.election_id = eid
            if current is None:
                state.controllers.append(ctrl)
            was_primary = state.primary is ctrl
            if eid is not None and (state.highest is None or eid >= state.highest):
                state.highest = eid
                state.primary = ctrl
                if msg.role.HasField("config"):
                    state.config = msg.role.config
                self._notify(role, state, state.controllers)
            elif was_primary:
                state.primary = None
                self._notify(role, state, state.controllers)
            else:
                self._notify(role, state, [ctrl])
            return ctrl

    def leave(self, ctrl: Controller) -> None:
        """A stream closed; a departing primary leaves the role without one (spec §7)."""
        with self.lock:
            state = self._roles.get(ctrl.role)
            if state is None or ctrl not in state.controllers:
                return
            state.controllers.remove(ctrl)
            if state.primary is ctrl:
                state.primary = None
                self._notify(ctrl.role, state, state.controllers)

    def _notify(self, role: str, state: _RoleState, targets: list[Controller]) -> None:
        for ctrl in targets:
            out = p4r.StreamMessageResponse()
            arb = out.arbitration
            arb.device_id = self.device_id
            if role or state.config is not None:
                arb.role.name = role
                if state.config is not None:
                    arb.role.config.CopyFrom(state.config)
            if state.highest is not None:
                set_election_id(arb.election_id, state.highest)
            if state.primary is ctrl:
                arb.status.code = code_pb2.OK
            elif state.primary is not None:
                arb.status.code = code_pb2.ALREADY_EXISTS
                arb.status.message = "a controller with a higher election_id is primary"
            else:
                arb.status.code = code_pb2.NOT_FOUND
                arb.status.message = "no primary for this role"
            ctrl.send(out)
