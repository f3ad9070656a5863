"""A loopback HTTP server speaking the Kubernetes list/watch protocol, as the API server does.

What it implements, for the kinds the loader may watch (the policy tier CRDs optionally served):
- discovery of discovery.k8s.io/v1 (the loader asks whether EndpointSlices are served);
- list: `{"kind": "PodList", "metadata": {"resourceVersion", "continue"}, "items": [...]}` with
  items lacking kind/apiVersion (as the real server sends them), `limit`/`continue` pagination;
- watch (`?watch=true&resourceVersion=N`): HTTP/1.1 chunked stream of one JSON event per line,
  every event after N, then new ones as they happen, until `timeoutSeconds`; BOOKMARK events
  when `allowWatchBookmarks=true`; a version older than the compaction point gets the real
  server's answer: 200 and one ERROR event holding a `410 Gone` Status;
- get of one Node (`/api/v1/nodes/NAME`; 404 `Status` for an unknown one), what
  `offload-cni install --node-name` reads;
- optionally HTTPS and a required bearer token (401 `Status` without it), as a pod's in-cluster
  client meets the API server;
- faults the tests trigger: `drop_watches()` cuts every open watch mid-stream, `compact()` forgets
  history so resuming watches get 410, `hold_lists` blocks list requests.
Every request is recorded (kind, watch or list, resourceVersion) for assertions.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PATHS = {
    "/api/v1/namespaces": "Namespace",
    "/api/v1/pods": "Pod",
    "/api/v1/services": "Service",
    "/api/v1/endpoints": "Endpoints",
    "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/apis/networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
    "/api/v1/nodes": "Node",
    "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies": "AdminNetworkPolicy",
    "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies": "BaselineAdminNetworkPolicy",
    "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies": "ClusterNetworkPolicy",
}
TIER_KINDS = ("AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy")
API_VERSIONS = {
    "Namespace": "v1",
    "Pod": "v1",
    "Service": "v1",
    "Endpoints": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Node": "v1",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1alpha2",
}
GET_PATHS = {"/api/v1/nodes/": "Node"}  # get of one cluster-scoped object by name


DISCOVERY_PATH = "/apis/discovery.k8s.io/v1"
DISCOVERY = {  # what a real server answers there, trimmed to the one resource
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "discovery.k8s.io/v1",
    "resources": [
        {
            "name": "endpointslices",
            "singularName": "endpointslice",
            "namespaced": True,
            "kind": "EndpointSlice",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    ],
}


@dataclass(frozen=True)
class Request:
    kind: str
    watch: bool
    resource_version: str | None
    bookmarks: bool
    authorization: str | None = None


NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}


def _ident(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


class FakeApiServer:
    def __init__(
        self,
        bookmark_interval: float = 0.2,
        *,
        tls: tuple[str, str] | None = None,
        token: str | None = None,
        serves_endpointslices: bool = True,
        serves_tiers: bool = True,
    ) -> None:
        """`tls`: (certificate, key) PEM files to serve HTTPS with; `token`: the bearer token every
        request must carry; `serves_endpointslices=False`: a server before discovery.k8s.io/v1
        (404 for its discovery document and its list)."""
        self.bookmark_interval = bookmark_interval
        self.token = token
        self.serves_endpointslices = serves_endpointslices
        self.serves_tiers = serves_tiers
        """False: the policy.networking.k8s.io CRDs are not installed (404 for their lists)."""
        self.discovery_requests = 0
        self.lock = threading.Condition()
        self.rv = 100
        self.compacted = 0
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, kind, type, object)
        self.requests: list[Request] = []
        self.hold_lists = threading.Event()
        self.hold_lists.set()
        self._watch_sockets: set[socket.socket] = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> FakeApiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.drop_watches()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path) -> Path:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "loader", "user": {"token": "test-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "loader"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(cfg))
        return path

    # ---- state changes ------------------------------------------------------------------------

    def _record(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.log.append((self.rv, kind, type_, copy.deepcopy(obj)))
        self.lock.notify_all()

    def apply(self, obj: dict[str, Any]) -> None:
        """Create or replace an object (ADDED or MODIFIED)."""
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", API_VERSIONS[obj["kind"]])
        with self.lock:
            key = _ident(obj)
            type_ = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = obj
            self._record(obj["kind"], type_, obj)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with self.lock:
            obj = self.objects.pop((kind, namespace, name))
            self._record(kind, "DELETED", obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.objects[(kind, namespace, name)])

    def compact(self) -> None:
        """Forget all history: a watch resuming from any earlier version gets 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.log.clear()

    def drop_watches(self) -> None:
        """Cut every open watch connection without a proper end of stream."""
        with self.lock:
            socks = list(self._watch_sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def open_watches(self) -> int:
        with self.lock:
            return len(self._watch_sockets)

    def lists(self, kind: str) -> int:
        return sum(1 for r in self.requests if r.kind == kind and not r.watch)

    def watches(self, kind: str) -> list[Request]:
        return [r for r in self.requests if r.kind == kind and r.watch]

    # ---- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path.rstrip("/") == DISCOVERY_PATH and server.serves_endpointslices:  # client adds a /
                    server.discovery_requests += 1
                    self._json(200, DISCOVERY)
                    return
                kind = PATHS.get(url.path)
                if kind == "EndpointSlice" and not server.serves_endpointslices:
                    kind = None
                if kind in TIER_KINDS and not server.serves_tiers:
                    kind = None
                prefix = next((p for p in GET_PATHS if url.path.startswith(p)), None)
                if kind is None and prefix is None:
                    self._json(404, NOT_FOUND)
                    return
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                watch = q.get("watch") in ("true", "1")
                auth = self.headers.get("Authorization")
                server.requests.append(
                    Request(
                        kind or GET_PATHS[prefix or ""],
                        watch,
                        q.get("resourceVersion"),
                        q.get("allowWatchBookmarks") == "true",
                        auth,
                    )
                )
                # The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
                scheme, _, credential = (auth or "").partition(" ")
                if server.token is not None and (scheme.lower() != "bearer" or credential != server.token):
                    status = {"kind": "Status", "status": "Failure", "code": 401, "reason": "Unauthorized"}
                    self._json(401, status)
                    return
                if prefix is not None:
                    key = (GET_PATHS[prefix], "", url.path[len(prefix) :])
                    with server.lock:
                        obj = copy.deepcopy(server.objects.get(key))
                    self._json(200, obj) if obj is not None else self._json(404, NOT_FOUND)
                    return
                assert kind is not None
                if watch:
                    self._watch(kind, q)
                else:
                    self._list(kind, q)

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _list(self, kind: str, q: dict[str, str]) -> None:
                server.hold_lists.wait()
                with server.lock:
                    keys = sorted(k for k in server.objects if k[0] == kind)
                    start = int(q.get("continue") or 0)
                    limit = int(q.get("limit") or 0) or len(keys) or 1
                    page = [copy.deepcopy(server.objects[k]) for k in keys[start : start + limit]]
                    rv = server.rv
                for item in page:  # list items carry neither kind nor apiVersion
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                meta: dict[str, Any] = {"resourceVersion": str(rv)}
                if start + limit < len(keys):
                    meta["continue"] = str(start + limit)
                body = {
                    "kind": f"{kind}List",
                    "apiVersion": API_VERSIONS[kind],
                    "metadata": meta,
                    "items": page,
                }
                self._json(200, body)

            def _chunk(self, event: dict[str, Any]) -> None:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, kind: str, q: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                since = int(q.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(q.get("timeoutSeconds") or 1800)
                bookmarks = q.get("allowWatchBookmarks") == "true"
                with server.lock:
                    server._watch_sockets.add(self.connection)
                try:
                    if since < server.compacted:
                        status = {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": f"too old resource version: {since} ({server.compacted})",
                            "reason": "Expired",
                            "code": 410,
                        }
                        self._chunk({"type": "ERROR", "object": status})
                    else:
                        self._stream(kind, since, deadline, bookmarks)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass  # dropped on purpose, or the client went away
                finally:
                    with server.lock:
                        server._watch_sockets.discard(self.connection)
                    self.close_connection = True

            def _stream(self, kind: str, since: int, deadline: float, bookmarks: bool) -> None:
                last_bookmark = time.monotonic()
                while time.monotonic() < deadline:
                    with server.lock:
                        events = [(rv, t, o) for rv, k, t, o in server.log if k == kind and rv > since]
                        current = server.rv  # read with the log: a bookmark must not skip what comes later
                        if not events:
                            server.lock.wait(
                                min(server.bookmark_interval, max(0.0, deadline - time.monotonic()))
                            )
                    for rv, type_, obj in events:
                        self._chunk({"type": type_, "object": obj})
                        since = rv
                    now = time.monotonic()
                    if bookmarks and not events and now - last_bookmark >= server.bookmark_interval:
                        meta = {"resourceVersion": str(current)}
                        self._chunk(
                            {
                                "type": "BOOKMARK",
                                "object": {"kind": kind, "apiVersion": API_VERSIONS[kind], "metadata": meta},
                            }
                        )
                        since = max(since, current)
                        last_bookmark = now

        return Handler
