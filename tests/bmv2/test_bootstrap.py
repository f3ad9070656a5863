"""The loader alone brings a real simple_switch_grpc up (issue 16): a fresh switch, one running a
foreign pipeline, one left half-committed by a failed RECONCILE_AND_COMMIT, and a switch restart
in the middle of the bootstrap. After each, real frames through bmv2 must come out exactly as
from our interpreter holding the compiled bundle (tests/differential/harness.py). The same
scenarios against the embedded target: tests/loader/test_bootstrap.py."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_offload.compiler.bundle.p4rt import updates
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.loader.daemon import Loader, LoaderConfig, pipeline_cookie
from k8s_offload.p4rt.client import RECONCILE_AND_COMMIT, VERIFY_AND_COMMIT, P4RuntimeClient
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from tests.bmv2.conftest import Build, compile_program
from tests.bmv2.dataplane import Bmv2Dataplane
from tests.bmv2.switch import Bmv2
from tests.differential import frames
from tests.differential.harness import InterpreterDataplane, run

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop" / "cluster"
NODE = REPO / "examples" / "shop" / "node.yaml"

FOREIGN = """#include <core.p4>
#include <v1model.p4>
header eth_t { bit<48> dst; bit<48> src; bit<16> type; }
struct h_t { eth_t eth; }
struct m_t { }
parser P(packet_in pk, out h_t h, inout m_t m, inout standard_metadata_t sm) {
    state start { pk.extract(h.eth); transition accept; }
}
control V(inout h_t h, inout m_t m) { apply { } }
control I(inout h_t h, inout m_t m, inout standard_metadata_t sm) {
    counter(64, CounterType.packets) seen;
    action to_port(bit<9> port) { sm.egress_spec = port; }
    action nop() { }
    table l2 { key = { h.eth.dst : exact; } actions = { to_port; nop; } default_action = nop(); }
    apply { seen.count((bit<32>)sm.ingress_port); l2.apply(); }
}
control E(inout h_t h, inout m_t m, inout standard_metadata_t sm) { apply { } }
control C(inout h_t h, inout m_t m) { apply { } }
control D(packet_out pk, in h_t h) { apply { pk.emit(h.eth); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


def _loader_cli(switch: Bmv2, build: Build, *extra: str) -> subprocess.CompletedProcess[str]:
    """`offload-loader --once` as an operator runs it, in its own process."""
    cmd = [sys.executable, "-m", "k8s_offload.loader.cli", "--once", "--target", switch.address]
    cmd += [
        "--device-id",
        str(switch.device_id),
        "--device-config",
        str(build.p4info_path.with_name("k8s_dp.json")),
    ]
    cmd += ["--p4info", str(build.p4info_path), "--node", str(NODE), "--metrics", "", *extra, str(SHOP)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _forwards(switch: Bmv2, build: Build) -> None:
    """Real frames through bmv2 agree with our interpreter given the bundle directly."""
    result: CompileResult = compile_sources([SHOP], NODE)
    reference = InterpreterDataplane(read_p4info())
    reference.install(updates(result.schema, result.lowered.bundle))
    client = P4RuntimeClient(switch.address, device_id=switch.device_id, election_id=1)
    try:
        assert client.connect(10)
        report = run(
            reference,
            Bmv2Dataplane(switch, client, build.p4info),
            frames.services_and_pods(result.ir, random.Random(3), limit=60),
        )
    finally:
        client.close()
    assert not report.mismatches, "\n".join(report.mismatches)
    assert report.forwarded > 50, report


def _set(switch: Bmv2, p4info: object, config: bytes, cookie: int, action: int) -> None:
    client = P4RuntimeClient(switch.address, device_id=switch.device_id, election_id=1)
    try:
        assert client.connect(10)
        client.set_pipeline(p4info, config, cookie, action)
    finally:
        client.close()


def test_fresh_switch(bmv2: Bmv2, p4c_build: Build) -> None:
    """PI answers the first GetForwardingPipelineConfig with FAILED_PRECONDITION; the loader takes
    that for "no pipeline", pushes it, proves it, writes; a second run writes nothing."""
    first = _loader_cli(bmv2, p4c_build)
    assert first.returncode == 0, first.stderr + bmv2.tail()
    assert "No forwarding pipeline config set" in first.stderr and "device matches" in first.stderr
    second = _loader_cli(bmv2, p4c_build)
    assert second.returncode == 0, second.stderr
    assert "0 updates in 0 writes" in second.stderr and "VERIFY_AND_COMMIT" not in second.stderr
    _forwards(bmv2, p4c_build)


def test_foreign_pipeline(bmv2: Bmv2, p4c_build: Build, tmp_path: Path) -> None:
    """Another program with an indirect counter runs: PI's RECONCILE_AND_COMMIT replays the counter
    as INSERTs and fails half-way; the loader finishes the pending swap, replaces the pipeline with
    VERIFY_AND_COMMIT and the device forwards with ours."""
    (tmp_path / "foreign.p4").write_text(FOREIGN)
    foreign = compile_program(tmp_path / "foreign.p4", tmp_path / "foreign")
    _set(bmv2, foreign.p4info, foreign.json, 0xF0F0, VERIFY_AND_COMMIT)
    done = _loader_cli(bmv2, p4c_build)
    assert done.returncode == 0, done.stderr + bmv2.tail()
    assert "RECONCILE_AND_COMMIT failed" in done.stderr
    _forwards(bmv2, p4c_build)


def test_half_committed_switch(bmv2: Bmv2, p4c_build: Build) -> None:
    """Our pipeline under another cookie, with entries; then a RECONCILE_AND_COMMIT with our cookie
    fails inside PI (the indirect counter), leaving our config loaded and reported but never swapped
    in: what a loader stopped right after that call leaves behind. A cookie check would now say
    "ours"; the probe sees the data plane does not run it, and the loader commits it."""
    assert _loader_cli(bmv2, p4c_build, "--pipeline-check", "cookie").returncode == 0
    other = read_p4info()  # ours: same program, another cookie
    _set(bmv2, other, p4c_build.json, 1, VERIFY_AND_COMMIT)
    cookie = pipeline_cookie(p4c_build.p4info, p4c_build.json)
    with pytest.raises(P4RuntimeRpcError, match="reconciling"):
        _set(bmv2, p4c_build.p4info, p4c_build.json, cookie, RECONCILE_AND_COMMIT)
    fooled = _loader_cli(bmv2, p4c_build, "--pipeline-check", "cookie")
    assert fooled.returncode == 0  # the cookie alone says all is well...
    _silent_black_hole(bmv2, p4c_build)  # ...while nothing forwards
    done = _loader_cli(bmv2, p4c_build)
    assert done.returncode == 0, done.stderr + bmv2.tail()
    assert "does not forward with it" in done.stderr
    _forwards(bmv2, p4c_build)


def _silent_black_hole(switch: Bmv2, build: Build) -> None:
    """A pod's SYN to a Service: the half-committed switch drops it (the old, empty tables)."""
    result = compile_sources([SHOP], NODE)
    client = next(c for c in frames.pods_of(result.ir) if c.ip.version == 4)
    fe = next(f for f in result.ir.frontends if f.vip.version == 4)
    syn = frames.frame(
        client.mac, result.ir.node.gateway.mac, client.ip, fe.vip, frames.l4(fe.protocol, 40123, fe.port)
    )
    switch.drain(0.05)
    switch.send(client.port, syn)
    assert switch.drain(0.5) == []


def test_switch_restart_mid_bootstrap(bmv2: Bmv2, p4c_build: Build) -> None:
    """The switch restarts (state and pipeline gone) after the loader pushed and proved the
    pipeline and before it wrote an entry: the daemon reconnects, bootstraps again, converges."""
    cfg = LoaderConfig(
        sources=[SHOP],
        node=NODE,
        target=bmv2.address,
        device_id=bmv2.device_id,
        p4info=p4c_build.p4info,
        device_config=p4c_build.json,
        poll_interval=0.05,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    loader = Loader(cfg)
    try:
        loader.connect()
        assert loader._pipeline_ok
        bmv2.restart()
        for _ in range(200):
            loader.step()
            if loader.in_sync and loader.metrics.ready():
                break
        assert loader.in_sync and loader.matches(), bmv2.tail()
    finally:
        loader.close()
    _forwards(bmv2, p4c_build)
