"""The loader brings a target up by itself (loader/bootstrap.py) against the embedded target: a
fresh device, a foreign pipeline, a commit that fails the way PI's does, and a target restart in
the middle of the bootstrap. After each, the device must forward real frames exactly as our
interpreter holding the compiled bundle does (tests/differential/harness.py). The same scenarios
run against bmv2 in tests/bmv2/test_bootstrap.py."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import grpc
import pytest

from k8s_offload.compiler.bundle.p4rt import updates
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.loader.bootstrap import PipelineManager
from k8s_offload.loader.daemon import Loader, LoaderConfig, pipeline_cookie
from k8s_offload.p4rt.client import P4RuntimeClient
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.target.device import Device, Pipeline, interpreter_pipeline, state_only_pipeline
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.server import EmbeddedTarget
from tests.differential import frames
from tests.differential.harness import DeviceDataplane, InterpreterDataplane, run
from tests.embedded_fixtures import NODE, SHOP

REQ = p4runtime.SetForwardingPipelineConfigRequest


class HalfCommittingDevice(Device):
    """PI/bmv2 after a failed RECONCILE_AND_COMMIT: the new config is what Get, Read and Write see
    (cookie included), but the old one keeps forwarding until a COMMIT; loading another config
    fails until then (bmv2: ONGOING_SWAP)."""

    forwarding: Pipeline | None = None

    def set_pipeline(self, action: int, config: Any, has_config: bool) -> None:
        if action == REQ.RECONCILE_AND_COMMIT and self.pipeline is not None and self.forwarding is None:
            self.forwarding = self.pipeline
            self.pipeline = self._realize(config)
            raise P4RuntimeError(code_pb2.UNKNOWN, "Error when reconciling config")
        if self.forwarding is not None:
            if action != REQ.COMMIT:
                raise P4RuntimeError(code_pb2.UNKNOWN, "Error in first phase of device update")
            self.forwarding = None
            return
        super().set_pipeline(action, config, has_config)

    def inject(self, port: int, data: bytes) -> tuple[int | None, bytes]:
        with self.state_lock:  # reads wait: they must not see the forwarding pipeline's counters
            if self.forwarding is None:
                return super().inject(port, data)
            control, self.pipeline = self.pipeline, self.forwarding
            try:
                return super().inject(port, data)
            finally:
                self.pipeline = control


def _compiled() -> CompileResult:
    return compile_sources([SHOP], NODE)


def _loader(address: str, **kw: Any) -> Loader:
    kw.setdefault("probe_timeout", 1.0)
    return Loader(LoaderConfig(sources=[SHOP], node=NODE, target=address, poll_interval=0.05, **kw))


def _forwards(device: Device, result: CompileResult) -> None:
    """Real frames through the device agree with an interpreter given the bundle directly."""
    reference = InterpreterDataplane(read_p4info())
    reference.install(updates(result.schema, result.lowered.bundle))
    rng = random.Random(7)
    scenario = frames.services_and_pods(result.ir, rng, limit=60)
    report = run(reference, DeviceDataplane(device), scenario)
    assert not report.mismatches, "\n".join(report.mismatches)
    assert report.forwarded > 50, report


def _two_programs(config: Any, state: Any = None) -> Pipeline:
    """A device that also runs the foreign program: our program for our P4Info (which the
    interpreter checks against the program), the foreign one as state alone."""
    if config.p4info.pkg_info.name == "someone-else":
        return state_only_pipeline(config, state)
    return interpreter_pipeline(config, state)


def _foreign_config(address: str) -> None:
    """Another controller's pipeline (a P4Info ours cannot replay into) with entries in it."""
    foreign = read_p4info()
    foreign.pkg_info.name = "someone-else"
    foreign.tables[0].preamble.id = 0x02000FFF  # port_class under an id our P4Info does not have
    client = P4RuntimeClient(address, election_id=1)
    try:
        assert client.connect()
        client.set_pipeline(foreign, b"", 0xF0F0, REQ.VERIFY_AND_COMMIT)
        entry = p4runtime.Update(type=p4runtime.Update.INSERT)
        te = entry.entity.table_entry
        te.table_id = foreign.tables[0].preamble.id  # port_class
        te.match.add(field_id=1).exact.value = b"\x07"
        te.action.action.action_id = foreign.tables[0].action_refs[0].id
        te.action.action.params.add(param_id=1, value=b"\x01")
        client.write([entry])
    finally:
        client.close()


def _failed_reconcile(address: str, p4info: Any, cookie: int) -> P4RuntimeClient:
    """A RECONCILE_AND_COMMIT the half-committing device refuses; the client stays connected."""
    client = P4RuntimeClient(address, election_id=1)
    assert client.connect()
    with pytest.raises(P4RuntimeRpcError, match="reconciling"):
        client.set_pipeline(p4info, b"", cookie, REQ.RECONCILE_AND_COMMIT)
    return client


def test_fresh_device(tmp_path: Path) -> None:
    with EmbeddedTarget() as target:
        loader = _loader(target.address)
        assert loader.run_once() == 0
        assert loader.last_result is not None and loader.last_result.ok
        _forwards(target.device(), _compiled())
        again = _loader(target.address)
        assert again.run_once() == 0  # a no-op resync: nothing written
        assert again.last_result is not None and again.last_result.updates == 0


def test_foreign_pipeline_is_replaced(caplog: pytest.LogCaptureFixture) -> None:
    """RECONCILE_AND_COMMIT cannot carry the foreign state over (INVALID_ARGUMENT), so the loader
    falls back to VERIFY_AND_COMMIT; the foreign entry is gone and ours are all there."""
    with EmbeddedTarget() as target:
        target.servicer.devices[1] = Device(1, _two_programs)
        _foreign_config(target.address)
        loader = _loader(target.address)
        assert loader.run_once() == 0
        assert "RECONCILE_AND_COMMIT failed (INVALID_ARGUMENT" in caplog.text
        pipe = target.device().pipeline
        assert pipe is not None and pipe.config.cookie.cookie == loader.cookie
        port_class = pipe.state.tables[read_p4info().tables[0].preamble.id]
        assert 7 not in {e.key[0] for e in port_class.engine.entries()}
        _forwards(target.device(), _compiled())


def test_failed_commit_is_caught_by_the_probe(caplog: pytest.LogCaptureFixture) -> None:
    """PI's failed RECONCILE_AND_COMMIT leaves our cookie reported and the old pipeline forwarding.
    A first loader, stopped right there (restart mid-bootstrap), leaves the device so; a cookie
    check alone would now report success over an empty data plane. The probe sees that the new
    pipeline does not forward; the loader commits it and the device forwards."""
    with EmbeddedTarget() as target:
        target.servicer.devices[1] = device = HalfCommittingDevice(1, _two_programs)
        _foreign_config(target.address)
        first = _loader(target.address)
        cfg = first.config
        client = _failed_reconcile(target.address, first.p4info, first.cookie)
        try:
            manager = PipelineManager(client, first.p4info, cfg.device_config, first.cookie, "cookie")
            assert manager.device_cookie() == first.cookie and manager.prove()  # the cookie is fooled
            probe = PipelineManager(client, first.p4info, cfg.device_config, first.cookie, probe_timeout=0.5)
            assert not probe.prove()  # the probe is not
        finally:
            client.close()
        loader = _loader(target.address)
        assert loader.run_once() == 0
        assert "does not forward with it" in caplog.text
        assert device.forwarding is None
        _forwards(device, _compiled())


def test_failed_commit_then_push_finishes_the_swap_first(caplog: pytest.LogCaptureFixture) -> None:
    """A different cookie on a half-committed device: RECONCILE is refused, VERIFY_AND_COMMIT is
    refused until the pending swap is done (bmv2 ONGOING_SWAP); COMMIT, then VERIFY_AND_COMMIT."""
    with EmbeddedTarget() as target:
        target.servicer.devices[1] = device = HalfCommittingDevice(1, _two_programs)
        _foreign_config(target.address)
        other = read_p4info()
        other.pkg_info.version = "0.9"
        _failed_reconcile(target.address, other, 0xBEEF).close()
        loader = _loader(target.address)
        assert loader.run_once() == 0
        assert "committing the pending config first" in caplog.text
        assert device.forwarding is None
        _forwards(device, _compiled())


def test_target_restart_mid_bootstrap(tmp_path: Path) -> None:
    """The target restarts (all state lost) after the loader pushed the pipeline and before it
    wrote an entry: the daemon reconnects, pushes again, proves it and converges."""
    address = f"unix://{tmp_path / 'p4rt.sock'}"
    target = EmbeddedTarget(address).start()
    try:
        loader = _loader(address, backoff_initial=0.05, backoff_max=0.2)
        loader.connect()  # stream, arbitration, pipeline pushed and proven
        assert loader._pipeline_ok
        target.stop(grace=None)
        target = EmbeddedTarget(address).start()  # a fresh device, no pipeline
        for _ in range(100):
            loader.step()
            if loader.in_sync and loader.metrics.ready():
                break
        assert loader.in_sync and loader.matches()
        pipe = target.device().pipeline
        assert pipe is not None and pipe.config.cookie.cookie == pipeline_cookie(loader.p4info, b"")
        _forwards(target.device(), _compiled())
        loader.close()
    finally:
        target.stop()


def test_p4c_p4info_converges_without_rewrites() -> None:
    """p4c 1.2.4 writes no initial_default_action: the loader takes the defaults from our front
    end's P4Info where the tables agree, so a second run writes nothing."""
    p4c_like = read_p4info()
    for table in p4c_like.tables:
        table.ClearField("initial_default_action")
    with EmbeddedTarget() as target:
        assert _loader(target.address, p4info=p4c_like).run_once() == 0
        again = _loader(target.address, p4info=p4c_like)
        assert again.run_once() == 0
        assert again.last_result is not None and again.last_result.updates == 0
        # Every table but svc_frontend (17), and the 14 tier tables (issue 20), have a default.
        assert again.desired is not None and sum(1 for k in again.desired if k[0] == "default") == 17 + 14


def test_a_target_that_cannot_be_probed_is_not_reported_ready(caplog: pytest.LogCaptureFixture) -> None:
    """A target without a data plane (packets go nowhere): the probe never moves the counter, so
    --once fails and says why; --pipeline-check cookie accepts the cookie read-back instead."""
    with EmbeddedTarget(factory=state_only_pipeline) as target:
        loader = _loader(target.address, probe_timeout=0.3)
        assert loader.run_once() == 1
        assert "did not move drop_reasons[1]" in caplog.text and not loader.metrics.ready()
        assert "did not move" in loader.pipeline_error
        assert _loader(target.address, pipeline_check="cookie").run_once() == 0


def test_protobuf_backend_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader says at start which protobuf backend it runs on, and warns on the slow one."""
    caplog.set_level("INFO")
    _loader("embedded")
    assert "protobuf backend: upb" in caplog.text
    monkeypatch.setattr("k8s_offload.loader.daemon.protobuf_backend", lambda: "python")
    _loader("embedded")
    assert any(r.levelname == "WARNING" and "pure-Python backend" in r.message for r in caplog.records)


class StratumLikeDevice(Device):
    """Stratum's P4Service (which infrap4d builds on): RECONCILE_AND_COMMIT is UNIMPLEMENTED."""

    def set_pipeline(self, action: int, config: Any, has_config: bool) -> None:
        if action == REQ.RECONCILE_AND_COMMIT:
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, "RECONCILE_AND_COMMIT action not supported yet")
        super().set_pipeline(action, config, has_config)


def _stratum_like(target: EmbeddedTarget) -> StratumLikeDevice:
    """Also a Get before any push answered FAILED_PRECONDITION, as Stratum and PI do."""
    target.servicer.devices[1] = device = StratumLikeDevice(1, target.device().factory)
    spec_get = target.servicer.GetForwardingPipelineConfig

    def get(request: Any, context: Any) -> Any:
        if device.pipeline is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "No valid forwarding pipeline config has been pushed"
            )
        return spec_get(request, context)

    target.servicer.GetForwardingPipelineConfig = get  # type: ignore[method-assign]
    return device


def test_stratum_like_target(caplog: pytest.LogCaptureFixture) -> None:
    """Fresh: FAILED_PRECONDITION means no pipeline. Foreign: RECONCILE is UNIMPLEMENTED, so
    VERIFY_AND_COMMIT replaces it (its state cleared and written again)."""
    caplog.set_level("INFO")
    target = EmbeddedTarget()
    device = _stratum_like(target)  # before start: the server binds its handlers then
    target.start()
    try:
        assert _loader(target.address).run_once() == 0
        assert "the device has no pipeline" in caplog.text
        other = read_p4info()
        other.pkg_info.version = "0.9"
        client = P4RuntimeClient(target.address, election_id=1)
        try:
            assert client.connect()
            client.set_pipeline(other, b"", 0xBEEF, REQ.VERIFY_AND_COMMIT)
        finally:
            client.close()
        assert _loader(target.address).run_once() == 0
        assert "RECONCILE_AND_COMMIT failed (UNIMPLEMENTED" in caplog.text
        _forwards(device, _compiled())
    finally:
        target.stop()
