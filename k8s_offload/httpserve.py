"""The one HTTP endpoint of every daemon for probes and Prometheus: /metrics plus named probes.

The loader (`/metrics`, `/healthz`, `/readyz` on `--metrics`), the ARP/NDP proxy (the same on
`--health-listen`) and the CNI server use this one definition:

- `/metrics` renders a prometheus_client registry, in the format the scraper's Accept header asks
  for (Prometheus text, or OpenMetrics); every other path is a probe, a callable answering
  (ok, text): 200 or 503 with that text;
- GET and HEAD (HEAD: the same status and Content-Length, no body); anything else is 501;
- IPv4 and IPv6: `HOST:PORT`, `[IPV6]:PORT`, and a bare `IPV6:PORT` (the port is after the last
  colon), which is what a Kubernetes `$(POD_IP):PORT` expands to on an IPv6 cluster; an empty host
  listens on every address of both families where the kernel has IPv6;
- at most `MAX_CONNECTIONS` connections at once (more are closed at once) and each dropped after
  `IDLE_TIMEOUT` seconds without a request, so idle or slow scrapers cannot pile up threads
  (issue 17.5: 11 -> 311 threads with 300 idle connections).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Probe = Callable[[], tuple[bool, str]]
"""(ok, text): 200 or 503, and the text as the body (a newline is added)."""
MAX_CONNECTIONS = 16
IDLE_TIMEOUT = 10.0
TEXT = "text/plain; charset=utf-8"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``IPV6:PORT`` -> (host, port); ``:PORT`` is every
    address. Raises ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT or [IPv6]:PORT with a port 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def exposition(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The registry's samples for an Accept header: (body, Content-Type)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def _bind_address(host: str, port: int) -> tuple[int, str, bool]:
    """(family, address, IPv6-only) to bind for a parsed listen address. Raises OSError."""
    if not host:
        return (socket.AF_INET6, "::", False) if _has_ipv6() else (socket.AF_INET, "0.0.0.0", False)
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from None
    return family, str(sockaddr[0]), True


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but at most MAX_CONNECTIONS of them: the rest are closed at once."""

    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(
        self, address: tuple[str, int], family: int, v6only: bool, handler: type[BaseHTTPRequestHandler]
    ) -> None:
        self.address_family = family
        self._v6only = v6only
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(self._v6only))
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthServer:
    """Serves ``/metrics`` from ``registry`` (if given) and one path per probe (/healthz, /readyz)."""

    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry | None,
        probes: Mapping[str, Probe],
        name: str = "health",
    ) -> None:
        """Binds at once (OSError if the address cannot be used; ValueError if it does not parse)."""
        host, port = parse_listen(listen)
        family, address, v6only = _bind_address(host, port)
        self._server = _BoundedServer((address, port), family, v6only, _handler(registry, probes))
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry | None, probes: Mapping[str, Probe]) -> type[BaseHTTPRequestHandler]:
    probes = dict(probes)

    class Handler(BaseHTTPRequestHandler):
        timeout = IDLE_TIMEOUT  # read when the server is made; a connection silent this long is dropped
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics" and registry is not None:
                data, ctype = exposition(registry, self.headers.get("Accept", ""))
                self._send(200, data, ctype, body)
            elif path in probes:
                ok, text = probes[path]()
                self._send(200 if ok else 503, f"{text}\n".encode(), TEXT, body)
            else:
                self._send(404, b"not found\n", TEXT, body)

        def _send(self, code: int, data: bytes, ctype: str, body: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the daemon's own log

    return Handler
