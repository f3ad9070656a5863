"""Per-packet consistency while a Service's backends and a pod's policy change (docs/runtime.md).

P4Runtime makes each single update atomic for packets (spec §"Atomicity of Individual Write and
Read Operations"); a batch is atomic only under DATAPLANE_ATOMIC (§"Batch Atomicity"). The device
runs probe packets through the interpreter at every point where packets can see the state between
two updates, so every intermediate state the data plane could expose is checked, not a sample.
A naive order (delete first, as the Go project did) is run too, to show the probes catch a mix.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from k8s_offload.compiler.bundle.model import Bundle, Exact, Lpm, TableEntry
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.plan import DELETE, INSERT, _plain_plan, make_plan
from k8s_offload.p4rt.client import CONTINUE_ON_ERROR
from k8s_offload.p4rt.errors import WriteError
from k8s_offload.target.device import Device
from k8s_offload.target.install import interpreter_with
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE
from tests.policy import strategies

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


# -- Randomized: policy changes that regroup peer classes or reuse ids ------------------------------

PROBE_PORTS = ((6, 5), (17, 9), (132, 22))
"""(protocol, port) of the probes: ports the strategies' rules and named ports use."""


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _stage_of(table: str) -> str:
    """The classified stage a table belongs to: "eg"/"in" (NetworkPolicy) or "eg_tier"/"in_tier"
    (the cluster policy tiers, whose decision tables are `*_admin`, `*_baseline`)."""
    short = _short(table)
    way = short[:2]
    if short.startswith(f"{way}_tier_") or short in (f"{way}_admin", f"{way}_baseline"):
        return f"{way}_tier"
    return way if short.startswith(f"{way}_") else ""


def _ids(bundle: Bundle, prefix: str) -> tuple[set[int], set[int]]:
    """The set ids and class ids of one classified stage (`_stage_of`)."""
    sets: set[int] = set()
    classes: set[int] = set()
    for e in bundle.entries:
        if e.is_default or _stage_of(e.table) != prefix:
            continue
        for name, m in e.match:
            if isinstance(m, Exact) and _short(name) == f"{prefix}_set":
                sets.add(m.value)
            elif isinstance(m, Exact) and _short(name) == f"{prefix[:2]}_peer_class":
                classes.add(m.value)
        params = dict(e.action.params) if e.action is not None else {}
        if "set_id" in params:
            sets.add(params["set_id"])
        if params.get("peer_class"):
            classes.add(params["peer_class"])
    return sets, classes


def _map_ids(e: TableEntry, prefix: str, sets: dict[int, int], classes: dict[int, int]) -> TableEntry:
    if _stage_of(e.table) != prefix:
        return e
    by_field = {f"{prefix}_set": sets, f"{prefix[:2]}_peer_class": classes}
    match = tuple(
        (
            n,
            Exact(by_field[_short(n)].get(m.value, m.value))
            if isinstance(m, Exact) and _short(n) in by_field
            else m,
        )
        for n, m in e.match
    )
    action = e.action
    if action is not None:
        by_param = {"set_id": sets, "peer_class": classes}
        params = tuple((k, by_param[k].get(v, v) if k in by_param else v) for k, v in action.params)
        action = replace(action, params=params)
    return replace(e, match=match, action=action)


def _renumber(bundle: Bundle, before: Bundle, rng: random.Random) -> Bundle:
    """`bundle` with some of its new set and class ids moved onto ids that `before` used and it no
    longer does, as the id spaces do when one event removes a set or class and adds another: the
    same verdicts, so only the transition can go wrong."""
    entries = list(bundle.entries)
    for prefix in ("eg", "in", "eg_tier", "in_tier"):
        old, new = _ids(before, prefix), _ids(bundle, prefix)
        maps = []
        for kind in (0, 1):
            fresh = sorted(new[kind] - old[kind])
            gone = sorted(old[kind] - new[kind])
            rng.shuffle(gone)
            maps.append({a: b for a, b in zip(fresh, gone, strict=False) if rng.random() < 0.8})
        entries = [_map_ids(e, prefix, maps[0], maps[1]) for e in entries]
    return replace(bundle, entries=tuple(entries))


def _frames(bundle: Bundle) -> list[tuple[int, bytes]]:
    """A new flow from every local pod to every other and to two addresses near them, for each
    probe port: every pod's egress and ingress policy is on some path."""
    from scapy.layers.inet import UDP
    from scapy.layers.sctp import SCTP

    pods: dict[str, tuple[int, int]] = {}
    for e in bundle.entries:
        if _short(e.table) == "fwd" and e.action is not None and _short(e.action.name) == "to_pod":
            m = e.match[0][1]
            assert isinstance(m, Lpm)
            if m.value >> 32 == 0xFFFF:
                params = dict(e.action.params)
                pods[str(ipaddress.ip_address(m.value & 0xFFFFFFFF))] = (params["port"], params["pod_mac"])
    out = []
    for src, (port, mac) in sorted(pods.items()):
        for dst in [*sorted(pods), "10.0.0.9", "10.0.0.200"]:
            if dst == src:
                continue
            for proto, dport in PROBE_PORTS:
                l4 = {6: TCP(dport=dport, flags="S"), 17: UDP(dport=dport), 132: SCTP(dport=dport)}[proto]
                mac_text = ":".join(f"{mac:012x}"[i : i + 2] for i in range(0, 12, 2))
                frame = Ether(src=mac_text, dst=GW_MAC) / IP(src=src, dst=dst) / l4
                out.append((port, bytes(frame)))
    return out


def _outcomes(sim: Any, frames: list[tuple[int, bytes]]) -> list[int | None]:
    """Each frame as a new flow (a fresh source port, so the flow cache never answers)."""
    out = []
    for port, frame in frames:
        data = bytearray(frame)
        data[34:36] = (next(_sports) % 40000 + 20000).to_bytes(2, "big")
        out.append(sim.process(port, bytes(data)).egress_port)
    return out


def _changed(draw: st.DrawFn, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same pods (addresses, ports) with some labels changed, some namespaces relabelled and
    some policies replaced: peer sets regroup, rule sets change. Half the time only one pod is
    relabelled, the policies kept: a peer joins or leaves a peer set while most verdicts stay, so
    a packet allowed before and after, whose class moves, is likely (where a mix would show)."""
    pods = [i for i, o in enumerate(objects) if o["kind"] == "Pod"]
    one: bool = draw(st.booleans())
    if one and pods:
        i = draw(st.sampled_from(pods))
        obj = objects[i]
        relabelled = {**obj, "metadata": {**obj["metadata"], "labels": draw(strategies.labels())}}
        return [*objects[:i], relabelled, *objects[i + 1 :]]
    out = []
    n_pol = 0
    for obj in objects:
        if obj["kind"] in ("Pod", "Namespace") and draw(st.booleans()):
            obj = {**obj, "metadata": {**obj["metadata"], "labels": draw(strategies.labels())}}
        elif obj["kind"] == "NetworkPolicy":
            n_pol += 1
            if draw(st.booleans()):
                continue
        out.append(obj)
    extra = draw(st.integers(0, 2))
    return out + [draw(strategies.policy(10 + i)) for i in range(extra)]


def _shuffled(plan: Any, rng: random.Random) -> list[Any]:
    """The plan's updates, each stage in a random order (a server may reorder within a batch)."""
    out = []
    for stage in plan.stages:
        ops = list(stage)
        rng.shuffle(ops)
        out += ops
    return out


def _compile(objects: list[dict[str, Any]], path: Path) -> Any:
    path.write_text(yaml.safe_dump_all(objects))
    return compile_sources([str(path)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reuse=st.booleans(), seed=st.integers(0, 1 << 16))
def test_randomized_policy_changes_show_no_mix(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, reuse: bool, seed: int
) -> None:
    """Random clusters changed by relabelling pods and namespaces (peer-class regroups) and
    replacing policies, the new state's ids optionally moved onto the slots of removed sets and
    classes: the plan's updates are applied one by one to the interpreter, and after each one
    every probe's outcome (egress port, or dropped) is the old state's or the new one's."""
    before_objs = data.draw(strategies.clusters())
    after_objs = data.draw(st.composite(lambda draw: _changed(draw, before_objs))())
    _no_mix(before_objs, after_objs, tmp_path_factory.mktemp("mix"), reuse, seed)


def _no_mix(
    before_objs: list[dict[str, Any]], after_objs: list[dict[str, Any]], d: Path, reuse: bool, seed: int
) -> None:
    """The plan from `before_objs` to `after_objs` (new ids moved onto removed ones if `reuse`),
    its updates applied one by one to the interpreter, each stage in a random order: after each
    one every probe's outcome is the old state's or the new one's."""
    before = _compile(before_objs, d / "before.yaml")
    after = _compile(after_objs, d / "after.yaml")
    schema = before.schema
    b0, b1 = before.lowered.bundle, after.lowered.bundle
    if reuse:
        b1 = _renumber(b1, b0, random.Random(seed))
    frames = _frames(b0)
    assert frames == _frames(b1)  # the same pods on the same ports
    sim = interpreter_with(schema, b0)
    old = _outcomes(sim, frames)
    new = _outcomes(interpreter_with(schema, b1), frames)
    plan = make_plan(schema, bundle_items(schema, b1), bundle_items(schema, b0))
    rng = random.Random(seed)
    for n, op in enumerate(_shuffled(plan, rng)):
        sim.state.apply(op.update())
        seen = _outcomes(sim, frames)
        bad = [i for i, o in enumerate(seen) if o not in (old[i], new[i])]
        assert not bad, (
            f"after update {n} ({op}): probe {bad[0]}: {seen[bad[0]]}, not {old[bad[0]]} or {new[bad[0]]}"
        )
    assert _outcomes(sim, frames) == new


def _pod(name: str, ip: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "x", "labels": {"app": app}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": ip}]},
    }


REGROUP_BEFORE = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
    _pod("a", "10.0.0.1", "client"),
    _pod("d", "10.0.0.2", "other"),
    _pod("c", "10.0.0.3", "db"),
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "client-out", "namespace": "x"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "client"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5}]}],
        },
    },
]
REGROUP_AFTER = [
    {**o, "metadata": {**o["metadata"], "labels": {"app": "db"}}} if o["metadata"]["name"] == "d" else o
    for o in REGROUP_BEFORE
]
"""d joins the peers: 10.0.0.2 and .3 become one /31, so .3's class (named by its lowest
network) changes while a's rule set does too; a -> c on port 5 is allowed before and after."""
DB_IN = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "db-in", "namespace": "x"},
    "spec": {
        "podSelector": {"matchLabels": {"app": "db"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 5}]}],
    },
}


APPS = ("db", "other")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    apps=st.lists(st.sampled_from(APPS), min_size=2, max_size=6),
    flips=st.sets(st.integers(0, 5), min_size=1, max_size=2),
    ingress=st.booleans(),
    reuse=st.booleans(),
    seed=st.integers(0, 1 << 16),
)
def test_randomized_regroups_show_no_mix(
    tmp_path_factory: pytest.TempPathFactory,
    apps: list[str],
    flips: set[int],
    ingress: bool,
    reuse: bool,
    seed: int,
) -> None:
    """Regroups where a mix would show: a client allowed to the `db` pods of a row of consecutive
    addresses (and, if `ingress`, those pods admitting only the client), and one or two pods of
    the row joining or leaving `db`. The client's rule set changes while its other peers stay
    allowed, and their class moves whenever the pod that flips is below them or pairs with one
    (classes are named by their lowest network), as in the example below."""
    policies = [REGROUP_BEFORE[4], *([DB_IN] if ingress else [])]
    _row_regroup(apps, flips, policies, tmp_path_factory.mktemp("regroup"), reuse, seed)


def _row_regroup(
    apps: list[str], flips: set[int], policies: list[dict[str, Any]], d: Path, reuse: bool, seed: int
) -> None:
    """A row of pods at consecutive addresses (`apps` their labels) under `policies`, and the
    pods at `flips` joining or leaving `db`: `_no_mix` from before to after."""
    rows = [_pod(f"p{i}", f"10.0.0.{2 + i}", app) for i, app in enumerate(apps)]
    flipped = [
        {**o, "metadata": {**o["metadata"], "labels": {"app": APPS[o["metadata"]["labels"]["app"] == "db"]}}}
        if i in flips
        else o
        for i, o in enumerate(rows)
    ]
    head = [REGROUP_BEFORE[0], REGROUP_BEFORE[1]]
    _no_mix([*head, *rows, *policies], [*head, *flipped, *policies], d, reuse, seed)


def test_a_regroup_needs_the_transition(tmp_path: Path) -> None:
    """Control for the randomized test: in the one-step plan, the peer's new class and the pod's
    new rule set are MODIFYs of one stage, and with the class first a -> c is dropped; the plan
    never drops it, in any order within its stages."""
    before = _compile(REGROUP_BEFORE, tmp_path / "before.yaml")
    after = _compile(REGROUP_AFTER, tmp_path / "after.yaml")
    schema = before.schema
    b0, b1 = before.lowered.bundle, after.lowered.bundle
    frames = _frames(b0)
    old = _outcomes(interpreter_with(schema, b0), frames)
    new = _outcomes(interpreter_with(schema, b1), frames)
    a_to_c = frames.index(
        next(f for f in frames if f[1][26:34] == bytes([10, 0, 0, 1, 10, 0, 0, 3]) and f[1][23] == 6)
    )
    assert old[a_to_c] is not None and new[a_to_c] is not None  # allowed before and after
    desired, current = bundle_items(schema, b1), bundle_items(schema, b0)

    def mixes(ops: list[Any]) -> bool:
        sim = interpreter_with(schema, b0)
        for op in ops:
            sim.state.apply(op.update())
            if _outcomes(sim, [frames[a_to_c]])[0] is None:
                return True
        return False

    plain = _plain_plan(schema, desired, current)
    classes_first = [
        op for st_ in plain.stages for op in sorted(st_, key=lambda o: o.item.key[1] != 0x02000805)
    ]
    assert mixes(classes_first)
    plan = make_plan(schema, desired, current)
    assert len(plan.stages) > len(plain.stages)
    for seed in range(8):
        assert not mixes(_shuffled(plan, random.Random(seed)))


TIER_GUARD = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1",
    "kind": "AdminNetworkPolicy",
    "metadata": {"name": "client-guard"},
    "spec": {
        "priority": 1,
        "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}},
        "egress": [
            {
                "action": "Allow",
                "to": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}}],
                "ports": [{"portNumber": {"port": 5}}],
            },
            {"action": "Deny", "to": [{"namespaces": {}}]},
        ],
    },
}
TIER_DB_IN = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2",
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "db-in"},
    "spec": {
        "tier": "Baseline",
        "priority": 1,
        "subject": {"pods": {"podSelector": {"matchLabels": {"app": "db"}}}},
        "ingress": [
            {"action": "Accept", "from": [{"pods": {"podSelector": {"matchLabels": {"app": "client"}}}}]},
            {"action": "Deny", "from": [{"namespaces": {}}]},
        ],
    },
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    apps=st.lists(st.sampled_from(APPS), min_size=2, max_size=6),
    flips=st.sets(st.integers(0, 5), min_size=1, max_size=2),
    ingress=st.booleans(),
    reuse=st.booleans(),
    seed=st.integers(0, 1 << 16),
)
def test_randomized_tier_regroups_show_no_mix(
    tmp_path_factory: pytest.TempPathFactory,
    apps: list[str],
    flips: set[int],
    ingress: bool,
    reuse: bool,
    seed: int,
) -> None:
    """The same regroups under the cluster policy tiers (docs/tiers.md), whose stages the loader's
    transition handles as the NetworkPolicy ones (transition.STAGES): the client's admin tier
    allows the `db` pods and denies the rest, and (if `ingress`) the `db` pods' baseline tier
    admits only the client; one or two pods of the row join or leave `db`."""
    policies = [TIER_GUARD, *([TIER_DB_IN] if ingress else [])]
    _row_regroup(apps, flips, policies, tmp_path_factory.mktemp("tier-regroup"), reuse, seed)


def _deny_all(name: str, app: str, direction: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": [direction]},
    }


def test_other_direction_keeps_one_step_order(tmp_path: Path) -> None:
    """One event isolates s's egress and drops t's ingress isolation, while an egress regroup
    (REGROUP_BEFORE -> REGROUP_AFTER) gives the egress stage a phased transition. s -> t is
    denied before (t's ingress) and after (s's egress). s's new egress entry flips with the pods
    in phase 2; t's ingress entry, which no transition places, must not go before that (it used
    to go in phase 1, letting s -> t through in between). Every order within the plan's stages
    keeps s -> t dropped."""
    extra = [_pod("s", "10.0.0.20", "src"), _pod("t", "10.0.0.21", "target")]
    before_objs = [*REGROUP_BEFORE, *extra, _deny_all("t-in", "target", "Ingress")]
    after_objs = [*REGROUP_AFTER, *extra, _deny_all("s-out", "src", "Egress")]
    before = _compile(before_objs, tmp_path / "before.yaml")
    after = _compile(after_objs, tmp_path / "after.yaml")
    schema = before.schema
    b0, b1 = before.lowered.bundle, after.lowered.bundle
    frames = _frames(b0)
    s_to_t = [i for i, f in enumerate(frames) if f[1][26:34] == bytes([10, 0, 0, 20, 10, 0, 0, 21])]
    assert s_to_t
    old = _outcomes(interpreter_with(schema, b0), frames)
    new = _outcomes(interpreter_with(schema, b1), frames)
    assert all(old[i] is None and new[i] is None for i in s_to_t)
    plan = make_plan(schema, bundle_items(schema, b1), bundle_items(schema, b0))
    assert len(plan.stages) > len(
        _plain_plan(schema, bundle_items(schema, b1), bundle_items(schema, b0)).stages
    )
    for seed in range(6):
        sim = interpreter_with(schema, b0)
        for op in _shuffled(plan, random.Random(seed)):
            sim.state.apply(op.update())
            seen = _outcomes(sim, [frames[i] for i in s_to_t])
            assert seen == [None] * len(s_to_t), f"s -> t let through after {op}"
    (tmp_path / "mix").mkdir()
    _no_mix(before_objs, after_objs, tmp_path / "mix", False, 0)


DB_SERVICE = [
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "x"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "ports": [{"port": 5, "protocol": "TCP"}],
            "selector": {"app": "db"},
        },
    },
    {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "namespace": "x", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ("10.0.0.1", "10.0.0.3")],
        "ports": [{"port": 5, "protocol": "TCP"}],
    },
]


def test_a_regroup_with_a_replaced_group_keeps_the_transition(tmp_path: Path) -> None:
    """A sync that both regroups a peer class and replaces a selector group (its max_size changes,
    which P4Runtime cannot MODIFY): the group and its referrers are withdrawn first, and the rest
    still goes through the policy transition, so a -> c stays allowed in every order (the one-step
    plan drops it, `test_a_regroup_needs_the_transition`)."""
    before = _compile(REGROUP_BEFORE + DB_SERVICE, tmp_path / "before.yaml")
    after = _compile(REGROUP_AFTER + DB_SERVICE, tmp_path / "after.yaml")
    schema = before.schema
    b0, b1 = before.lowered.bundle, after.lowered.bundle
    frames = _frames(b0)
    a_to_c = next(
        i for i, f in enumerate(frames) if f[1][26:34] == bytes([10, 0, 0, 1, 10, 0, 0, 3]) and f[1][23] == 6
    )
    current = bundle_items(schema, b0)
    desired = dict(bundle_items(schema, b1))
    group = min(k for k in desired if k[0] == "group")
    entity = desired[group].entity.__class__()
    entity.CopyFrom(desired[group].entity)
    entity.action_profile_group.max_size = 4 if entity.action_profile_group.max_size != 4 else 8
    desired[group] = replace(desired[group], entity=entity)
    plan = make_plan(schema, desired, current)
    ops = [(op.type, op.item.key) for op in plan.ops()]
    assert ops.index((DELETE, group)) < ops.index((INSERT, group))
    assert len(plan.stages) > len(_plain_plan(schema, desired, current).stages)
    for seed in range(6):
        sim = interpreter_with(schema, b0)
        for op in _shuffled(plan, random.Random(seed)):
            sim.state.apply(op.update())
            assert _outcomes(sim, [frames[a_to_c]])[0] is not None, f"a -> c dropped after {op}"
