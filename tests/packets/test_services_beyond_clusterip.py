"""Issue 9 at packet level: node ports, external and load-balancer IPs, traffic policies, session
affinity, hairpin and shared backends, run through the interpreter on the golden cases' bundles.

Semantics are kube-proxy's (Kubernetes Service API reference, "Virtual IPs and Service Proxies",
"Service Internal Traffic Policy", "Topology Aware Routing").
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.plan import make_plan
from k8s_offload.target.install import interpreter_with
from k8s_offload.target.interpreter import Interpreter

GOLDEN = Path(__file__).resolve().parents[1] / "compiler" / "golden"
CLIENT4 = "198.51.100.7"
CLIENT6 = "2001:db8:100::7"
NODE4 = "192.168.10.11"
NODE6 = "fd00:10::11"
GW4 = "169.254.1.1"
UPLINK = 3
WEB_A_PORT = 10
SECOND = 1_000_000
T0 = 5_000 * SECOND


def _sim(case: str) -> Interpreter:
    d = GOLDEN / case
    manifests = sorted(str(p) for p in d.glob("*.yaml") if p.name != "node.yaml")
    node = d / "node.yaml"
    result = compile_sources(manifests, node if node.exists() else None)
    return interpreter_with(result.schema, result.lowered.bundle)


def _frame(src: str, dst: str, sport: int, dport: int, udp: bool = False) -> bytes:
    ip = IP(src=src, dst=dst) if ipaddress.ip_address(src).version == 4 else IPv6(src=src, dst=dst)
    l4: Packet = UDP(sport=sport, dport=dport) / b"q" if udp else TCP(sport=sport, dport=dport, flags="S")
    return bytes(Ether(src="02:aa:00:00:00:01", dst="02:00:00:00:00:01") / ip / l4)


def _addrs(data: bytes) -> tuple[str, int, str, int]:
    pkt = Ether(data)
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    return (ip.src, ip.payload.sport, ip.dst, ip.payload.dport)


def _checksums_ok(data: bytes) -> bool:
    rebuilt = Ether(data).copy()
    for layer in (IP, TCP, UDP):
        if layer in rebuilt:
            del rebuilt[layer].chksum
    return bytes(Ether(bytes(rebuilt))) == data


def _through(sim: Interpreter, port: int, frame: bytes, now: int) -> tuple[int, tuple[str, int, str, int]]:
    out = sim.process(port, frame, now)
    assert out.egress_port is not None, out.trace.drop_reason
    assert _checksums_ok(out.data)
    return out.egress_port, _addrs(out.data)


@pytest.mark.parametrize(
    ("client", "node", "udp", "node_port", "backends"),
    [
        (CLIENT4, NODE4, False, 30080, {"10.244.1.10": 8080, "10.244.2.10": 8080}),
        (CLIENT4, NODE4, True, 30053, {"10.244.1.10": 5353, "10.244.2.10": 5353}),
        (CLIENT6, NODE6, False, 30080, {"fd00:244:1::10": 8080, "fd00:244:2::10": 8080}),
        (CLIENT6, NODE6, True, 30053, {"fd00:244:1::10": 5353, "fd00:244:2::10": 5353}),
    ],
    ids=["v4-tcp", "v4-udp", "v6-tcp", "v6-udp"],
)
def test_node_port_cluster_masquerades(
    client: str, node: str, udp: bool, node_port: int, backends: dict[str, int]
) -> None:
    """externalTrafficPolicy Cluster: kube-proxy masquerades external traffic so replies return through
    this node. A remote backend sees the node IP; a local one the gateway address (the source Linux
    would pick towards a local pod). The reply leaves from node IP:nodePort to the client."""
    sim = _sim("nodeport-cluster")
    seen: set[str] = set()
    for i in range(12):
        sport = 41000 + i
        port, (src, psport, dst, dport) = _through(
            sim, UPLINK, _frame(client, node, sport, node_port, udp), T0
        )
        assert backends.get(dst) == dport
        local = dst.startswith(("10.244.1.", "fd00:244:1:"))
        assert port == (WEB_A_PORT if local else UPLINK)
        assert src == ((GW4 if ":" not in dst else "fe80::1") if local else node)
        assert psport == sport  # the port is kept; collisions are detected (README)
        back_port, back = _through(sim, port, _frame(dst, src, dport, sport, udp), T0 + SECOND)
        assert back == (node, node_port, client, sport)
        assert back_port == UPLINK
        # The flow stays on its backend and stays masqueraded.
        assert _through(sim, UPLINK, _frame(client, node, sport, node_port, udp), T0 + 2 * SECOND)[1] == (
            src,
            sport,
            dst,
            dport,
        )
        seen.add(dst)
    assert seen == set(backends)


def test_node_port_local_keeps_client_and_drops_without_local_endpoint() -> None:
    """externalTrafficPolicy Local: only endpoints on this node, client address preserved; a Service
    with no local endpoint drops node-port traffic. Pod traffic to the same node port is short-
    circuited to all cluster endpoints, as kube-proxy does (svc_frontend_internal)."""
    sim = _sim("nodeport-local")
    for i in range(6):
        port, addrs = _through(sim, UPLINK, _frame(CLIENT4, NODE4, 42000 + i, 30081), T0)
        assert (port, addrs) == (WEB_A_PORT, (CLIENT4, 42000 + i, "10.244.1.10", 8080))
        back = _through(sim, WEB_A_PORT, _frame("10.244.1.10", CLIENT4, 8080, 42000 + i), T0)
        assert back == (UPLINK, (NODE4, 30081, CLIENT4, 42000 + i))
    assert sim.process(UPLINK, _frame(CLIENT4, NODE4, 42100, 30082), T0).egress_port is None
    # From the local pod, the same node port reaches the remote endpoint, without masquerade.
    port, addrs = _through(sim, WEB_A_PORT, _frame("10.244.1.10", NODE4, 42200, 30082), T0)
    assert (port, addrs) == (UPLINK, ("10.244.1.10", 42200, "10.244.2.20", 8080))


def test_external_and_load_balancer_ips() -> None:
    """spec.externalIPs and status.loadBalancer.ingress[].ip are frontends on the service port with
    the external policy (Cluster: masquerade); an ingress with ipMode Proxy is not captured."""
    sim = _sim("external-lb")
    for vip in ("198.51.100.53", "203.0.113.53"):
        port, (src, _, dst, dport) = _through(sim, UPLINK, _frame(CLIENT4, vip, 43000, 80), T0)
        assert dport == 8080 and dst in ("10.244.1.10", "10.244.2.10")
        assert src == (GW4 if dst == "10.244.1.10" else NODE4)
        back = _through(sim, port, _frame(dst, src, 8080, 43000), T0)
        assert back[1] == (vip, 80, CLIENT4, 43000)
        sim = _sim("external-lb")
    # One client port to both VIPs, landing on one backend: the reply tuples are equal, so the
    # second flow is refused (DROP_NAT_COLLISION) rather than answered from the wrong VIP.
    results = []
    for i, vip in enumerate(("198.51.100.53", "203.0.113.53") * 8):
        out = sim.process(UPLINK, _frame(CLIENT4, vip, 43100 + i // 2, 80), T0)
        results.append(None if out.egress_port is None else _addrs(out.data)[2])
    # The selector hashes the client address and port, so both flows pick the same backend.
    assert all(r is not None for r in results[::2])
    assert all(r is None for r in results[1::2])
    # ipMode Proxy: not a frontend; routed as plain traffic (default route: the uplink), untouched.
    assert _through(sim, WEB_A_PORT, _frame("10.244.1.10", "203.0.113.54", 43001, 80), T0)[1] == (
        "10.244.1.10",
        43001,
        "203.0.113.54",
        80,
    )


def _unpinned_choices(ports: range) -> dict[int, str]:
    """What the selector alone picks for CLIENT4 from each port: probes 200 s apart, so the affinity
    memory (60 s) has always expired."""
    sim = _sim("affinity")
    return {
        p: _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", p, 80), T0 + i * 200 * SECOND)[1][2]
        for i, p in enumerate(ports)
    }


def test_session_affinity_until_timeout() -> None:
    """sessionAffinity ClientIP, timeoutSeconds 60: new connections of one client go to the backend of
    its last new connection while that was less than the timeout ago (kube-proxy's `recent` match
    with --seconds); after the timeout they are balanced again, here to the other backend."""
    choices = _unpinned_choices(range(44000, 44040))
    first = choices[44000]
    elsewhere = [p for p, b in choices.items() if b != first]
    assert len(elsewhere) >= 2, "the selector should spread 40 ports over both backends"
    sim = _sim("affinity")
    assert _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", 44000, 80), T0)[1][2] == first
    for i, p in enumerate(elsewhere[:-1]):  # each within 60 s of the previous new connection
        got = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", p, 80), T0 + (i + 1) * 50 * SECOND)
        assert got[1][2] == first
    last = T0 + (len(elsewhere) - 1) * 50 * SECOND
    got = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", elsewhere[-1], 80), last + 70 * SECOND)
    assert got[1][2] != first


def test_session_affinity_is_per_client() -> None:
    """Affinity is keyed by the client address: each client sticks to its own backend, and across
    clients both backends are used."""
    sim = _sim("affinity")
    picks = {}
    for c in range(16):
        client = f"198.51.100.{100 + c}"
        picks[client] = _through(sim, UPLINK, _frame(client, "10.96.0.54", 46000, 80), T0)[1][2]
        for j in range(1, 4):
            got = _through(sim, UPLINK, _frame(client, "10.96.0.54", 46000 + j, 80), T0 + j * SECOND)
            assert got[1][2] == picks[client]
    assert set(picks.values()) == {"10.244.1.10", "10.244.2.10"}


def _apply(sim: Interpreter, before: CompileResult, after: CompileResult) -> None:
    """Move the interpreter from one compile's bundle to another's as the loader plans it."""
    schema = before.schema
    plan = make_plan(
        schema, bundle_items(schema, after.lowered.bundle), bundle_items(schema, before.lowered.bundle)
    )
    for stage in plan.stages:
        batch = [op.update() for op in stage]
        assert all(error is None for error in sim.state.write(batch))


def test_session_affinity_forgets_a_backend_that_leaves(tmp_path: Path) -> None:
    """A client pinned to a backend that stops being ready (its member and its aff_backend entry,
    keyed by the backend's address and port, go away): its next new connection within the timeout
    is balanced afresh, to the remaining backend, and is then pinned there, also after the first
    backend is ready again (kube-proxy's affinity follows the last choice)."""
    case = GOLDEN / "affinity"
    before = compile_sources([str(case / "manifests.yaml")], case / "node.yaml")
    sim = interpreter_with(before.schema, before.lowered.bundle)
    first = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", 45000, 80), T0)[1][2]
    assert _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", 45001, 80), T0 + SECOND)[1][2] == first
    other = ({"10.244.1.10", "10.244.2.10"} - {first}).pop()

    docs = (case / "manifests.yaml").read_text().split("\n---\n")
    (i,) = [i for i, d in enumerate(docs) if "name: web-v4," in d]
    pinned = f"  - {{addresses: [{first}], nodeName: "
    assert docs[i].count(pinned) == 1
    docs[i] = docs[i].replace(pinned, f"  - {{addresses: [{first}], conditions: {{ready: false}}, nodeName: ")
    (tmp_path / "manifests.yaml").write_text("\n---\n".join(docs))
    after = compile_sources([str(tmp_path / "manifests.yaml")], case / "node.yaml")

    _apply(sim, before, after)
    for j in range(2, 6):
        got = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", 45000 + j, 80), T0 + j * SECOND)
        assert got[1][2:] == (other, 8080)
    _apply(sim, after, before)
    for j in range(6, 12):
        got = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.54", 45000 + j, 80), T0 + j * SECOND)
        assert got[1][2] == other


def test_internal_traffic_policy_local() -> None:
    """internalTrafficPolicy Local: cluster-IP traffic goes only to endpoints on this node and is
    dropped when there is none."""
    sim = _sim("internal-local")
    for i in range(6):
        addrs = _through(sim, UPLINK, _frame(CLIENT4, "10.96.0.56", 47000 + i, 53, udp=True), T0)[1]
        assert addrs[2:] == ("10.244.1.10", 5353)
    assert sim.process(WEB_A_PORT, _frame("10.244.1.10", "10.96.0.57", 47100, 80), T0).egress_port is None


@pytest.mark.parametrize(("pod", "vip", "gw"), [("10.244.1.10", "10.96.0.56", GW4)], ids=["v4"])
def test_hairpin(pod: str, vip: str, gw: str) -> None:
    """A pod reaching itself through its Service: without source NAT the pod's kernel would receive a
    packet from its own address and drop it as a martian (accept_local=0), which is why kube-proxy
    masquerades hairpin traffic. Here the source becomes the gateway, and the reply comes back from
    the VIP to the pod."""
    sim = _sim("internal-local")
    port, addrs = _through(sim, WEB_A_PORT, _frame(pod, vip, 48000, 80), T0)
    assert (port, addrs) == (WEB_A_PORT, (gw, 48000, pod, 8080))
    back = _through(sim, WEB_A_PORT, _frame(pod, gw, 8080, 48000), T0)
    assert back == (WEB_A_PORT, (vip, 80, pod, 48000))
    # Later packets of the flow are masqueraded the same way.
    assert _through(sim, WEB_A_PORT, _frame(pod, vip, 48000, 80), T0 + SECOND)[1] == addrs


def test_hairpin_v6() -> None:
    """Hairpin in IPv6 through a node port (Cluster policy): the local backend is the pod itself."""
    sim = _sim("nodeport-cluster")
    pod = "fd00:244:1::10"
    for i in range(16):
        port, (src, sport, dst, dport) = _through(
            sim, WEB_A_PORT, _frame(pod, "fd00:96::50", 48100 + i, 80), T0
        )
        if dst != pod:
            continue
        assert (port, src, sport, dport) == (WEB_A_PORT, "fe80::1", 48100 + i, 8080)
        back = _through(sim, WEB_A_PORT, _frame(pod, "fe80::1", 8080, 48100 + i), T0)
        assert back == (WEB_A_PORT, ("fd00:96::50", 80, pod, 48100 + i))
        return
    pytest.fail("no connection chose the pod itself")


def test_shared_backends_reply_from_the_right_vip() -> None:
    """Two Services selecting the same pods and target port: flows to either VIP reach the shared
    backends, and each reply leaves from the VIP and port its flow was addressed to."""
    sim = _sim("shared-backends")
    flows = []
    for i in range(10):
        for vip, vport in (("10.96.0.40", 80), ("10.96.0.41", 8080)):
            sport = 49000 + 2 * i + (vport == 8080)
            port, addrs = _through(sim, UPLINK, _frame(CLIENT4, vip, sport, vport), T0)
            assert addrs[0:2] == (CLIENT4, sport) and addrs[3] == 8080
            flows.append((vip, vport, sport, addrs[2], port))
    assert {f[3] for f in flows} == {"10.244.0.10", "10.244.0.11"}
    for vip, vport, sport, backend, port in flows:
        back = _through(sim, port, _frame(backend, CLIENT4, 8080, sport), T0 + SECOND)
        assert back[1] == (vip, vport, CLIENT4, sport)
