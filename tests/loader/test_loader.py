"""The loader against a real gRPC target: exact read-back, restarts on either side, bad sources."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.loader.cli import _config, _parser
from k8s_offload.loader.cli import main as loader_main
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.entities import entity_value
from k8s_offload.loader.metrics import MetricsServer
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE, SHOP, connect, desired, device_state, until


def _loader(target: str, sources: list[str | Path], **kw: Any) -> Loader:
    cfg = LoaderConfig(sources=sources, node=NODE, target=target, poll_interval=0.05, **kw)
    return Loader(cfg)


def _assert_device_holds(address: str, p4info: Any, schema: Schema, bundle: Bundle) -> None:
    """Read every table and profile back with a fresh client and compare entity by entity."""
    reader = connect(address, election_id=100)
    try:
        got = device_state(reader, p4info)
    finally:
        reader.close()
    want = desired(schema, bundle)
    got_managed = {k: v for k, v in got.items() if k[0] != "default" or k in want}
    assert set(got_managed) == set(want)
    for key, item in want.items():
        assert entity_value(got_managed[key].entity) == entity_value(item.entity), key


def test_once_leaves_exactly_the_compiled_bundle(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """`offload-loader --once --target ADDR` exits 0 and the device holds the bundle, nothing else."""
    code = loader_main(["--once", "--target", switch.address, "--node", str(NODE), str(SHOP)])
    assert code == 0
    _assert_device_holds(switch.address, p4info, schema, shop_bundle)


@pytest.mark.parametrize(("profile", "lb"), [("dpdk", "hash"), ("bmv2", "maglev")])
def test_once_loads_entries_lowered_for_the_target_profile(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, profile: str, lb: str
) -> None:
    """`--target-profile`/`--lb` reach the loader's compile: the device holds what offload-compile
    gives with the same options, which differs from the default (dpdk: ranges as value/mask
    blocks; maglev: slot members), so the options cannot be silently dropped."""
    passes = PassConfig(profile=profile, lb=lb)
    bundle = compile_sources([SHOP], NODE, schema=schema, passes=passes).lowered.bundle
    default = compile_sources([SHOP], NODE, schema=schema).lowered.bundle
    assert desired(schema, bundle) != desired(schema, default)
    args = ["--once", "--target", switch.address, "--node", str(NODE), str(SHOP)]
    assert loader_main([*args, "--target-profile", profile, "--lb", lb]) == 0
    _assert_device_holds(switch.address, p4info, schema, bundle)


def test_live_cluster_takes_the_target_profile_and_lb(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incremental compiler lowers for every profile and lb mode: no refusal; the options
    reach the config that the loader hands to its ClusterSource (tests/cluster checks the device)."""
    args = ["--kubeconfig", "kube.yaml", "--target-profile", "dpdk", "--lb", "maglev"]
    cfg = _config(_parser().parse_args(args))
    assert cfg.passes is not None and (cfg.passes.profile, cfg.passes.lb) == ("dpdk", "maglev")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert loader_main(["--in-cluster", "--target-profile", "dpdk", "--lb", "maglev"]) == 2
    err = capsys.readouterr().err
    assert "--in-cluster" in err and "manifests only" not in err  # only the missing service account


def test_restart_writes_only_the_difference(switch: EmbeddedTarget, shop_dir: Path) -> None:
    """State comes from the device on start, so an unchanged bundle costs zero updates."""
    assert _loader(switch.address, [shop_dir]).run_once() == 0
    writes = switch.servicer.write_count

    again = _loader(switch.address, [shop_dir])
    again.reload(force=True)
    again.connect()
    result = again.sync()
    assert result is not None and result.ok and result.updates == 0 and result.writes == 0
    assert switch.servicer.write_count == writes

    slices = shop_dir / "endpointslices.yaml"
    slices.write_text(slices.read_text().replace("10.244.2.20", "10.244.2.21"))
    again.reload(force=True)
    result = again.sync()
    assert result is not None and result.ok
    # one backend replaced: its member (which carries the DNAT) swapped, the group modified in place
    assert result.counts == {"INSERT": 1, "MODIFY": 1, "DELETE": 1}
    assert again.matches()
    again.close()


def test_compile_error_keeps_last_good_state(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader = _loader(switch.address, [shop_dir])
    try:
        loader.step()  # compile + connect
        loader.step()  # sync
        assert loader.in_sync
        good = dict(loader.desired or {})
        writes = switch.servicer.write_count
        (shop_dir / "services.yaml").write_text("kind: Service\nmetadata: {name: [broken\n")
        time.sleep(0.01)
        loader.step()
        assert loader.compile_error is not None
        assert loader.desired == good and loader.metrics.get("offload_compile_errors_total") == 1
        loader.step()
        assert switch.servicer.write_count == writes and loader.matches()
    finally:
        loader.close()


def test_target_restart_is_reconciled(p4info: Any, schema: Schema, shop_bundle: Bundle) -> None:
    """The target comes back empty, without a pipeline: reconnect, re-push the pipeline, resync."""
    first = EmbeddedTarget().start()
    port = first.port
    loader = _loader(first.address, [SHOP], backoff_initial=0.01, backoff_max=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=loader.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert until(lambda: loader.in_sync)
        first.stop(grace=None)
        assert until(lambda: not loader.in_sync and loader.metrics.get("offload_connected") == 0)
        second = EmbeddedTarget(f"127.0.0.1:{port}").start()
        try:
            assert until(lambda: loader.in_sync and loader.metrics.get("offload_reconnects_total") >= 2)
            _assert_device_holds(second.address, p4info, schema, shop_bundle)
        finally:
            stop.set()
            runner.join(5)
            second.stop()
    finally:
        stop.set()
        first.stop()


def test_metrics_and_health(switch: EmbeddedTarget) -> None:
    loader = _loader(switch.address, [SHOP])
    server = MetricsServer(loader.metrics).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        loader.step()
        loader.step()
        assert urllib.request.urlopen(f"{base}/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "offload_primary 1" in text
        assert 'offload_entries{table="svc_frontend"}' in text
        assert 'offload_updates_total{type="insert"}' in text
        assert "offload_last_successful_sync_timestamp_seconds" in text
    finally:
        server.stop()
        loader.close()
