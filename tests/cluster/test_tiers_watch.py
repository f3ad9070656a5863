"""The live watch with the cluster policy tiers: the loader lists and watches Nodes and the
policy.networking.k8s.io CRDs where they are served and follows their changes with minimal
writes; where the API server does not serve them it runs without them and says so once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.cluster.source import ClusterSource
from k8s_offload.cluster.watch import api_client
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.plan import make_plan
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE

from .apiserver import TIER_KINDS, FakeApiServer
from .harness import device, expected, fast_watch, loader_running, same, shop_objects, wait


def guardrail(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "sre-guardrails"},
        "spec": {
            "priority": 10,
            "subject": {"namespaces": {}},
            "egress": [
                {"name": "no-db", "action": "Deny", "to": [{"networks": ["10.244.0.0/16"]}],
                 "ports": [{"portNumber": {"protocol": "TCP", "port": port}}]},
            ],
        },
    }  # fmt: skip


def infra_node(role: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-z", "labels": {"role": role}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.77.7"}]},
    }


@pytest.fixture
def running(server: FakeApiServer, tmp_path: Path) -> Iterator[tuple[Loader, EmbeddedTarget]]:
    kubeconfig = str(server.kubeconfig(tmp_path / "kubeconfig"))
    cfg = LoaderConfig(
        sources=[], kubeconfig=kubeconfig, node=NODE, poll_interval=0.05, election_id=10, watch=fast_watch()
    )
    with loader_running(cfg) as (loader, sw):
        wait(loader.metrics.ready)
        yield loader, sw


def test_follows_tier_policies_and_nodes(
    server: FakeApiServer, running: tuple[Loader, EmbeddedTarget]
) -> None:
    loader, sw = running
    schema = default_schema()
    nodes_policy = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "no-infra"},
        "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
                 "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]}]},
    }  # fmt: skip
    steps = [
        ("add AdminNetworkPolicy", lambda: server.apply(guardrail(5432))),
        ("modify AdminNetworkPolicy", lambda: server.apply(guardrail(6379))),
        ("add a Node no policy selects yet", lambda: server.apply(infra_node("infra"))),
        ("add a ClusterNetworkPolicy selecting it", lambda: server.apply(nodes_policy)),
        ("relabel the Node out of it", lambda: server.apply(infra_node("worker"))),
        ("delete AdminNetworkPolicy", lambda: server.delete("AdminNetworkPolicy", "", "sre-guardrails")),
    ]
    for what, change in steps:
        before = expected(server, schema)
        pushes = loader.metrics.get("offload_delta_pushes_total")
        change()
        after = expected(server, schema)
        minimal = make_plan(schema, after, before)
        if what.startswith("add a Node no policy"):  # read, compiled, nothing to write
            assert not len(minimal)
            time.sleep(0.3)
            assert loader.desired is not None and same(dict(loader.desired), after)
            continue
        assert len(minimal), what
        wait(lambda p=pushes: loader.metrics.get("offload_delta_pushes_total") > p)
        wait(lambda a=after: loader.desired is not None and same(dict(loader.desired), a))
        result = loader.last_result
        assert result is not None and result.ok and result.updates == len(minimal), what
    wait(lambda: same(device(sw.address), expected(server, schema)), poll=0.5)


def test_runs_without_the_crds_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    srv = FakeApiServer(serves_tiers=False).start()
    try:
        for obj in shop_objects():
            srv.apply(obj)
        client = api_client(str(srv.kubeconfig(tmp_path / "kubeconfig")))
        caplog.set_level(logging.WARNING, logger="k8s_offload.cluster.watch")
        source = ClusterSource(default_schema(), client, None, fast_watch()).start()
        try:
            wait(lambda: source.poll(0.05) is not None or source.ready)
            wait(lambda: source.ready)
            time.sleep(1.2)  # more than two retries at the longest backoff of fast_watch()
            assert set(TIER_KINDS) <= source.kinds
        finally:
            source.close()
        said = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
        assert sorted(m.split(" ", 1)[0] for m in said) == sorted(TIER_KINDS), said
        assert all(m.endswith("(its CRD is not installed): running without it") for m in said)
    finally:
        srv.stop()
