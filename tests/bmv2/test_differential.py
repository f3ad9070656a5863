"""Differential test: generated frames through bmv2 (p4c-bm2-ss's build of p4src/k8s_dp.p4) and
through our interpreter holding the same entries; output port and bytes frame by frame, drop
counters equal at the end of each case (tests/differential/harness.py).

Cases: the shop example and golden cases that cover NodePort (both traffic policies), external and
load-balancer IPs, session affinity, rejecting Services, dual stack, UDP and SCTP, topology,
split and Maglev groups, NetworkPolicy and the cluster policy tiers (admin and baseline stages).
Each case starts from a fresh pipeline (VERIFY_AND_COMMIT clears tables, registers and counters
on both targets).
"""

from __future__ import annotations

import itertools
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from k8s_offload.compiler.bundle.model import Exact
from k8s_offload.compiler.bundle.p4rt import updates
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import mapped
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.plan import MODIFY, make_plan
from k8s_offload.p4rt.client import VERIFY_AND_COMMIT, P4RuntimeClient
from tests.bmv2.conftest import Build, require_root
from tests.bmv2.dataplane import Bmv2Dataplane
from tests.bmv2.switch import Bmv2
from tests.differential import frames
from tests.differential.harness import InterpreterDataplane, Report, Scenario, run
from tests.p4ref import tool

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "compiler" / "golden"
UNKNOWN_PORTS = (4, 9)
TIER_DROPS = (12, 13)
"""DROP_EGRESS_TIER, DROP_INGRESS_TIER (p4src/include/defines.p4)."""
CASES = {
    "shop": (REPO / "examples" / "shop" / "cluster", REPO / "examples" / "shop" / "node.yaml", "hash"),
    **{
        name: (GOLDEN / name / "manifests.yaml", GOLDEN / name / "node.yaml", "hash")
        for name in (
            "nodeport-cluster",
            "nodeport-local",
            "external-lb",
            "affinity",
            "reject-no-endpoints",
            "dual-stack",
            "udp-sctp",
            "topology",
            "internal-local",
            "policy-selectors",
            "tiers",
            "svc-600-endpoints",
            "terminating-fallback",
        )
    },
    "maglev-svc-3-endpoints": (
        GOLDEN / "maglev-svc-3-endpoints" / "manifests.yaml",
        GOLDEN / "maglev-svc-3-endpoints" / "node.yaml",
        "maglev",
    ),
}


def _compile(name: str, manifests: Path | None = None) -> CompileResult:
    path, node, lb = CASES[name]
    return compile_sources(
        [manifests or path],
        node if node.exists() else None,
        schema=Schema(read_p4info()),
        passes=PassConfig(lb=lb),
    )


def _ports(result: CompileResult) -> set[int]:
    ports = result.ir.node.ports
    return {ports.arp_proxy, ports.host, ports.uplink} | {
        p.port for p in result.ir.pods if p.local and p.port
    }


@dataclass
class Rig:
    switch: Bmv2
    client: P4RuntimeClient
    build: Build
    cookie: itertools.count[int]

    def fresh(self) -> tuple[InterpreterDataplane, Bmv2Dataplane]:
        """A new pipeline on bmv2 (empty tables, registers, counters) and a new interpreter."""
        self.client.set_pipeline(self.build.p4info, self.build.json, next(self.cookie), VERIFY_AND_COMMIT)
        self.switch.drain(0.05)
        ours = InterpreterDataplane(read_p4info(), epoch=time.monotonic())
        return ours, Bmv2Dataplane(self.switch, self.client, self.build.p4info)


@pytest.fixture(scope="module")
def rig(p4c_build: Build) -> Iterator[Rig]:
    tool("simple_switch_grpc")
    require_root()
    ports = set(UNKNOWN_PORTS)
    for name in CASES:
        ports |= _ports(_compile(name))
    with Bmv2(tuple(sorted(ports)), log_level="warn").start() as switch:
        client = P4RuntimeClient(switch.address, device_id=switch.device_id, election_id=1)
        try:
            assert client.connect(10)
            yield Rig(switch, client, p4c_build, itertools.count(1))
        finally:
            client.close()


def _load(rig: Rig, result: CompileResult) -> tuple[InterpreterDataplane, Bmv2Dataplane]:
    ours, bmv2 = rig.fresh()
    batch = updates(result.schema, result.lowered.bundle)
    ours.install(batch)
    bmv2.install(batch)
    return ours, bmv2


def _scenario(result: CompileResult, seed: int, ports: tuple[int, ...]) -> Scenario:
    rng = random.Random(seed)
    ir = result.ir
    yield from frames.services_and_pods(ir, rng)
    yield from frames.tiers(ir, rng)
    yield from frames.neighbours(ir)
    yield from frames.malformed(ir, UNKNOWN_PORTS)
    yield from frames.random_frames(ir, rng, 150, ports)


def _check(report: Report, minimum: int, drops: bool = True) -> None:
    assert not report.mismatches, "\n".join(report.mismatches)
    assert report.frames >= minimum, report
    assert report.forwarded and (report.dropped or not drops), report


TOTALS = Report(cases=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bmv2_and_the_interpreter_agree(rig: Rig, name: str) -> None:
    result = _compile(name)
    ours, bmv2 = _load(rig, result)
    ports = tuple(sorted(_ports(result) | set(UNKNOWN_PORTS)))
    report = run(ours, bmv2, _scenario(result, seed=sum(map(ord, name)), ports=ports))
    TOTALS.add(report)
    print(f"{name}: {report.frames} frames ({report.forwarded} forwarded, {report.dropped} dropped)")
    _check(report, 150)
    if name == "tiers":  # both tier drop reasons were taken (DROP_EGRESS_TIER, DROP_INGRESS_TIER)
        counts = ours.drop_counts()
        assert counts[TIER_DROPS[0]][0] > 0 and counts[TIER_DROPS[1]][0] > 0, counts


def test_flow_cache_and_affinity_ageing(rig: Rig, tmp_path: Path) -> None:
    """Closed flows expire CT_TIMEOUT_CLOSING (10 units, about 10.5 s) after their FIN and a 2 s
    affinity is forgotten: after 12.5 s the same tuples are new flows on both targets, and the
    same decisions (new backend or not) come out."""
    text = (CASES["affinity"][0]).read_text().replace("timeoutSeconds: 60", "timeoutSeconds: 2")
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(text)
    result = _compile("affinity", manifests)
    ours, bmv2 = _load(rig, result)
    report = run(ours, bmv2, frames.ageing(result.ir, 12.5), keep=("aged-",))
    TOTALS.add(report)
    _check(report, 40, drops=False)
    vips = {str(fe.vip) for fe in result.ir.frontends}

    def sources(label: str) -> set[str]:
        return {str(_ip(data).src) for o in report.kept.get(label, []) for _, data in o.outputs}

    # Visible on both: an open flow's reply still gets its VIP back, a closed one's no longer does.
    assert sources("aged-open:reply") & vips, report.kept
    assert not sources("aged-closed:reply") & vips, report.kept


def test_frontend_entries_move_between_member_and_group(rig: Rig, tmp_path: Path) -> None:
    """Cart loses one of its two endpoints (its svc_frontend entry moves from the group to the
    remaining member, a MODIFY) and catalog gains a second (member to a new group), applied stage by
    stage as the loader plans it, then undone the same way: bmv2 and the interpreter agree after
    each step."""
    shop = tmp_path / "cluster"
    shutil.copytree(CASES["shop"][0], shop)
    slices = shop / "endpointslices.yaml"
    text = slices.read_text()
    cart = "  - addresses: [10.244.2.20]\n    conditions: {ready: true}"
    catalog = "  - addresses: [10.244.1.30]\n    conditions: {ready: true}\n    nodeName: node-a\n"
    assert cart in text and catalog in text
    text = text.replace(cart, cart.replace("true", "false"))
    text = text.replace(catalog, catalog + catalog.replace("1.30", "2.30").replace("node-a", "node-b"))
    slices.write_text(text)
    before, after = _compile("shop"), _compile("shop", shop)
    schema = before.schema
    old, new = bundle_items(schema, before.lowered.bundle), bundle_items(schema, after.lowered.bundle)
    ours, bmv2 = _load(rig, before)
    ports = tuple(sorted(_ports(before) | set(UNKNOWN_PORTS)))

    def target(result: CompileResult, vip: str) -> tuple[bool, bool]:
        """(points at a member, points at a group) of the frontend's svc_frontend entry."""
        (e,) = [
            e
            for e in result.lowered.bundle.entries
            if e.table.endswith(".svc_frontend")
            and dict(e.match)["meta.dst_addr"] == Exact(mapped(ip_address(vip)))
        ]
        return e.member_id is not None, e.group_id is not None

    assert target(before, "10.96.20.20") == target(after, "10.96.30.30") == (False, True)
    assert target(after, "10.96.20.20") == target(before, "10.96.30.30") == (True, False)
    for i, (result, plan) in enumerate(
        ((after, make_plan(schema, new, old)), (before, make_plan(schema, old, new)))
    ):
        assert sum(1 for op in plan.ops() if op.type == MODIFY and op.item.key[0] == "table") == 2
        for stage in plan.stages:
            batch = [op.update() for op in stage]
            ours.install(batch)
            bmv2.install(batch)
        report = run(ours, bmv2, _scenario(result, seed=77 + i, ports=ports))
        TOTALS.add(report)
        _check(report, 150)


def _ip(data: bytes) -> Any:
    pkt = Ether(data)
    return pkt.getlayer(IP) or pkt.getlayer(IPv6)


def test_thousands_of_frames_were_compared() -> None:
    """Runs last (file order): the cases above together compared thousands of frames."""
    if TOTALS.cases < len(CASES) + 1:
        pytest.skip("only some of the differential cases ran")
    assert TOTALS.frames >= 3000, TOTALS.labels
    assert not TOTALS.mismatches
