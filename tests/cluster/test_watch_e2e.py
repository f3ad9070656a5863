"""End to end over the real wire: fake API server -> kubernetes client -> loader -> embedded target.

The loader is configured only by a kubeconfig file pointing at the loopback server; the device is
read back with a separate client and compared with a full compile of the server's objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.plan import make_plan
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE

from .apiserver import FakeApiServer
from .harness import device as _device
from .harness import expected as _expected
from .harness import fast_watch, loader_running
from .harness import same as _same
from .harness import wait as _wait


@pytest.fixture
def running(server: FakeApiServer, tmp_path: Path) -> Iterator[tuple[Loader, EmbeddedTarget]]:
    kubeconfig = str(server.kubeconfig(tmp_path / "kubeconfig"))
    cfg = LoaderConfig(
        sources=[], kubeconfig=kubeconfig, node=NODE, poll_interval=0.05, election_id=10, watch=fast_watch()
    )
    server.hold_lists.clear()  # the loader must not be ready before the first full list
    with loader_running(cfg) as (loader, sw):
        _wait(lambda: loader.client is not None and loader.client.is_primary)
        time.sleep(0.3)
        assert not loader.metrics.ready()
        server.hold_lists.set()
        _wait(loader.metrics.ready)
        yield loader, sw


def _converges(server: FakeApiServer, loader: Loader, sw: EmbeddedTarget, schema: Schema) -> None:
    """The loader's desired state, then the device read back, equal a full compile of the server."""
    want = _expected(server, schema)
    _wait(lambda: loader.desired is not None and _same(dict(loader.desired), want))
    _wait(lambda: _same(_device(sw.address), want), poll=0.5)  # few readers: each is an arbitration


def test_follows_the_cluster_with_minimal_writes(
    server: FakeApiServer, running: tuple[Loader, EmbeddedTarget]
) -> None:
    loader, sw = running
    schema = default_schema()
    _converges(server, loader, sw, schema)
    cases: list[tuple[str, Callable[[], None]]] = []

    def endpoint_change() -> None:
        eps = server.get(
            "EndpointSlice", "shop", next(n for k, ns, n in server.objects if k == "EndpointSlice")
        )
        eps["endpoints"] = eps["endpoints"][:-1]
        server.apply(eps)

    def pod_label_change() -> None:
        name = next(n for k, ns, n in sorted(server.objects) if k == "Pod" and ns == "shop")
        pod = server.get("Pod", "shop", name)
        pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), "app": "relabelled"}
        server.apply(pod)

    def policy_delete() -> None:
        kind, ns, name = next(k for k in sorted(server.objects) if k[0] == "NetworkPolicy")
        server.delete(kind, ns, name)

    cases = [("endpoint", endpoint_change), ("pod label", pod_label_change), ("policy", policy_delete)]
    for what, change in cases:
        before = _expected(server, schema)
        pushes = loader.metrics.get("offload_delta_pushes_total")
        change()
        after = _expected(server, schema)
        minimal = make_plan(schema, after, before)
        assert len(minimal), what  # each case changes the device
        _wait(lambda p=pushes: loader.metrics.get("offload_delta_pushes_total") > p)  # a delta, not a resync
        _converges(server, loader, sw, schema)
        result = loader.last_result
        assert result is not None and result.ok
        assert result.updates == len(minimal), what  # the delta push wrote exactly the minimal diff


def test_resumes_after_dropped_connections_and_relists_after_410(
    server: FakeApiServer, running: tuple[Loader, EmbeddedTarget]
) -> None:
    loader, sw = running
    schema = default_schema()
    _converges(server, loader, sw, schema)
    lists_before = server.lists("Pod")
    # Only a BOOKMARK can move the Pod watch past a version made by another kind's event.
    ns = server.get("Namespace", "", next(n for k, _, n in sorted(server.objects) if k == "Namespace"))
    ns["metadata"].setdefault("labels", {})["touched"] = "yes"
    server.apply(ns)
    head = server.rv
    assert loader.cluster is not None
    pod_watch = next(w for w in loader.cluster.watch.watches if w.resource.kind == "Pod")
    _wait(lambda: int(pod_watch.resource_version or 0) >= head)
    watches_before = len(server.watches("Pod"))

    # Dropped connections: the watch resumes from the last version seen, without a new list.
    server.drop_watches()
    name = next(n for k, ns, n in sorted(server.objects) if k == "Pod" and ns == "shop")
    server.delete("Pod", "shop", name)
    _converges(server, loader, sw, schema)
    resumed = server.watches("Pod")[watches_before:]
    assert resumed and all(r.resource_version is not None and r.bookmarks for r in resumed)
    assert server.lists("Pod") == lists_before

    # History compacted while disconnected: 410 Gone, a relist, and the deletion it reveals.
    server.compact()
    kind, ns, name = next(k for k in sorted(server.objects) if k[0] == "Service")
    with server.lock:  # a deletion the watch never reports: only the relist can notice it
        del server.objects[(kind, ns, name)]
        server.rv += 1
        server.compacted = server.rv
    server.drop_watches()
    _wait(lambda: server.lists("Service") >= 2)
    _converges(server, loader, sw, schema)
    assert server.lists("Pod") > lists_before
