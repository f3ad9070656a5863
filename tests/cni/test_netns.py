"""The CNI plugin alone, as the runtime calls it, plugging veth "device ports" into pod namespaces
(fixtures in conftest.py). Section references (§) are to the CNI specification 1.1.0."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.cni.netns import Marker
from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from tests.cni.conftest import Node
from tests.netns_util import REPO, ip, links, neighbour, read_json, routes, send_udp, veth, wait_for

pytestmark = pytest.mark.root


def test_add_check_readd_del(node: Node) -> None:
    pod = node.pod_ns("pod1")
    host_mac = links(node.node)["p4port10"]["address"]

    rc, result = node.cni("ADD", pod, "c1")
    assert rc == 0, result
    assert result is not None and result["cniVersion"] == "1.0.0"
    assert result["interfaces"] == [{"name": "eth0", "mac": host_mac, "sandbox": f"/run/netns/{pod}"}]
    assert {ip["address"] for ip in result["ips"]} == {"10.244.1.5/32", "fd00:10::5/128"}

    # Seen from inside the pod: the device port, renamed, up, addressed and routed.
    eth0 = links(pod)["eth0"]
    assert eth0["address"] == host_mac and eth0["mtu"] == 1400 and "UP" in eth0["flags"]
    addrs = {f"{a['local']}/{a['prefixlen']}" for a in eth0["addr_info"] if a["scope"] == "global"}
    assert addrs == {"10.244.1.5/32", "fd00:10::5/128"}
    v4 = {(r["dst"], r.get("gateway"), r.get("scope")) for r in routes(pod, "-4")}
    assert ("169.254.1.1", None, "link") in v4 and ("default", "169.254.1.1", None) in v4
    assert any(r["dst"] == "default" and r.get("gateway") == "fe80::1" for r in routes(pod, "-6"))
    assert "p4port10" not in links(node.node)

    # Recorded in the node facts, which the compiler still accepts; the operator's part is intact.
    assert node.pods_in_facts() == [
        {
            "namespace": "shop",
            "name": "web",
            "port": 10,
            "mac": host_mac,
            "interface": "eth0",
            "hostInterface": "p4port10",
            "containerId": "c1",
        }
    ]
    facts = load_node_facts(node.facts)
    assert facts.node_name == "node-a" and [p.port for p in facts.pods] == [10]

    assert node.cni("CHECK", pod, "c1", conf=node.conf(prevResult=result)) == (0, None)

    # §2 "ADD": an interface of the requested name exists already: error, and nothing changes.
    before = node.facts.read_text()
    rc, err = node.cni("ADD", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 4 and "CNI_IFNAME" in err["msg"]
    assert node.facts.read_text() == before and "p4port11" in links(node.node)

    assert node.cni("DEL", pod, "c1") == (0, None)
    back = links(node.node)["p4port10"]
    assert back["address"] == host_mac and back["mtu"] == 1500 and "UP" in back["flags"]
    assert "ifalias" not in back
    assert "eth0" not in links(pod)
    assert node.pods_in_facts() == []
    assert node.cni("DEL", pod, "c1") == (0, None)  # DEL of something unknown succeeds
    assert node.cni("DEL", None, "never-added") == (0, None)


def test_check_detects_missing_route_and_requires_prev_result(node: Node) -> None:
    pod = node.pod_ns("pod1")
    rc, result = node.cni("ADD", pod, "c1")
    assert rc == 0
    # §2 "CHECK": the runtime must include prevResult; the plugin must consult it.
    rc, err = node.cni("CHECK", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 7 and "prevResult" in err["msg"]
    ip("-n", pod, "route", "del", "default")
    rc, err = node.cni("CHECK", pod, "c1", conf=node.conf(prevResult=result))
    assert rc == 1 and err is not None and err["code"] == 103
    assert "0.0.0.0/0 via 169.254.1.1 missing" in err["details"]
    # An address listed in prevResult but removed from the interface is reported as such.
    ip("-n", pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    ip("-n", pod, "addr", "del", "10.244.1.5/32", "dev", "eth0")
    rc, err = node.cni("CHECK", pod, "c1", conf=node.conf(prevResult=result))
    assert rc == 1 and err is not None and "address 10.244.1.5/32 missing" in err["details"]


def test_pool_exhaustion_is_error_100_and_leaves_nothing(node: Node) -> None:
    one_port = node.conf(pool=[{"interface": "p4port10", "port": 10}])
    pod1, pod2 = node.pod_ns("pod1"), node.pod_ns("pod2")
    assert node.cni("ADD", pod1, "c1", conf=one_port)[0] == 0
    rc, err = node.cni("ADD", pod2, "c2", name="other", ip_arg="10.244.1.6/32", conf=one_port)
    assert rc == 1 and err is not None and err["code"] == 100
    assert set(links(pod2)) == {"lo"}
    assert [p["containerId"] for p in node.pods_in_facts()] == ["c1"]


def test_failed_plumbing_is_rolled_back(node: Node) -> None:
    pod = node.pod_ns("pod1")
    # The pod already has a default route (through a veth to nowhere), so adding ours fails
    # after the port has been moved, renamed and addressed.
    veth(pod, "other0", node.dp, "stray0")
    ip("-n", pod, "link", "set", "other0", "up")
    ip("-n", pod, "route", "add", "default", "dev", "other0")
    rc, err = node.cni("ADD", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 102
    assert node.port_state("p4port10") == (1500, True, None)
    assert set(links(pod)) == {"lo", "other0"}
    assert node.pods_in_facts() == []


def test_existing_interface_is_refused_before_anything_moves(node: Node) -> None:
    pod = node.pod_ns("pod1")
    veth(pod, "eth0", node.dp, "stray0")
    rc, err = node.cni("ADD", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 4
    assert node.port_state("p4port10") == (1500, True, None) and node.pods_in_facts() == []


def test_config_and_env_errors(node: Node) -> None:
    pod = node.pod_ns("pod1")

    def code(container_id: str = "c1", ip_arg: str = "10.244.1.5/32", **changes: Any) -> int:
        rc, err = node.cni("ADD", pod, container_id, ip_arg=ip_arg, conf=node.conf(**changes))
        assert rc == 1 and err is not None
        return int(err["code"])

    assert code(cniVersion="0.1.0") == 1
    assert code(pool=[]) == 7
    assert code(pool=[{"interface": "p4port10", "port": 2}]) == 7  # the node's host port
    assert code(container_id="-c1") == 4
    assert code(ip_arg="") == 7
    assert "p4port10" in links(node.node) and node.pods_in_facts() == []


def test_concurrent_adds_race_for_the_pool(node: Node) -> None:
    """Five pods race for three ports: three win distinct ports, two get code 100, nothing leaks."""
    pods = [node.pod_ns(f"pod{i}") for i in range(5)]

    def add(i: int) -> tuple[int, dict[str, Any] | None]:
        return node.cni("ADD", pods[i], f"c{i}", name=f"web-{i}", ip_arg=f"10.244.1.{10 + i}/32")

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(add, range(5)))
    winners = [i for i, (rc, _) in enumerate(results) if rc == 0]
    assert len(winners) == 3, results
    assert all(doc is not None and doc["code"] == 100 for rc, doc in results if rc != 0)
    entries = node.pods_in_facts()
    assert sorted(p["port"] for p in entries) == [10, 11, 12]
    assert sorted(p["name"] for p in entries) == sorted(f"web-{i}" for i in winners)
    for i, pod in enumerate(pods):
        if i in winners:
            assert links(pod)["eth0"]["addr_info"][0]["local"] == f"10.244.1.{10 + i}"
        else:
            assert set(links(pod)) == {"lo"}
    load_node_facts(node.facts)  # still valid for the compiler


def test_add_reclaims_a_port_stranded_in_the_host_namespace(node: Node) -> None:
    """A port marked by an ADD that was killed before moving it (and never DELeted) is not lost."""
    stranded = Marker("p4port10", 1500, True, "killed-container", "eth0").encode()
    ip("-n", node.node, "link", "set", "p4port10", "down")
    ip("-n", node.node, "link", "set", "p4port10", "alias", stranded)
    pod = node.pod_ns("pod1")
    assert node.cni("ADD", pod, "c1")[0] == 0
    assert [p["hostInterface"] for p in node.pods_in_facts()] == ["p4port10"]
    assert node.cni("DEL", pod, "c1") == (0, None)
    assert node.port_state("p4port10") == (1500, True, None)  # its pre-ADD state, from the marker


def test_plumbed_pod_resolves_gateway_through_arp_proxy(node: Node, tmp_path: Path) -> None:
    """End to end: CNI-plugged pod, ARP/NDP proxy on the datapath side of its device port."""
    pod = node.pod_ns("pod1")
    assert node.cni("ADD", pod, "c1")[0] == 0
    stats = tmp_path / "stats.json"
    cmd = [sys.executable, "-m", "k8s_offload.arp_proxy", "--netns", node.dp, "--interface", "dp10"]
    cmd += [
        "--gateway-ip",
        "169.254.1.1",
        "fe80::1",
        "--mac",
        "02:00:00:00:00:01",
        "--stats-file",
        str(stats),
    ]
    proxy = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (read_json(stats) or {}).get("attached"), 10)
        send_udp(pod, "192.0.2.1")  # off-link: goes to the default gateway
        resolved: Callable[[], Any] = lambda: (neighbour(pod, "eth0", "169.254.1.1") or {}).get("lladdr")  # noqa: E731
        assert wait_for(resolved, 5) == "02:00:00:00:00:01"
    finally:
        proxy.terminate()
        assert proxy.wait(5) == 0
