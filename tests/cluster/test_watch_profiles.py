"""A live cluster lowered for the dpdk profile and Maglev: fake API server -> loader with
`LoaderConfig(passes=...)` -> embedded target; the device read back equals the full compile with
the same options, before and after an event pushed as a minimal delta."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.loader.daemon import LoaderConfig
from k8s_offload.loader.plan import make_plan
from tests.embedded_fixtures import NODE

from .apiserver import FakeApiServer
from .harness import device as _device
from .harness import expected as _expected
from .harness import fast_watch, loader_running
from .harness import same as _same
from .harness import wait as _wait

CONFIGS = {
    "dpdk": PassConfig(profile="dpdk"),
    "dpdk-maglev-merge-only": PassConfig(frozenset({"merge_rules"}), "dpdk", lb="maglev"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_live_cluster_lowered_for_the_profile(server: FakeApiServer, tmp_path: Path, name: str) -> None:
    passes = CONFIGS[name]
    schema = default_schema()
    cfg = LoaderConfig(
        sources=[],
        kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")),
        node=NODE,
        poll_interval=0.05,
        election_id=10,
        watch=fast_watch(),
        passes=passes,
    )
    want = _expected(server, schema, passes)
    assert not _same(want, _expected(server, schema)), "the options must change the entries"
    with loader_running(cfg) as (loader, sw):
        _wait(loader.metrics.ready)
        _wait(lambda: _same(_device(sw.address), want), poll=0.5)

        # An endpoint goes: a delta push of exactly the minimal diff, then the device agrees.
        before = want
        pushes = loader.metrics.get("offload_delta_pushes_total")
        eps = server.get("EndpointSlice", "shop", "cart-abc12")  # two ready endpoints
        eps["endpoints"] = eps["endpoints"][:-1]
        server.apply(eps)
        want = _expected(server, schema, passes)
        minimal = make_plan(schema, want, before)
        assert len(minimal)
        _wait(lambda: loader.metrics.get("offload_delta_pushes_total") > pushes)
        _wait(lambda: _same(_device(sw.address), want), poll=0.5)
        result = loader.last_result
        assert result is not None and result.ok
        assert result.updates == len(minimal)
