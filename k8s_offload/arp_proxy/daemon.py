"""Socket loop of the ARP/NDP proxy: attach to an interface, answer, re-attach when it flaps.

Interface state is polled over netlink (pyroute2) rather than followed through link events: a
poll every few hundred milliseconds is cheap, cannot miss an event, and notices a delete followed
by a re-create under the same name through the changed ifindex. Errors on the packet socket
(ENETDOWN when the link goes down or away) trigger an immediate re-check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from k8s_offload.arp_proxy.frames import (
    Outcome,
    ProxyConfig,
    Verdict,
    announcements,
    handle_frame,
    multicast_mac,
    solicited_node,
)
from k8s_offload.arp_proxy.ratelimit import RateLimiter
from k8s_offload.safefile import atomic_write

log = logging.getLogger("arp_proxy")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_MR_UNICAST = 3
PACKET_OUTGOING = 4
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
AUXDATA_LEN = 20  # struct tpacket_auxdata
IFF_UP = 0x1
IFF_RUNNING = 0x40
MAX_FRAMES_PER_WAKEUP = 256
STATS_MIN_INTERVAL = 0.2
LOG_THROTTLE_INTERVAL = 10.0

# Every counter, present (at 0) from the start: in the stats file, the log and /metrics.
COUNTERS = (
    "rx",
    *(o.value for o in Outcome),
    "tx_replies",
    "answered_arp",
    "answered_ndp",
    "rate_limited",
    "rate_limited_global",
    "tx_errors",
    "announcements",
    "attachments",
    "detachments",
    "mac_changes",
    "socket_errors",
    "handler_errors",
)


class LogThrottle:
    """At most one log line per ``interval`` for a kind of event; the next says how many were skipped.

    A neighbour can send thousands of frames a second; each must not become a log line.
    """

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval, self.clock = interval, clock
        self._next: dict[str, float] = {}
        self._skipped: Counter[str] = Counter()

    def log(self, kind: str, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        now = self.clock()
        if now < self._next.get(kind, float("-inf")):
            self._skipped[kind] += 1
            return
        skipped = self._skipped.pop(kind, 0)
        suffix = f" ({skipped} more like this in the last {self.interval:g} s not logged)" if skipped else ""
        log.log(level, msg + suffix, *args, exc_info=exc_info)
        self._next[kind] = now + self.interval


@dataclass(frozen=True)
class LinkState:
    """What the proxy needs to know about its interface."""

    index: int
    mac: str | None
    running: bool  # administratively up with carrier: frames can be sent


def lookup_link(ipr: IPRoute, ifname: str) -> LinkState | None:
    """Current state of ``ifname`` in this network namespace, or None if there is no such link."""
    try:
        msg = ipr.link("get", ifname=ifname)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    flags = int(msg["flags"])
    mac = msg.get("IFLA_ADDRESS")
    return LinkState(
        index=int(msg["index"]),
        mac=str(mac).lower() if mac else None,
        running=bool(flags & IFF_UP and flags & IFF_RUNNING),
    )


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.split(":"))


class ArpProxyDaemon:
    """Answers ARP/NDP for the gateway addresses on one interface until :meth:`stop` is called."""

    def __init__(
        self,
        ifname: str,
        ipv4: frozenset[IPv4Address],
        ipv6: frozenset[IPv6Address],
        *,
        mac: str | None = None,
        rate: float = 20.0,
        burst: int = 40,
        global_rate: float = 200.0,
        global_burst: int = 400,
        stats_file: Path | None = None,
        poll_interval: float = 0.25,
        announce_count: int = 3,
        announce_interval: float = 1.0,
        router: bool = True,
        override: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ifname = ifname
        self.mac_override = mac
        # The MAC is a placeholder until attach; it is replaced with the interface's or --mac.
        self.cfg = ProxyConfig(
            mac=mac or "02:00:00:00:00:00", ipv4=ipv4, ipv6=ipv6, router=router, override=override
        )
        self.limiter = RateLimiter(rate, burst, global_rate, global_burst)
        self.stats_file = stats_file
        self.poll_interval = poll_interval
        self.announce_count = announce_count
        self.announce_interval = announce_interval
        self.clock = clock
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.throttle = LogThrottle(LOG_THROTTLE_INTERVAL, clock)
        self.heartbeat = clock()  # last turn of the main loop, for /healthz
        self._sock: socket.socket | None = None
        self._link: LinkState | None = None
        self._announce_due: list[float] = []
        self._next_poll = 0.0
        self._stopping = False
        self._waiting_logged = False
        self._stats_written_at = 0.0
        self._stats_last: dict[str, object] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish; safe to call from a signal handler."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def log_counters(self) -> None:
        log.info("counters: %s", json.dumps({k: v for k, v in sorted(self.counters.items()) if v}))

    def alive(self) -> tuple[bool, str]:
        """Liveness: the main loop turned recently (it wakes at least every poll interval)."""
        stalled = self.clock() - self.heartbeat
        limit = max(10.0, 20 * self.poll_interval)
        if stalled > limit:
            return False, f"main loop stalled for {stalled:.1f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Readiness: attached to the interface, which is up, so requests are being answered."""
        if self._sock is None or self._link is None:
            return False, f"not attached to {self.ifname}"
        if not self._link.running:
            return False, f"{self.ifname} is down"
        return self.alive()

    def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        log.info(
            "proxying %s on %s",
            ", ".join(str(a) for a in [*sorted(self.cfg.ipv4), *sorted(self.cfg.ipv6)]),
            self.ifname,
        )
        try:
            with IPRoute() as ipr:
                self._maybe_write_stats(force=True)
                while not self._stopping:
                    now = self.heartbeat = self.clock()
                    if now >= self._next_poll:
                        self._poll_link(ipr)
                        self._next_poll = now + self.poll_interval
                    self._send_due_announcements(now)
                    self._wait_and_receive()
                    self._maybe_write_stats()
        finally:
            self._detach("stopping")
            self._maybe_write_stats(force=True)
            self.log_counters()
            self._wake_r.close()
            self._wake_w.close()
        return 0

    # -- interface tracking ------------------------------------------------------------------

    def _poll_link(self, ipr: IPRoute) -> None:
        link = lookup_link(ipr, self.ifname)
        if self._link is not None and (link is None or link.index != self._link.index):
            self._detach("interface disappeared" if link is None else "interface was re-created")
        if link is None:
            if not self._waiting_logged:
                log.warning("waiting for interface %s", self.ifname)
                self._waiting_logged = True
            return
        if self._link is None:
            self._attach(ipr, link)
            return
        old = self._link
        self._link = link
        mac = self.mac_override or link.mac
        if mac and mac != self.cfg.mac:
            log.info("MAC of %s changed from %s to %s", self.ifname, self.cfg.mac, mac)
            self.cfg = dataclasses.replace(self.cfg, mac=mac)
            self.counters["mac_changes"] += 1
            self._schedule_announcements()
        elif link.running and not old.running:
            log.info("%s is up", self.ifname)
            self._schedule_announcements()

    def _attach(self, ipr: IPRoute, link: LinkState) -> None:
        mac = self.mac_override or link.mac
        if not mac or mac == "00:00:00:00:00:00":
            log.error("%s has no Ethernet address; pass --mac", self.ifname)
            return
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            # The kernel strips an offloaded VLAN tag before we see the frame and reports it
            # only in the auxiliary data: ask for it, so tagged requests are never answered.
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.bind((self.ifname, ETH_P_ALL))
            self._join_groups(sock, link, mac)
            sock.setblocking(False)
            again = lookup_link(ipr, self.ifname)
            if again is None or again.index != link.index:
                raise OSError(errno.ENODEV, "interface changed while attaching")
        except OSError as exc:
            sock.close()
            log.warning("cannot attach to %s: %s", self.ifname, exc)
            return
        self._sock, self._link, self._waiting_logged = sock, link, False
        self.cfg = dataclasses.replace(self.cfg, mac=mac)
        self.counters["attachments"] += 1
        log.info("attached to %s (ifindex %d, answering with %s)", self.ifname, link.index, mac)
        if link.running:
            self._schedule_announcements()

    def _join_groups(self, sock: socket.socket, link: LinkState, mac: str) -> None:
        """Make the NIC deliver solicited-node multicast (and a --mac that is not its own)."""
        memberships = [(PACKET_MR_MULTICAST, multicast_mac(solicited_node(a))) for a in self.cfg.ipv6]
        if mac != link.mac:
            memberships.append((PACKET_MR_UNICAST, mac))
        for mr_type, group in memberships:
            mreq = struct.pack("iHH8s", link.index, mr_type, 6, _mac_bytes(group))
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    def _detach(self, why: str) -> None:
        if self._sock is None:
            return
        level = logging.INFO if self._stopping else logging.WARNING
        log.log(level, "detaching from %s: %s", self.ifname, why)
        self._sock.close()
        self._sock, self._link = None, None
        self._announce_due.clear()
        self.counters["detachments"] += 1

    # -- announcements ----------------------------------------------------------------------

    def _schedule_announcements(self) -> None:
        now = self.clock()
        self._announce_due = [now + i * self.announce_interval for i in range(self.announce_count)]

    def _send_due_announcements(self, now: float) -> None:
        if not self._announce_due or self._announce_due[0] > now:
            return
        self._announce_due.pop(0)
        for frame in announcements(self.cfg):
            if self._send(frame):
                self.counters["announcements"] += 1

    # -- frames -----------------------------------------------------------------------------

    def _wait_and_receive(self) -> None:
        now = self.clock()
        timeout = max(0.0, self._next_poll - now)
        if self._announce_due:
            timeout = min(timeout, max(0.0, self._announce_due[0] - now))
        fds: list[socket.socket] = [self._wake_r] if self._sock is None else [self._wake_r, self._sock]
        readable, _, _ = select.select(fds, [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                self._wake_r.recv(64)
        if self._sock is not None and self._sock in readable:
            self._receive(self._sock)

    def _receive(self, sock: socket.socket) -> None:
        for _ in range(MAX_FRAMES_PER_WAKEUP):
            try:
                data, ancdata, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(AUXDATA_LEN))
            except BlockingIOError:
                return
            except OSError as exc:
                # ENETDOWN when the link goes down or is unregistered: look at it right away.
                self.counters["socket_errors"] += 1
                log.info("receive on %s failed: %s", self.ifname, exc)
                self._next_poll = 0.0
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            self.counters["rx"] += 1
            if _vlan_tagged(ancdata):
                self.counters[Outcome.VLAN_TAGGED.value] += 1
                continue
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        try:
            verdict = handle_frame(data, self.cfg)
        except Exception:  # a bug in the handler must not take the proxy down
            self.counters["handler_errors"] += 1
            self.throttle.log(
                "handler", logging.ERROR, "handler failed on a %d-byte frame", len(data), exc_info=True
            )
            return
        self.counters[verdict.outcome.value] += 1
        self._log_verdict(verdict)
        if verdict.reply is None:
            return
        refused = self.limiter.allow(verdict.requester or "", self.clock())
        if refused is not None:
            self.counters["rate_limited" if refused == "source" else "rate_limited_global"] += 1
            return
        if self._send(verdict.reply):
            self.counters["tx_replies"] += 1
            self.counters["answered_arp" if verdict.outcome is Outcome.ARP_REPLY else "answered_ndp"] += 1

    def _log_verdict(self, verdict: Verdict) -> None:
        if verdict.outcome is Outcome.CONFLICT:
            self.throttle.log("conflict", logging.WARNING, "%s", verdict.reason)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s", verdict.outcome.value, verdict.reason)

    def _send(self, frame: bytes) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.send(frame)
        except OSError as exc:
            self.counters["tx_errors"] += 1
            log.info("send on %s failed: %s", self.ifname, exc)
            self._next_poll = 0.0
            return False
        return True

    # -- stats ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "interface": self.ifname,
            "attached": self._sock is not None,
            "ifindex": self._link.index if self._link else None,
            "mac": self.cfg.mac if self._sock is not None else None,
            "counters": dict(sorted(self.counters.items())),
        }

    def _maybe_write_stats(self, force: bool = False) -> None:
        """Write counters to --stats-file atomically when they changed, at most a few times a second."""
        if self.stats_file is None:
            return
        now = self.clock()
        snapshot = self.snapshot()
        if not force and (snapshot == self._stats_last or now - self._stats_written_at < STATS_MIN_INTERVAL):
            return
        try:
            # A random O_EXCL temporary name, and a symlink planted at the path is replaced, not
            # followed: a shared directory cannot redirect this (root's) write.
            atomic_write(self.stats_file, (json.dumps(snapshot, indent=2) + "\n").encode())
        except OSError as exc:
            self.throttle.log("stats", logging.WARNING, "cannot write %s: %s", self.stats_file, exc)
        self._stats_last, self._stats_written_at = snapshot, now


def _vlan_tagged(ancdata: list[tuple[int, int, bytes]]) -> bool:
    """Whether PACKET_AUXDATA says the frame carried a VLAN tag that the kernel stripped."""
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 4:
            (status,) = struct.unpack_from("I", data)
            return bool(status & TP_STATUS_VLAN_VALID)
    return False
