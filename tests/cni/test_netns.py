"""The CNI plugin as the runtime calls it, plugging veth "device ports" into pod namespaces.

Per test: namespace ``node`` plays the host (the plugin runs inside it, so its "host namespace" is
``node``), namespace ``dp`` holds the datapath side of every device port, and each pod gets its
own namespace. Device ports are veth pairs p4portN (node) <-> dpN (dp).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from tests.netns_util import (
    REPO,
    Namespaces,
    ip,
    links,
    neighbour,
    read_json,
    routes,
    send_udp,
    veth,
    wait_for,
)

pytestmark = pytest.mark.root

FACTS = """\
# operator-written part; the plugin maintains pods
apiVersion: offload.k8s-offload.dev/v1alpha1
kind: NodeFacts
nodeName: node-a
nodeIPs: [192.168.10.11]
gateway: {ipv4: 169.254.1.1, ipv6: "fe80::1", mac: "02:00:00:00:00:01"}
ports: {arpProxy: 1, host: 2, uplink: 3}
pods: []
"""


@dataclass
class Node:
    ns: Namespaces
    node: str
    dp: str
    facts: Path
    ports: list[tuple[str, int]]

    def conf(self, **changes: Any) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "offload",
            "type": "offload-cni",
            "pool": [{"interface": name, "port": port} for name, port in self.ports],
            "nodeFacts": str(self.facts),
            "mtu": 1400,
            **changes,
        }

    def pod_ns(self, suffix: str) -> str:
        return self.ns.add(suffix)

    def cni(
        self,
        command: str,
        pod: str | None,
        container_id: str,
        name: str = "web",
        ip_arg: str = "10.244.1.5/32,fd00:10::5/128",
        conf: dict[str, Any] | None = None,
        ifname: str = "eth0",
    ) -> tuple[int, dict[str, Any] | None]:
        """Invoke the plugin inside the node namespace the way a runtime would."""
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{pod}" if pod else "",
            "CNI_IFNAME": ifname,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name};IP={ip_arg}",
            "CNI_PATH": "/opt/cni/bin",
        }
        proc = subprocess.run(
            ["ip", "netns", "exec", self.node, sys.executable, "-m", "k8s_offload.cni"],
            input=json.dumps(conf or self.conf()),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=30,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def pods_in_facts(self) -> list[dict[str, Any]]:
        return yaml.safe_load(self.facts.read_text())["pods"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    ns = Namespaces()
    try:
        node_ns, dp = ns.add("node"), ns.add("dp")
        ports = [(f"p4port{n}", n) for n in (10, 11, 12)]
        for name, n in ports:
            veth(node_ns, name, dp, f"dp{n}")
            ip("-n", node_ns, "link", "set", name, "up")
            ip("-n", dp, "link", "set", f"dp{n}", "up")
        facts = tmp_path / "node.yaml"
        facts.write_text(FACTS)
        yield Node(ns, node_ns, dp, facts, ports)
    finally:
        ns.cleanup()


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

    # A repeated ADD changes nothing and returns the same result.
    before = node.facts.read_text()
    assert node.cni("ADD", pod, "c1") == (0, result)
    assert node.facts.read_text() == before and "p4port11" in links(node.node)

    assert node.cni("DEL", pod, "c1") == (0, None)
    back = links(node.node)["p4port10"]
    assert back["address"] == host_mac and back["mtu"] == 1500 and "UP" in back["flags"]
    assert "ifalias" not in back
    assert "eth0" not in links(pod)
    assert node.pods_in_facts() == []
    assert node.cni("DEL", pod, "c1") == (0, None)  # DEL of something unknown succeeds
    assert node.cni("DEL", None, "never-added") == (0, None)


def test_check_detects_missing_route(node: Node) -> None:
    pod = node.pod_ns("pod1")
    assert node.cni("ADD", pod, "c1")[0] == 0
    ip("-n", pod, "route", "del", "default")
    rc, err = node.cni("CHECK", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 103
    assert "0.0.0.0/0 via 169.254.1.1 missing" in err["details"]


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
    # The pod already has an eth0 (a veth to nowhere), so the rename must fail after the move.
    veth(pod, "eth0", node.dp, "stray0")
    rc, err = node.cni("ADD", pod, "c1")
    assert rc == 1 and err is not None and err["code"] == 102
    back = links(node.node)["p4port10"]
    assert back["mtu"] == 1500 and "UP" in back["flags"] and "ifalias" not in back
    assert set(links(pod)) == {"lo", "eth0"} and "addr_info" in links(pod)["eth0"]
    assert not any(a["family"] == "inet" for a in links(pod)["eth0"]["addr_info"])
    assert node.pods_in_facts() == []


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


def test_concurrent_adds_get_distinct_ports(node: Node) -> None:
    pods = [node.pod_ns(f"pod{i}") for i in range(3)]

    def add(i: int) -> tuple[int, dict[str, Any] | None]:
        return node.cni("ADD", pods[i], f"c{i}", name=f"web-{i}", ip_arg=f"10.244.1.{10 + i}/32")

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(add, range(3)))
    assert [rc for rc, _ in results] == [0, 0, 0], results
    entries = node.pods_in_facts()
    assert sorted(p["port"] for p in entries) == [10, 11, 12]
    assert sorted(p["name"] for p in entries) == ["web-0", "web-1", "web-2"]
    for i, pod in enumerate(pods):
        assert links(pod)["eth0"]["addr_info"][0]["local"] == f"10.244.1.{10 + i}"


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
