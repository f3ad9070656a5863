"""EndpointSlices rather than v1 Endpoints where the API server serves them: the loader asks
discovery once (GET /apis/discovery.k8s.io/v1) and watches one of the two kinds, so its
ClusterRole needs no rule for Endpoints (deploy/rbac.yaml, checked in tests/deploy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_offload.cluster.source import ClusterSource
from k8s_offload.cluster.watch import RESOURCES, ClusterWatch, api_client, watched_kinds
from k8s_offload.compiler.contract import default_schema

from .apiserver import FakeApiServer
from .harness import fast_watch, shop_objects
from .harness import wait as _wait

ALL = tuple(r.kind for r in RESOURCES)


def _client(server: FakeApiServer, tmp_path: Path) -> object:
    return api_client(str(server.kubeconfig(tmp_path / "kubeconfig")))


@pytest.fixture
def old_server() -> Iterator[FakeApiServer]:
    srv = FakeApiServer(serves_endpointslices=False).start()
    for obj in shop_objects():
        srv.apply(obj)
    yield srv
    srv.stop()


def test_served_endpointslices_replace_endpoints(server: FakeApiServer, tmp_path: Path) -> None:
    kinds = watched_kinds(_client(server, tmp_path))
    assert kinds == tuple(k for k in ALL if k != "Endpoints")
    assert server.discovery_requests == 1


def test_a_server_without_discovery_v1_gets_endpoints_watched(
    old_server: FakeApiServer, tmp_path: Path
) -> None:
    assert watched_kinds(_client(old_server, tmp_path)) == tuple(k for k in ALL if k != "EndpointSlice")


def test_an_unreachable_server_counts_as_serving_slices(server: FakeApiServer, tmp_path: Path) -> None:
    client = _client(server, tmp_path)
    server.stop()  # connection refused from now on
    assert "Endpoints" not in watched_kinds(client, timeout=2.0)


def test_the_source_lists_and_watches_only_the_served_kinds(server: FakeApiServer, tmp_path: Path) -> None:
    """Ready after lists of the five kinds; no request for v1 Endpoints ever reaches the server."""
    source = ClusterSource(default_schema(), _client(server, tmp_path), None, fast_watch()).start()
    try:
        _wait(lambda: source.poll(0.05) is not None or source.ready)
        _wait(lambda: {r.kind for r in server.requests if r.watch} >= set(source.kinds))
    finally:
        source.close()
    assert source.kinds == set(ALL) - {"Endpoints"}
    assert "Endpoints" not in {r.kind for r in server.requests}


def test_explicit_kinds_skip_discovery(server: FakeApiServer, tmp_path: Path) -> None:
    cfg = fast_watch()
    cfg.kinds = ("Pod",)
    watch = ClusterWatch(_client(server, tmp_path), cfg)
    assert watch.kinds == ("Pod",) and server.discovery_requests == 0
