"""A small HTTP endpoint for probes and Prometheus: /healthz, /readyz and /metrics, GET and HEAD.

The metrics text comes from prometheus_client (``generate_latest`` of a registry); the probes are
callables answering (ok, reason). It listens on IPv4 or IPv6 (``HOST:PORT``, ``[V6]:PORT``) with
the address family the host part resolves to, and closes connections idle for longer than
``IDLE_TIMEOUT`` so that idle clients cannot pile up threads.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Probe = Callable[[], tuple[bool, str]]
IDLE_TIMEOUT = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``IPV6:PORT`` (the port is always after the last colon, so
    a Kubernetes ``$(POD_IP):PORT`` works on IPv6 clusters too); an empty host means all IPv4
    addresses. Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0..65535, got {port!r}")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = family
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class HealthServer:
    """Serves ``/metrics`` from ``registry`` and one path per probe (e.g. /healthz, /readyz)."""

    def __init__(self, listen: str, registry: CollectorRegistry, probes: Mapping[str, Probe]) -> None:
        host, port = parse_listen(listen)
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from None
        registry_, probes_ = registry, dict(probes)

        class Handler(BaseHTTPRequestHandler):
            timeout = IDLE_TIMEOUT
            protocol_version = "HTTP/1.1"

            def _answer(self, body_wanted: bool) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry_)
                elif path in probes_:
                    ok, reason = probes_[path]()
                    status, ctype, body = (
                        (200 if ok else 503),
                        "text/plain; charset=utf-8",
                        f"{reason}\n".encode(),
                    )
                else:
                    status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body_wanted:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the daemon's own log

        self._server = _Server((str(sockaddr[0]), int(sockaddr[1])), family, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
