"""What the live end-to-end tests share: the example cluster as server objects, the expected device
state (a full compile of what the server holds), reading the device back, and a loader following
the server in a thread, onto an embedded target."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from k8s_offload.cluster.source import parse_raw
from k8s_offload.cluster.watch import WatchConfig
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.compilation import compile_objects
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.entities import (
    Item,
    Key,
    bundle_items,
    device_items,
    entity_value,
    with_initial_defaults,
)
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE, SHOP, connect

from .apiserver import FakeApiServer

P4INFO = read_p4info()


def fast_watch() -> WatchConfig:
    """Short timeouts and backoff, so faults the tests inject are noticed in a fraction of a second."""
    return WatchConfig(watch_timeout=30, read_timeout=5.0, backoff_initial=0.05, backoff_max=0.5)


def shop_objects() -> list[dict[str, Any]]:
    out = []
    for f in sorted(SHOP.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def expected(server: FakeApiServer, schema: Schema, passes: PassConfig | None = None) -> dict[Key, Item]:
    with server.lock:
        bodies = list(server.objects.values())
    objs = [o for b in bodies if (o := parse_raw(b["kind"], b)[1]) is not None]
    bundle = compile_objects(objs, load_node_facts(NODE), schema, passes).bundle()
    return with_initial_defaults(schema, bundle_items(schema, bundle))


def device(address: str) -> dict[Key, Item]:
    reader = connect(address, election_id=2)  # a backup: reading does not depose the loader
    try:
        return device_items(reader.read_all(P4INFO))
    finally:
        reader.close()


def same(a: dict[Key, Item], b: dict[Key, Item]) -> bool:
    return set(a) == set(b) and all(entity_value(a[k].entity) == entity_value(b[k].entity) for k in a)


def wait(cond: Callable[[], bool], timeout: float = 20.0, poll: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


@contextlib.contextmanager
def loader_running(cfg: LoaderConfig) -> Iterator[tuple[Loader, EmbeddedTarget]]:
    """`cfg`'s loader running in a thread against a fresh embedded target (its address set here);
    stopped and joined on exit."""
    with EmbeddedTarget() as sw:
        cfg.target = sw.address
        loader = Loader(cfg)
        stop = threading.Event()
        thread = threading.Thread(target=loader.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield loader, sw
        finally:
            stop.set()
            thread.join(timeout=10)
