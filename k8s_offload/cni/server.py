"""``offload-cni serve``: the plugin behind the node's static shim (shim.c).

A node has no Python of ours, so what the runtime executes there is the shim, which hands every
invocation to this server in the DaemonSet pod over a Unix socket (docs/cni.md, "On a node").
Each invocation runs in a process of its own (``python -m k8s_offload.cni.server --connection-fd
N``), exactly as the console script runs it (``cli.invoke``): a plugin process per command, as
the CNI spec has it, with no state shared between invocations beyond the node facts file and its
lock. The differences are where things are:

- the environment and stdin are the shim's, i.e. the runtime's;
- the pod namespace is the descriptor the shim opened (``/proc/self/fd/N``), since CNI_NETNS is
  a path of the node's mount namespace; results still report CNI_NETNS as given;
- delegated IPAM plugins run on the node, by the shim (``ShimRunner``), so they find CNI_PATH
  and keep their state (host-local's /var/lib/cni) where the runtime expects them;
- log lines go to the server's stderr (the container's log) and to the shim's (the runtime's).

The wire, both ways: frames of one tag byte, a 4-byte big-endian length and the payload.

====  =========  ==============================================================================
tag   from       payload
====  =========  ==============================================================================
H     shim       ``offload-cni-shim/1``; SCM_RIGHTS: CNI_NETNS opened read-only, when it opens
E     both       the environment, ``KEY=VALUE`` strings each ended by NUL
I     both       stdin (the network configuration)
X     server     run a delegate: 4-byte time limit in seconds, the plugin name; then E and I
R     shim       its outcome: 4-byte status (exit code 0..255, or STATUS_*), then its stdout
L     server     log text for the shim's stderr
O     server     what the shim prints on stdout
C     server     the shim's exit code (4 bytes); the last frame
====  =========  ==============================================================================

The parent only accepts: a peer must be root or our own user (SO_PEERCRED), at most
``--max-concurrent`` invocations run at once (the rest wait in the listen backlog), and the
socket is 0600 in a directory the DaemonSet mounts from the node.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from k8s_offload.cni import cli, ipam
from k8s_offload.console import LOG_FORMATS, finish_cli, setup_logging
from k8s_offload.httpserve import HealthServer, parse_listen

log = logging.getLogger("cni_server")

PROTOCOL = b"offload-cni-shim/1"
DEFAULT_SOCKET = "/run/k8s-offload/cni.sock"
MAX_FRAME = 16 << 20
REQUEST_TIMEOUT = 10.0  # seconds for the shim to send its request
STATUS_NOT_FOUND, STATUS_TIMEOUT, STATUS_EXEC_FAILED, STATUS_SIGNALED = 0x100, 0x101, 0x102, 0x200
EXIT_USAGE = 2
EXIT_CODES = {0: "stopped by SIGTERM or SIGINT", 1: "fatal error", 2: "bad options, or the socket is in use"}


class ProtocolError(Exception):
    pass


class Connection:
    """Frames over the shim's socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def hello(self) -> list[int]:
        """Read the first bytes with the descriptors the shim attached (at most one is kept)."""
        data, fds, _, _ = socket.recv_fds(self.sock, 65536, 4)
        for extra in fds[1:]:
            os.close(extra)
        if not data:
            raise EOFError("the shim closed the connection")
        self._buf += data
        tag, payload = self.recv()
        if tag != b"H" or payload != PROTOCOL:
            for fd in fds[:1]:
                os.close(fd)
            raise ProtocolError(f"not a shim of protocol {PROTOCOL.decode()}: {bytes(payload[:40])!r}")
        return fds[:1]

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            data = self.sock.recv(max(65536, n - len(self._buf)))
            if not data:
                raise EOFError("the shim closed the connection")
            self._buf += data

    def recv(self) -> tuple[bytes, bytes]:
        self._fill(5)
        tag, length = bytes(self._buf[:1]), struct.unpack(">I", self._buf[1:5])[0]
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes")
        self._fill(5 + length)
        payload = bytes(self._buf[5 : 5 + length])
        del self._buf[: 5 + length]
        return tag, payload

    def expect(self, tag: bytes) -> bytes:
        got, payload = self.recv()
        if got != tag:
            raise ProtocolError(f"expected frame {tag!r}, got {got!r}")
        return payload

    def send(self, tag: bytes, payload: bytes) -> None:
        self.sock.sendall(tag + struct.pack(">I", len(payload)) + payload)


def env_block(environ: Mapping[str, str]) -> bytes:
    return b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in environ.items())


def parse_env_block(block: bytes) -> dict[str, str]:
    out = {}
    for item in block.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            out[os.fsdecode(key)] = os.fsdecode(value)
    return out


class ShimRunner:
    """ipam.Runner that runs the delegate on the node, through the shim (frames X, E, I -> R)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __call__(
        self, kind: str, cni_path: tuple[str, ...], env: Mapping[str, str], stdin: bytes
    ) -> tuple[int, bytes]:
        command = env.get("CNI_COMMAND", "")
        self.conn.send(b"X", struct.pack(">I", int(ipam.TIMEOUT)) + kind.encode())
        self.conn.send(b"E", env_block(env))
        self.conn.send(b"I", stdin)
        reply = self.conn.expect(b"R")
        if len(reply) < 4:
            raise ProtocolError("short R frame")
        status, out = struct.unpack(">I", reply[:4])[0], reply[4:]
        if status == STATUS_NOT_FOUND:
            raise ipam.not_found(kind, cni_path)
        if status == STATUS_TIMEOUT:
            raise ipam.timed_out(kind, command)
        if status == STATUS_EXEC_FAILED:
            raise ipam.cannot_execute(kind, out.decode(errors="replace")[:200])
        if status & STATUS_SIGNALED:
            return -(status & 0xFF), out  # as subprocess reports a signal
        return status, out


class ShimLog(logging.Handler):
    """Log records also to the shim's stderr, as the plugin run directly would print them."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self.setFormatter(logging.Formatter(cli.LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(b"L", (self.format(record) + "\n").encode(errors="replace"))
        except Exception:
            self.handleError(record)


def serve_connection(sock: socket.socket) -> int:
    """One invocation from the shim: the plugin's own code path (cli.invoke), its answer back."""
    conn = Connection(sock)
    sock.settimeout(REQUEST_TIMEOUT)
    try:
        fds = conn.hello()
        environ = parse_env_block(conn.expect(b"E"))
        data = conn.expect(b"I")
    except (OSError, EOFError, ProtocolError) as exc:
        log.warning("dropped a connection: %s", exc)
        return 1
    # A delegate may take ipam.TIMEOUT; the shim answers within that and a little more.
    sock.settimeout(ipam.TIMEOUT + 30)
    ipam.RUNNER = ShimRunner(conn)  # this process serves this one invocation
    forward = ShimLog(conn)
    logging.getLogger("cni_plugin").addHandler(forward)
    try:
        code, text = cli.invoke(environ, data, f"/proc/self/fd/{fds[0]}" if fds else "")
        logging.getLogger("cni_plugin").removeHandler(forward)
        conn.send(b"O", text.encode())
        conn.send(b"C", struct.pack(">I", code))
    except (OSError, EOFError, ProtocolError) as exc:
        log.warning(
            "lost the shim of %s %s: %s", environ.get("CNI_COMMAND"), environ.get("CNI_CONTAINERID"), exc
        )
        return 1
    return 0


# ---- the server ----------------------------------------------------------------------------------


def _listen(path: Path) -> socket.socket:
    """Bind the socket, 0600; a socket a live server answers on is left alone (OSError)."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise OSError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # stale: its server is gone
            else:
                raise OSError(f"another offload-cni server is listening on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


def _peer_uid(conn: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return int(uid)


class Server:
    def __init__(
        self, path: Path, max_concurrent: int, log_format: str, ipam_timeout: float = ipam.TIMEOUT
    ) -> None:
        self.path = path
        self.ipam_timeout = ipam_timeout
        self.max_concurrent = max_concurrent
        self.log_format = log_format
        self.listener = _listen(path)
        self.inode = path.stat().st_ino
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()
        self.heartbeat = time.monotonic()
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.connections = Counter(
            "offload_cni_server_connections_total",
            "Connections from shims, by outcome: served, or refused (a peer neither root nor us)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("served", "refused"):
            self.connections.labels(outcome)
        self.failures = Counter(
            "offload_cni_server_failed_invocations_total",
            "Invocations whose process ended without answering the shim (protocol error, lost shim, crash)",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "offload_cni_server_invocations_in_flight", "Invocations being served", registry=self.registry
        )

    def alive(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self.heartbeat
        return (stalled < 10.0, "ok" if stalled < 10.0 else f"accept loop stalled for {stalled:.0f} s")

    def ready(self) -> tuple[bool, str]:
        try:
            ours = self.path.stat().st_ino == self.inode
        except OSError:
            ours = False
        if not ours:
            return False, f"{self.path} is gone or replaced"
        return self.alive()

    def _reap(self) -> None:
        for child in [c for c in self.children if c.poll() is not None]:
            self.children.remove(child)
            if child.returncode != 0:
                self.failures.inc()
        self.in_flight.set(len(self.children))

    def _spawn(self, conn: socket.socket) -> None:
        argv = [sys.executable, "-m", "k8s_offload.cni.server", "--connection-fd", str(conn.fileno()),
                "--log-format", self.log_format, "--ipam-timeout", str(self.ipam_timeout)]  # fmt: skip
        self.children.append(subprocess.Popen(argv, pass_fds=(conn.fileno(),), stdin=subprocess.DEVNULL))
        self.connections.labels("served").inc()

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while not self.stopping.is_set():
            self.heartbeat = time.monotonic()
            self._reap()
            if len(self.children) >= self.max_concurrent:
                time.sleep(0.05)  # the shims wait in the backlog until an invocation ends
                continue
            if not sel.select(timeout=0.5):
                continue
            try:
                conn, _ = self.listener.accept()
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                continue
            with conn:
                uid = _peer_uid(conn)
                if uid not in (0, os.getuid()):
                    log.warning("refused a connection from uid %d", uid)
                    self.connections.labels("refused").inc()
                    continue
                self._spawn(conn)
        sel.close()

    def close(self, grace: float = 30.0) -> None:
        """Stop accepting, remove our socket, let running invocations finish."""
        self.listener.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        deadline = time.monotonic() + grace
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="offload-cni serve",
        description="Serve the offload-cni shim that the node's container runtime executes "
        "(docs/cni.md, 'On a node'). Needs CAP_NET_ADMIN and CAP_SYS_ADMIN in the node's network "
        "namespace, and the node facts file.",
    )
    p.add_argument(
        "--socket", type=Path, default=Path(DEFAULT_SOCKET), help="Unix socket the shim connects to"
    )
    p.add_argument(
        "--health-listen",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics here (e.g. $(POD_IP):9466); off by default",
    )
    p.add_argument(
        "--max-concurrent", type=int, default=8, help="invocations served at once; more wait their turn"
    )
    p.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="log lines: text or JSON objects"
    )
    p.add_argument(
        "--ipam-timeout",
        type=int,
        default=int(ipam.TIMEOUT),
        help="seconds a delegated IPAM plugin may take before it is killed (error 104)",
    )
    return finish_cli(p, EXIT_CODES)


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_format, logger=log.name)
    if not 1 <= args.max_concurrent <= 256:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: --max-concurrent must be 1..256\n")
    if not 1 <= args.ipam_timeout <= 3600:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: --ipam-timeout must be 1..3600\n")
    if args.health_listen:
        try:
            parse_listen(args.health_listen)
        except ValueError as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: --health-listen: {exc}\n")
    try:
        server = Server(args.socket, args.max_concurrent, args.log_format, args.ipam_timeout)
    except OSError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: --socket {args.socket}: {exc}\n")
    health = None
    if args.health_listen:
        try:
            health = HealthServer(
                args.health_listen, server.registry, {"/healthz": server.alive, "/readyz": server.ready}
            ).start()
        except OSError as exc:
            server.close()
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: --health-listen {args.health_listen}: {exc}\n")
    signal.signal(signal.SIGTERM, lambda *_: server.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: server.stopping.set())
    log.info("serving the offload-cni shim on %s", args.socket)
    try:
        server.run()
    finally:
        server.close()
        if health is not None:
            health.stop()
    log.info("stopped")
    return 0


def _connection_main() -> int:
    """The process serving one invocation (started by Server._spawn)."""
    p = argparse.ArgumentParser()
    p.add_argument("--connection-fd", type=int, required=True)
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    p.add_argument("--ipam-timeout", type=float, default=ipam.TIMEOUT)
    args = p.parse_args()
    ipam.TIMEOUT = args.ipam_timeout
    setup_logging(args.log_format, logger="cni_plugin")
    logging.getLogger(log.name).setLevel(logging.INFO)
    with socket.socket(fileno=args.connection_fd) as sock:
        return serve_connection(sock)


if __name__ == "__main__":
    sys.exit(_connection_main())
