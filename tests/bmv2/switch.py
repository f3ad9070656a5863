"""bmv2's simple_switch_grpc in a network namespace of its own, with real frames in and out.

Each device port is a veth pair inside the namespace: bmv2 owns `swN`, the test sends and
captures on `hN` through AF_PACKET sockets opened inside the namespace (pyroute2's pushns), so no
interface or address appears outside it. The P4Runtime server listens on a unix socket in a
private directory, which the test (in the root namespace) reaches without any routing. Names
carry the pid and a counter, so parallel runs never collide; `close()` kills the switch and
deletes the namespace with everything in it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import grpc
from pyroute2.netns import popns, pushns

from tests.p4ref import tool

CPU_PORT = 510
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
_COUNTER = itertools.count()


def ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


class Bmv2:
    """One simple_switch_grpc with device ports `ports`, started without a pipeline (`--no-p4`)."""

    def __init__(self, ports: tuple[int, ...], device_id: int = 1, log_level: str = "info") -> None:
        self.ports = ports
        self.device_id = device_id
        self.log_level = log_level
        self.ns = f"k8so-tg-{os.getpid()}-{next(_COUNTER)}"
        self.dir = Path(tempfile.mkdtemp(prefix="k8so-bmv2-"))
        self.address = f"unix://{self.dir / 'p4rt.sock'}"
        self.log = self.dir / "switch.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sockets: dict[int, socket.socket] = {}
        self._made_ns = False

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Bmv2:
        try:
            ip("netns", "add", self.ns)
            self._made_ns = True
            ip("-n", self.ns, "link", "set", "lo", "up")
            for key in ("all", "default"):  # no IPv6 autoconfiguration chatter on the ports
                subprocess.run(
                    ["ip", "netns", "exec", self.ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"],
                    check=True,
                )
            for port in self.ports:
                ip("-n", self.ns, "link", "add", f"sw{port}", "type", "veth", "peer", "name", f"h{port}")
                ip("-n", self.ns, "link", "set", f"sw{port}", "up")
                ip("-n", self.ns, "link", "set", f"h{port}", "up")
            self._open_sockets()
            self.launch()
        except BaseException:
            self.close()
            raise
        return self

    def launch(self) -> None:
        """Start the switch process (again, after `kill`): a fresh device without a pipeline."""
        sock = self.dir / "p4rt.sock"
        sock.unlink(missing_ok=True)
        cmd = [str(tool("simple_switch_grpc")), "--no-p4", "--device-id", str(self.device_id)]
        cmd += ["--log-file", str(self.log.with_suffix("")), "--log-flush", "--log-level", self.log_level]
        for port in self.ports:
            cmd += ["-i", f"{port}@sw{port}"]
        cmd += ["--", "--grpc-server-addr", self.address, "--cpu-port", str(CPU_PORT)]
        out = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 - kept open by the child only
        try:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], stdout=out, stderr=out)
        finally:
            out.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / "p4rt.sock").exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"simple_switch_grpc exited: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"simple_switch_grpc did not listen within {timeout}s: {self.tail()}")
            time.sleep(0.05)
        channel = grpc.insecure_channel(self.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            channel.close()

    def kill(self) -> None:
        """Stop the switch process (the namespace and ports stay)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.launch()

    def close(self) -> None:
        self.kill()
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
        if self._made_ns:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)
            self._made_ns = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Bmv2:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def tail(self, lines: int = 30) -> str:
        text = ""
        for f in (self.dir / "stdout.log", self.log):
            with contextlib.suppress(OSError):
                text += "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    # ---- frames ---------------------------------------------------------------------------------

    def _open_sockets(self) -> None:
        pushns(self.ns)
        try:
            for port in self.ports:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.bind((f"h{port}", 0))
                s.setblocking(False)
                self.sockets[port] = s
        finally:
            popns()

    def send(self, port: int, frame: bytes) -> None:
        """A frame into the switch on device port `port`."""
        self.sockets[port].send(frame)

    def _read_ready(self, timeout: float) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        by_fd = {s.fileno(): (port, s) for port, s in self.sockets.items()}
        ready, _, _ = select.select(list(by_fd), [], [], timeout)
        for fd in ready:
            port, sock = by_fd[fd]
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] != PACKET_OUTGOING:  # not our own sends
                    out.append((port, data))
        return out

    def wait_frames(self, count: int, timeout: float) -> list[tuple[int, bytes]]:
        """Frames the switch sent: as soon as `count` arrived (or `timeout` passed), plus any
        already queued behind them."""
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            out += self._read_ready(left)
        return out + self._read_ready(0.0)

    def drain(self, quiet: float = 0.05) -> list[tuple[int, bytes]]:
        """Everything that arrives until `quiet` seconds pass without a frame."""
        out: list[tuple[int, bytes]] = []
        while True:
            got = self._read_ready(quiet)
            if not got:
                return out
            out += got
