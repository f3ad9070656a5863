"""The two-node lab end to end (root): per-node compilation composes into a cluster.

`offload-lab up --nodes 2` on examples/lab: node lab-node (demo/client, demo/guest, demo/web-a,
demo/web-b) and node lab-node-b (demo/api-0, demo/api-1 behind Service demo/api), each with its
own device (switch), ARP proxy, CNI configuration, node facts and loader, the two devices' uplink
ports linked. A curl from the client on the first node to the api Service goes through the first
device (Service load balancing, DNAT, egress policy, to the uplink), the second device (ingress
policy, to the pod) and back (reverse NAT on the first). A NetworkPolicy on the second node's
pods cuts it. Brought up once for the module; the last test tears it down and checks nothing is
left.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_offload.cli.main import main as compile_main
from k8s_offload.lab import cli
from k8s_offload.lab.core import METRICS_ADDRESS, ns_http_get, process_alive, run

from .harness import Running, flush_flow_caches, lab_up

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.root

API_VIP = ("10.96.0.20", "fd00:96::20")
API = {"demo/api-0": ("10.244.2.10", "fd00:244:2::10"), "demo/api-1": ("10.244.2.11", "fd00:244:2::11")}
CLIENT = ("10.244.1.20", "fd00:244:1::20")
GUEST = ("10.244.1.21", "fd00:244:1::21")
NODE_IPS = {"lab-node": ("192.168.77.1", "fd00:77::1"), "lab-node-b": ("192.168.77.2", "fd00:77::2")}


def _url(host: str, port: int = 80) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with lab_up(tmp_path_factory, "--nodes", "2") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_flow_cache(request: pytest.FixtureRequest) -> None:
    flush_flow_caches(request)


def test_status_shows_both_nodes(lab: Running, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["status", "--name", lab.state.name, "--state-dir", lab.state.state_dir]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "ready" in text and "NOT ready" not in text
    assert "node lab-node: " in text and "node lab-node-b: " in text
    assert cli.main([*argv, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    nodes = {n["name"]: n for n in st["nodes"]}
    assert set(nodes) == {"lab-node", "lab-node-b"}
    pods = {name: {p["pod"]: p["devicePort"] for p in n["pods"]} for name, n in nodes.items()}
    assert pods == {
        "lab-node": {"demo/client": 10, "demo/guest": 11, "demo/web-a": 12, "demo/web-b": 13},
        "lab-node-b": {"demo/api-0": 10, "demo/api-1": 11},
    }
    for name, node in nodes.items():
        assert {p["role"] for p in node["processes"] if p["running"]} == {"switch", "arp-proxy", "loader"}, (
            name
        )
        assert node["uplinkPeer"] == ({"lab-node", "lab-node-b"} - {name}).pop()
    # The uplinks are the two ends of one veth pair, one in each node's namespace.
    a, b = (lab.state.node(n).netns for n in ("lab-node", "lab-node-b"))
    link = json.loads(run("ip", "-n", a, "-j", "-d", "link", "show", "dp3").stdout)[0]
    peer = json.loads(run("ip", "-n", b, "-j", "link", "show", "dp3").stdout)[0]
    assert link["linkinfo"]["info_kind"] == "veth" and link["link_index"] == peer["ifindex"]


def _entries(netns: str) -> dict[str, int]:
    """Entries per table (and selector members and groups) on a node's device, from its loader's
    metrics."""
    code, body = ns_http_get(netns, f"http://{METRICS_ADDRESS}/metrics")
    assert code == 200
    out = {}
    for line in body.splitlines():
        m = re.match(r'offload_entries\{table="([^"]+)"\} (\S+)', line)
        if m and float(m[2]):
            out[m[1]] = int(float(m[2]))
    return out


def _compiled(cluster: Path, facts: Path, tmp: Path) -> dict[str, int]:
    """The same counts from a full compile (`offload-compile --format json`), default actions
    aside (the metrics count entries)."""
    out = tmp / f"{facts.parent.name}.json"
    assert compile_main([str(cluster), "--node", str(facts), "--format", "json", "-o", str(out)]) == 0
    bundle = json.loads(out.read_text())
    counts: dict[str, int] = {}
    for entry in bundle["entries"]:
        if not entry.get("default"):
            name = entry["table"].rsplit(".", 1)[1]
            counts[name] = counts.get(name, 0) + 1
    for kind in ("members", "groups"):
        for item in bundle[kind]:
            name = f"{item['profile'].rsplit('.', 1)[1]} {kind}"
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_each_loader_compiles_its_own_node_from_the_same_cluster(lab: Running, tmp_path: Path) -> None:
    """Each device holds what a full compile of the shared manifests gives for its own node facts
    (as the CNI plugin filled them in), and the two differ where the nodes do."""
    per_node = {}
    for node in lab.state.nodes:
        device = _entries(node.netns)
        want = _compiled(lab.manifests, Path(node.dir) / "node.yaml", tmp_path)
        assert device == want, node.name
        per_node[node.name] = want
    # Local pods get to_pod routes: four pods on the first node, two on the second (two families each).
    assert per_node["lab-node"] != per_node["lab-node-b"]


@pytest.mark.parametrize("family", [0, 1], ids=["ipv4", "ipv6"])
def test_curl_to_a_service_whose_backends_are_on_the_other_node(lab: Running, family: int) -> None:
    seen = set()
    for _ in range(6):
        remote, served_by, client, _ = lab.get("client", _url(API_VIP[family]))
        assert remote == API_VIP[family]  # the reply came back through the first node's reverse NAT
        assert client == CLIENT[family]  # no source NAT between pods, across nodes too
        seen.add(served_by)
    assert seen <= set(API) and seen


def test_curl_to_a_pod_on_the_other_node_and_back(lab: Running) -> None:
    for pod, addrs in API.items():
        for family in (0, 1):
            remote, served_by, client, _ = lab.get("client", _url(addrs[family], 9090))
            assert (remote, served_by, client) == (addrs[family], pod, CLIENT[family])
    # And the other way: a pod of the second node reaches a pod of the first.
    remote, served_by, client, _ = lab.get("api-0", _url("10.244.1.10", 8080))
    assert (remote, served_by, client) == ("10.244.1.10", "demo/web-a", API["demo/api-0"][0])


def test_network_policy_on_the_other_node_cuts_it(lab: Running) -> None:
    """The api pods admit only app=guest: the client's SYN crosses the first device and is dropped
    by the second device's ingress policy; the guest still gets through; without the policy the
    client does again."""
    url = _url(API_VIP[0])
    assert lab.curl("client", url)[0] == 0
    lab.change("api-from-guest.yaml", (REPO / "examples/lab/policies/api-from-guest.yaml").read_text())
    try:
        assert lab.curl("client", url, max_time=2)[0] == 28  # timed out: dropped, not refused
        assert lab.curl("client", _url(API["demo/api-1"][1], 9090), max_time=2)[0] == 28
        assert lab.get("guest", url)[2] == GUEST[0]
        assert lab.get("guest", _url(API_VIP[1]))[2] == GUEST[1]
    finally:
        lab.change("api-from-guest.yaml", None)
    assert lab.get("client", url)[1] in API


@pytest.fixture
def host_servers(lab: Running) -> Iterator[None]:
    """A server in each node's own network stack (behind its host port), on port 8081."""
    procs = []
    for node in lab.state.nodes:
        args = ["--name", f"host/{node.name}", "--port", "8081"]
        cmd = ["ip", "netns", "exec", node.netns, sys.executable, "-m", "k8s_offload.lab.podserver", *args]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        for p in procs:
            assert p.stdout is not None and "serving" in p.stdout.readline()
        yield
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def test_host_ports_reach_each_nodes_own_stack(lab: Running, host_servers: None) -> None:
    """A pod reaches its node's addresses through the host port, and the other node's through
    both devices and the uplink; a node reaches a pod of the other node."""
    for family in (0, 1):
        for node, addrs in NODE_IPS.items():
            remote, served_by, client, _ = lab.get("client", _url(addrs[family], 8081))
            assert (remote, served_by, client) == (addrs[family], f"host/{node}", CLIENT[family])
    code, out = ns_http_get(lab.state.node("lab-node").netns, _url(API["demo/api-0"][0], 9090))
    assert code == 200 and f"client={NODE_IPS['lab-node'][0]} " in out


def test_down_leaves_nothing(lab: Running) -> None:
    state = lab.state
    assert cli.main(["down", "--name", state.name, "--state-dir", state.state_dir]) == 0
    netns = run("ip", "netns", "list").stdout
    assert len(state.netns) == 2 + 6
    assert not [ns for ns in state.netns if re.search(rf"^{re.escape(ns)}\b", netns, re.M)]
    assert not [p.role for p in state.processes if process_alive(p)]
    assert not any(state.state_dir in ln for ln in run("ps", "-eo", "args").stdout.splitlines())
    assert not Path(state.state_dir).exists()
    assert cli.main(["status", "--name", state.name, "--state-dir", state.state_dir]) == 3
