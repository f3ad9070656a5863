"""End to end over the real wire: fake API server -> kubernetes client -> loader -> embedded target.

The loader is configured only by a kubeconfig file pointing at the loopback server; the device is
read back with a separate client and compared with a full compile of the server's objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from compiler.bundle.schema import Schema
from compiler.contract import default_schema, read_p4info
from compiler.frontend.nodefacts import load_node_facts
from compiler.incremental import full_compile
from compiler.passes.pipeline import PassConfig
from runtime.entities import Item, Key, bundle_items, device_items, entity_value, with_initial_defaults
from runtime.live import parse_raw
from runtime.loader import Loader, LoaderConfig
from runtime.plan import make_plan
from runtime.switch import EmbeddedSwitch
from runtime.watch import WatchConfig
from tests.runtime.conftest import NODE, SHOP, connect

from .apiserver import FakeApiServer

P4INFO = read_p4info()


def _shop_objects() -> list[dict[str, Any]]:
    out = []
    for f in sorted(SHOP.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def _expected(server: FakeApiServer, schema: Schema, passes: PassConfig | None = None) -> dict[Key, Item]:
    with server.lock:
        bodies = list(server.objects.values())
    objs = [o for b in bodies if (o := parse_raw(b["kind"], b)[1]) is not None]
    bundle = full_compile(schema, objs, load_node_facts(NODE), passes)
    return with_initial_defaults(schema, bundle_items(schema, bundle))


def _device(address: str) -> dict[Key, Item]:
    reader = connect(address, election_id=2)  # a backup: reading does not depose the loader
    try:
        return device_items(reader.read_all(P4INFO))
    finally:
        reader.close()


def _same(a: dict[Key, Item], b: dict[Key, Item]) -> bool:
    return set(a) == set(b) and all(entity_value(a[k].entity) == entity_value(b[k].entity) for k in a)


def _wait(cond: Callable[[], bool], timeout: float = 20.0, poll: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    srv = FakeApiServer(bookmark_interval=0.2).start()
    for obj in _shop_objects():
        srv.apply(obj)
    yield srv
    srv.stop()


@pytest.fixture
def running(server: FakeApiServer, tmp_path: Path) -> Iterator[tuple[Loader, EmbeddedSwitch]]:
    watch = WatchConfig(watch_timeout=30, read_timeout=5.0, backoff_initial=0.05, backoff_max=0.5)
    cfg = LoaderConfig(
        sources=[],
        kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")),
        node=NODE,
        poll_interval=0.05,
        election_id=10,
        watch=watch,
    )
    with EmbeddedSwitch() as sw:
        cfg.target = sw.address
        server.hold_lists.clear()  # the loader must not be ready before the first full list
        loader = Loader(cfg)
        stop = threading.Event()
        thread = threading.Thread(target=loader.run, args=(stop,), daemon=True)
        thread.start()
        try:
            _wait(lambda: loader.client is not None and loader.client.is_primary)
            time.sleep(0.3)
            assert not loader.metrics.ready()
            server.hold_lists.set()
            _wait(loader.metrics.ready)
            yield loader, sw
        finally:
            stop.set()
            thread.join(timeout=10)


def _converges(server: FakeApiServer, loader: Loader, sw: EmbeddedSwitch, schema: Schema) -> None:
    """The loader's desired state, then the device read back, equal a full compile of the server."""
    want = _expected(server, schema)
    _wait(lambda: loader.desired is not None and _same(dict(loader.desired), want))
    _wait(lambda: _same(_device(sw.address), want), poll=0.5)  # few readers: each is an arbitration


def test_follows_the_cluster_with_minimal_writes(
    server: FakeApiServer, running: tuple[Loader, EmbeddedSwitch]
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
    server: FakeApiServer, running: tuple[Loader, EmbeddedSwitch]
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
