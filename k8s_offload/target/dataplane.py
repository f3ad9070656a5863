"""Real Ethernet frames through the embedded target: one AF_PACKET socket per device port.

`PortIO` binds a packet socket to each interface of a port map (device port -> interface), feeds
every frame it receives to `Device.inject` (the same path as PacketOut and the tests' probes) and
sends what the pipeline emits on a port out of that port's interface. Frames this process sent
come back on the socket as PACKET_OUTGOING and are ignored. One thread does it all, so packets
are processed one at a time in arrival order: a functional data plane, not a fast one.

The senders' transmit checksum offload must be off (`set_tx_checksum`): a veth hands frames over
with the L4 checksum unfinished, and the pipeline only recomputes it after NAT.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import logging
import selectors
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping

from k8s_offload.target.device import Device
from k8s_offload.target.errors import P4RuntimeError

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
MAX_FRAME = 65535
RX_BURST = 64
FLOW_CACHE_REGISTERS = ("ct_tag", "ct_value", "ct_addr")


def _ethtool_value(ifname: str, cmd: int, data: int = 0) -> int:
    """One `struct ethtool_value` ioctl on `ifname` in the caller's network namespace."""
    buf = array.array("I", [cmd, data])
    ifr = struct.pack("16sP", ifname.encode()[:15], buf.buffer_info()[0]).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    return int(buf[1])


def set_tx_checksum(ifname: str, on: bool) -> None:
    """`ethtool -K IF tx on|off`."""
    _ethtool_value(ifname, ETHTOOL_STXCSUM, int(on))


def tx_checksum(ifname: str) -> bool:
    return bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM))


def flush_flow_cache(device: Device) -> int:
    """Zero the flow cache registers (`conntrack -F` for this target); returns the cells cleared.

    Entries of closed TCP connections live for `CT_TIMEOUT_TCP` (about 2 h; the pipeline does not
    track FIN/RST), so a long-running lab fills slots that later flows may collide with.
    """
    pipe = device.pipeline
    if pipe is None:
        return 0
    state, cleared = pipe.state, 0
    with device.state_lock:
        for rid, (name, _, _) in state.index.registers.items():
            if name.rsplit(".", 1)[-1] in FLOW_CACHE_REGISTERS:
                cells = state.registers[rid]
                cells[:] = [0] * len(cells)  # in place: the interpreter holds this list
                cleared += len(cells)
    return cleared


def parse_port_map(specs: list[str]) -> dict[int, str]:
    """`["10=dp10", ...]` -> {10: "dp10"}; ports and interfaces must be unique."""
    out: dict[int, str] = {}
    for spec in specs:
        port_s, sep, ifname = spec.partition("=")
        if not sep or not port_s.strip().isdigit() or not ifname:
            raise ValueError(f"bad port mapping {spec!r}: expected PORT=INTERFACE")
        port = int(port_s)
        if port in out or ifname in out.values():
            raise ValueError(f"port mapping {spec!r} repeats a port or an interface")
        out[port] = ifname
    return out


class PortIO:
    """Moves frames between interfaces and a device: `PortIO(dev, {10: "dp10"}).start()`."""

    def __init__(self, device: Device, ports: Mapping[int, str]) -> None:
        self.device = device
        self.ports = dict(ports)
        self.counters: Counter[str] = Counter()
        self._socks: dict[int, socket.socket] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._selector = selectors.DefaultSelector()

    def start(self) -> PortIO:
        try:
            for port, ifname in self.ports.items():
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                self._socks[port] = sock
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.bind((ifname, ETH_P_ALL))
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ, port)
        except OSError:
            self._close()
            raise
        self.device.port_sinks.append(self._transmit)
        self._thread = threading.Thread(target=self._run, name="port-io", daemon=True)
        self._thread.start()
        log.info("forwarding frames on %s", ", ".join(f"{p}={i}" for p, i in sorted(self.ports.items())))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._transmit in self.device.port_sinks:
            self.device.port_sinks.remove(self._transmit)
        self._close()

    def _close(self) -> None:
        for sock in self._socks.values():
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._socks.clear()

    def _transmit(self, port: int, frame: bytes) -> None:
        sock = self._socks.get(port)
        if sock is None:
            self.counters["tx_no_port"] += 1
            return
        try:
            sock.send(frame)
            self.counters["tx"] += 1
        except OSError as err:
            self.counters["tx_errors"] += 1
            log.debug("port %d: send failed: %s", port, err)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                self._drain(key.fileobj, key.data)  # type: ignore[arg-type]

    def _drain(self, sock: socket.socket, port: int) -> None:
        for _ in range(RX_BURST):
            try:
                frame, addr = sock.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            except OSError as err:  # e.g. ENETDOWN while the peer is moved between namespaces
                self.counters["rx_errors"] += 1
                log.debug("port %d: receive failed: %s", port, err)
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            self.counters["rx"] += 1
            try:
                egress, _ = self.device.inject(port, frame)
            except P4RuntimeError:
                self.counters["no_pipeline"] += 1
                continue
            except Exception:  # a frame the model cannot handle must not stop the port loop
                self.counters["errors"] += 1
                log.exception("port %d: frame could not be processed", port)
                continue
            if egress is None:
                self.counters["dropped"] += 1
