"""A pod's stand-in server: HTTP/1.1 (keep-alive) on each container port, dual-stack.

Every response names the pod, the port and the client address as the server saw it, so a client
can tell which backend a Service sent it to; `GET /bulk/N` returns N zero bytes instead.
`python -m k8s_offload.lab.podserver --name NS/POD --port 8080`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    pod_name = ""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes; no 40 ms delayed-ACK stall
    server: _Server

    def do_GET(self) -> None:
        client = self.client_address[0].removeprefix("::ffff:")
        port = self.server.server_address[1]
        cport = self.client_address[1]
        body = f"pod={self.server.pod_name} port={port} client={client} cport={cport}\n".encode()
        if self.path.startswith("/bulk/") and self.path[6:].isdigit():  # N bytes, for throughput
            body = bytes(min(int(self.path[6:]), 1 << 30))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lab-podserver", description=__doc__)
    p.add_argument("--name", required=True, help="pod name to report (namespace/name)")
    p.add_argument("--port", type=int, action="append", required=True, help="TCP port (repeatable)")
    args = p.parse_args(argv)
    servers = []
    for port in args.port:
        srv = _Server(("::", port), _Handler)
        srv.pod_name = args.name
        servers.append(srv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"serving {args.name} on {', '.join(map(str, args.port))}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
