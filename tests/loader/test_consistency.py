"""Per-packet consistency while a Service's backends and a pod's policy change (docs/runtime.md).

P4Runtime makes each single update atomic for packets (spec §"Atomicity of Individual Write and
Read Operations"); a batch is atomic only under DATAPLANE_ATOMIC (§"Batch Atomicity"). The device
runs probe packets through the interpreter at every point where packets can see the state between
two updates, so every intermediate state the data plane could expose is checked, not a sample.
A naive order (delete first, as the Go project did) is run too, to show the probes catch a mix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.plan import DELETE, INSERT, make_plan
from k8s_offload.p4rt.client import CONTINUE_ON_ERROR
from k8s_offload.p4rt.errors import WriteError
from k8s_offload.target.device import Device
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE

GW_MAC = "02:00:00:00:00:01"
FRONTEND = (11, "02:00:00:00:00:0b", "10.244.1.10")
CART = (13, "02:00:00:00:00:0d", "10.244.1.20")
POSTGRES = (15, "10.244.1.40", 5432)
CART_VIP = ("10.96.20.20", 7070)
UPLINK = 3
_sports = itertools.count(20000)

Outcome = tuple[int, str, int] | None  # (egress port, destination address, destination port)


def _syn(client: tuple[int, str, str], dst: str, dport: int) -> tuple[int, bytes]:
    port, mac, ip = client
    pkt = Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=dst) / TCP(sport=next(_sports), dport=dport, flags="S")
    return port, bytes(pkt)


def _send(dev: Device, client: tuple[int, str, str], dst: str, dport: int) -> Outcome:
    """A new flow (fresh source port, so the flow cache never answers for it)."""
    egress, out = dev.inject(*_syn(client, dst, dport))
    if egress is None:
        return None
    frame = Ether(out)
    return egress, frame[IP].dst, frame[TCP].dport if frame.haslayer(TCP) else 0  # 0: an ICMP error


def _service_probe(dev: Device) -> list[Outcome]:
    return [_send(dev, FRONTEND, *CART_VIP) for _ in range(8)]


def _policy_probe(dev: Device) -> list[Outcome]:
    allowed = _send(dev, CART, POSTGRES[1], POSTGRES[2])  # allow-cart admits it, before and after
    denied = _send(dev, FRONTEND, POSTGRES[1], POSTGRES[2])  # default-deny drops it, before and after
    return [allowed, ("denied", denied)]  # type: ignore[list-item]


SERVICE_OK = {(CART[0], "10.244.1.20", 7070), (UPLINK, "10.244.2.20", 7070), (UPLINK, "10.244.2.21", 7070)}
REJECTED = (FRONTEND[0], FRONTEND[2], 0)  # ICMP port unreachable back to the client
POLICY_OK = {(POSTGRES[0], POSTGRES[1], POSTGRES[2]), ("denied", None)}


def _change_backends(shop: Path) -> None:
    f = shop / "endpointslices.yaml"
    f.write_text(f.read_text().replace("10.244.2.20", "10.244.2.21"))


def _remove_backends(shop: Path) -> None:
    """No cart endpoint is ready any more: the frontend rejects instead of load-balancing."""
    f = shop / "endpointslices.yaml"
    text = f.read_text()
    for address in ("10.244.1.20", "10.244.2.20"):
        ready = f"addresses: [{address}]\n    conditions: {{ready: true}}"
        assert ready in text
        text = text.replace(ready, ready.replace("true", "false"))
    f.write_text(text)


def _change_policy(shop: Path) -> None:
    """One more port in allow-cart: a new rule-set id for postgres and redis (content-addressed)."""
    f = shop / "networkpolicies.yaml"
    text = f.read_text()
    assert "port: postgres\n" in text
    f.write_text(
        text.replace("port: postgres\n", "port: postgres\n        - protocol: TCP\n          port: 9999\n", 1)
    )


def _record(dev: Device, probe: Callable[[Device], list[Outcome]]) -> list[Outcome]:
    seen: list[Outcome] = []
    dev.between_updates.append(lambda: seen.extend(probe(dev)))
    return seen


CASES = [
    (_change_backends, _service_probe, SERVICE_OK),
    (_remove_backends, _service_probe, SERVICE_OK | {REJECTED}),
    (_change_policy, _policy_probe, POLICY_OK),
]
IDS = ["service-backends", "service-no-endpoint", "pod-policy"]


@pytest.mark.parametrize("continue_only", [False, True], ids=["dataplane-atomic", "continue-on-error-only"])
@pytest.mark.parametrize("change,probe,ok", CASES, ids=IDS)
def test_no_packet_sees_a_mix(
    shop_dir: Path,
    continue_only: bool,
    change: Callable[[Path], None],
    probe: Callable[[Device], list[Outcome]],
    ok: set[Outcome],
) -> None:
    with EmbeddedTarget(continue_on_error_only=continue_only) as sw:
        loader = Loader(LoaderConfig(sources=[shop_dir], node=NODE, target=sw.address, batch_size=1))
        try:
            loader.reload(force=True)
            loader.connect()
            assert loader.sync() is not None
            dev = sw.device()
            assert set(probe(dev)) <= ok  # the baseline itself is right
            seen = _record(dev, probe)
            change(shop_dir)
            loader.reload(force=True)
            result = loader.sync()
            assert result is not None and result.ok and result.updates > 0
            assert result.mode == ("CONTINUE_ON_ERROR" if continue_only else "DATAPLANE_ATOMIC")
            # batch_size=1: under CONTINUE_ON_ERROR the probes ran after every single update
            assert len(seen) >= (result.updates if continue_only else 1)
            assert set(seen) <= ok, sorted(map(str, set(seen) - ok))
        finally:
            loader.close()


@pytest.mark.parametrize("change,probe,ok", CASES[1:], ids=IDS[1:])
def test_probes_catch_a_naive_order(
    shop_dir: Path, change: Callable[[Path], None], probe: Callable[[Device], list[Outcome]], ok: set[Outcome]
) -> None:
    """Control: deletes first, then modifies and inserts, one update per Write, retrying what the
    device refused (a member still in a group, a group naming a missing member): packets see a mix
    (a frontend withdrawn before its reject verdict is in, a rule set before the pod moves off it).
    A backend swap has no such intermediate state any more: the member that carries the DNAT is
    the one entity the device refuses to delete while a group holds it."""
    with EmbeddedTarget(continue_on_error_only=True) as sw:
        loader = Loader(LoaderConfig(sources=[shop_dir], node=NODE, target=sw.address))
        try:
            loader.reload(force=True)
            loader.connect()
            assert loader.sync() is not None and loader.syncer is not None and loader.client is not None
            dev = sw.device()
            change(shop_dir)
            loader.reload(force=True)
            assert loader.desired is not None
            plan = make_plan(loader.schema, loader.desired, loader.syncer.read_device())
            rank = {DELETE: 0, INSERT: 2}
            naive = sorted(
                plan.ops(), key=lambda op: (rank.get(op.type, 1), -plan.stages.index(_stage(plan, op)))
            )
            seen = _record(dev, probe)
            for _ in range(4):  # retry what the device refused until everything went through
                refused = []
                for op in naive:
                    try:
                        loader.client.write([op.update()], CONTINUE_ON_ERROR)
                    except WriteError:
                        refused.append(op)
                naive = refused
            assert not naive
            assert not set(seen) <= ok
            assert loader.matches()  # the end state is right; only the transition was not
        finally:
            loader.close()


def _stage(plan: object, op: object) -> list[object]:
    return next(s for s in plan.stages if op in s)  # type: ignore[attr-defined]
