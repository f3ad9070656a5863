"""Bringing a device to our forwarding pipeline, and proving that pipeline is the one forwarding.

A device may start with no pipeline, with someone else's, or (PI/bmv2 after a failed
RECONCILE_AND_COMMIT) with ours loaded and reported but never committed, the old one still
forwarding. `PipelineManager.ensure()` handles all three and returns only when the pipeline that
forwards is ours, which it proves with a probe through the data plane: a PacketOut submitted to
ingress (`packet_out.submit_to_ingress`) enters on the CPU port, which `port_class` never lists, so
our program drops it and counts it in `drop_reasons[DROP_UNKNOWN_PORT]`; the loader reads that
counter through the same P4Runtime connection that writes the tables. Only the pipeline whose
objects the control plane reads and writes can move that counter, so a moved counter shows that
the committed program (its tables, the ones we write) is forwarding; a stale pipeline, or one
loaded but not swapped in, cannot move it. Details and every PI/bmv2 departure it copes with:
docs/runtime.md, "Bringing up a target".
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from k8s_offload.p4rt.client import RECONCILE_AND_COMMIT, VERIFY_AND_COMMIT, P4RuntimeClient
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.proto import p4runtime as p4r

log = logging.getLogger(__name__)

PROBE_COUNTER = "drop_reasons"
PROBE_REASON = 1
"""`DROP_UNKNOWN_PORT` (p4src/include/defines.p4): what a frame from the CPU port is dropped for."""
PROBE_FRAME = bytes.fromhex("ffffffffffff02000000000088b5") + b"k8s-offload pipeline probe"
"""Broadcast from a locally administered address, IEEE local experimental ethertype 0x88B5."""
CHECKS = ("probe", "cookie")


class PipelineError(Exception):
    """The device does not run our pipeline and we could not make it, or cannot prove it does."""


class PipelineManager:
    """Pushes and proves one pipeline (P4Info, device config, cookie) on one connected client."""

    def __init__(
        self,
        client: P4RuntimeClient,
        p4info: Any,
        device_config: bytes,
        cookie: int,
        check: str = "probe",
        probe_timeout: float = 3.0,
    ) -> None:
        if check not in CHECKS:
            raise ValueError(f"unknown pipeline check {check!r} (one of {', '.join(CHECKS)})")
        self.client = client
        self.p4info = p4info
        self.device_config = device_config
        self.cookie = cookie
        self.check = check
        self.probe_timeout = probe_timeout

    # ---- what the device reports --------------------------------------------------------------

    def device_cookie(self) -> int | None:
        """The device's pipeline cookie: None without a pipeline, 0 for one set without a cookie.

        Spec §17: a server that has no config answers with `config` unset. PI (bmv2's
        simple_switch_grpc, Stratum-bmv2) answers FAILED_PRECONDITION "No forwarding pipeline config
        set for this device" instead, which means the same here."""
        try:
            config = self.client.get_pipeline(p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        except P4RuntimeRpcError as err:
            if err.code == grpc.StatusCode.FAILED_PRECONDITION:
                log.info("the device has no pipeline (it says: %s)", err.message)
                return None
            raise
        if config is None:
            return None
        return int(config.cookie.cookie) if config.HasField("cookie") else 0

    # ---- bringing it up -----------------------------------------------------------------------

    def ensure(self) -> bool:
        """Make our pipeline the one forwarding; True when the device's forwarding state was lost or
        replaced on the way (the caller must read the device again before writing). Raises
        PipelineError when it cannot, or cannot prove it."""
        cookie = self.device_cookie()
        if cookie == self.cookie:
            if self.prove():
                return False
            # PI after a failed RECONCILE_AND_COMMIT: it reports the new config (cookie, P4Info),
            # reads and writes go to it, but bmv2 never swapped it in and forwards with the old one.
            log.warning(
                "the device reports our pipeline (cookie %#x) but does not forward with it: a config "
                "loaded and never committed (PI does this after a failed RECONCILE_AND_COMMIT); "
                "committing it",
                self.cookie,
            )
            if self.commit_pending() and self.prove():
                log.info("the pending config is committed and forwards")
                return True
        self.push(existing=cookie is not None)
        found = self.device_cookie()
        if found != self.cookie:
            raise PipelineError(
                f"after SetForwardingPipelineConfig the device reports cookie {found!r}, "
                f"not ours ({self.cookie:#x})"
            )
        if not self.prove():
            raise PipelineError(self._unproven())
        return True

    def push(self, existing: bool) -> None:
        """RECONCILE_AND_COMMIT over an existing pipeline (keeps state where the target can), else,
        or when that fails, VERIFY_AND_COMMIT (clears state)."""
        if existing:
            try:
                self._set(RECONCILE_AND_COMMIT)
                log.info("pipeline replaced with RECONCILE_AND_COMMIT")
                return
            except P4RuntimeRpcError as err:
                log.warning(
                    "RECONCILE_AND_COMMIT failed (%s); replacing the pipeline with VERIFY_AND_COMMIT, "
                    "which clears the device's forwarding state (the next sync writes it again)",
                    err,
                )
        try:
            self._set(VERIFY_AND_COMMIT)
        except P4RuntimeRpcError as err:
            if not existing:
                raise
            # PI: the failed RECONCILE left a config loaded but not swapped in, and bmv2 refuses to
            # load another until that swap is done (ONGOING_SWAP, "Error in first phase of device
            # update"). COMMIT finishes it; then VERIFY_AND_COMMIT starts from a clean state.
            log.warning("VERIFY_AND_COMMIT failed (%s); committing the pending config first", err)
            self.commit_pending()
            self._set(VERIFY_AND_COMMIT)
        log.info("pipeline set with VERIFY_AND_COMMIT (cookie %#x)", self.cookie)

    def commit_pending(self) -> bool:
        """SetForwardingPipelineConfig COMMIT with no config: realizes a config saved (or, on PI,
        left loaded) but not committed. False when the device has none (spec: NOT_FOUND)."""
        try:
            self.client.commit_pipeline()
        except P4RuntimeRpcError as err:
            log.info("COMMIT: nothing pending (%s)", err)
            return False
        return True

    def _set(self, action: int) -> None:
        self.client.set_pipeline(self.p4info, self.device_config, self.cookie, action)

    # ---- proof --------------------------------------------------------------------------------

    def prove(self) -> bool:
        """Is our pipeline the one forwarding? The probe (module docstring), or with check="cookie"
        only the cookie read-back (for a target without packet I/O; it cannot see a config that is
        loaded but not committed)."""
        if self.check == "cookie":
            return self.device_cookie() == self.cookie
        out, counter = self._probe_ids()
        before = self._probe_count(counter)
        deadline = time.monotonic() + self.probe_timeout
        sends = 0
        while time.monotonic() < deadline:
            if sends < 3:
                self.client.packet_out(PROBE_FRAME, out)
                sends += 1
            next_send = time.monotonic() + self.probe_timeout / 3
            while time.monotonic() < min(next_send, deadline):
                if self._probe_count(counter) > before:
                    return True
                time.sleep(0.01)
        return False

    def _probe_ids(self) -> tuple[list[tuple[int, int]], int]:
        """PacketOut metadata (egress port 0, submitted to ingress) and the counter id."""
        header = next(
            (h for h in self.p4info.controller_packet_metadata if h.preamble.name == "packet_out"), None
        )
        names = {m.name: m.id for m in header.metadata} if header is not None else {}
        counter = next((c for c in self.p4info.counters if c.preamble.name.endswith(PROBE_COUNTER)), None)
        if "submit_to_ingress" not in names or counter is None:
            raise PipelineError(
                f"the P4Info has no packet_out.submit_to_ingress or no {PROBE_COUNTER} counter, so the "
                "pipeline cannot be probed; use --pipeline-check cookie to rely on the cookie alone"
            )
        metadata = [(mid, 1 if name == "submit_to_ingress" else 0) for name, mid in names.items()]
        return metadata, int(counter.preamble.id)

    def _probe_count(self, counter_id: int) -> int:
        entity = p4r.Entity()
        entity.counter_entry.counter_id = counter_id
        entity.counter_entry.index.index = PROBE_REASON
        try:
            return sum(int(e.counter_entry.data.packet_count) for e in self.client.read([entity]))
        except P4RuntimeRpcError as err:
            if err.code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
                raise PipelineError(
                    f"cannot read {PROBE_COUNTER}[{PROBE_REASON}] to probe the pipeline ({err}); "
                    "--pipeline-check cookie relies on the cookie alone"
                ) from err
            raise

    def _unproven(self) -> str:
        return (
            f"the device accepted our pipeline (cookie {self.cookie:#x}) but a probe PacketOut "
            f"submitted to ingress did not move {PROBE_COUNTER}[{PROBE_REASON}] within "
            f"{self.probe_timeout:g}s: the data plane is not running it, or the target has no packet "
            "I/O (bmv2: start simple_switch_grpc with --cpu-port 510); --pipeline-check cookie skips "
            "the probe"
        )
