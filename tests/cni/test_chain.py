"""offload-cni in a plugin chain with Debian's reference plugins, driven as a container runtime would.

tests/cni/runtime.py executes the network configuration list as libcni does (§3 of the CNI
specification 1.1.0): the chain in order for ADD with each plugin's result as the next one's
prevResult, the final result as prevResult for CHECK and DEL, DEL in reverse. offload-cni delegates
IPAM to the reference ``host-local`` plugin (§4); ``tuning`` follows it in the chain.

Debian 12's plugins (containernetworking-plugins 1.1.1) speak CNI up to 1.0.0, so the 1.1.0
commands (STATUS, GC) are exercised with the static IPAM and with a small 1.1.0 IPAM plugin written
here that records how it was called.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.cni.netns import Marker
from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from tests.cni.conftest import Node, require_reference_plugins
from tests.netns_util import ip, links

pytestmark = pytest.mark.root

ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name};K8S_POD_UID=1234"


@pytest.fixture(params=["script", "shim"])
def node(request: pytest.FixtureRequest, node: Node) -> Node:
    """Every test twice: offload-cni as a script of this checkout's Python, and as a node gets it
    from the DaemonSet (docs/cni.md, "On a node"): the static shim copied by `offload-cni install
    --shim` into a plugin directory outside the venv, run with only CNI_* and a PATH whose python
    is not ours, in front of `offload-cni serve` in the node's namespace."""
    if request.param == "shim":
        node.shim = request.getfixturevalue("cni_shim")
        node.serve()
    return node


def offload(node: Node, **changes: Any) -> dict[str, Any]:
    """The plugin object of the conflist (no cniVersion/name: the runtime inserts them)."""
    conf = node.conf(**changes)
    del conf["cniVersion"], conf["name"]
    return conf


TUNING = {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}, "promisc": True}


def test_add_check_del_with_host_local_and_tuning(node: Node) -> None:
    require_reference_plugins()
    rt = node.runtime([offload(node, ipam=node.host_local()), TUNING])
    pod = node.pod_ns("pod1")
    netns = f"/run/netns/{pod}"

    out = rt.add("c1", netns, args=ARGS.format(name="web"))
    assert out.code == 0, out
    result = out.doc
    assert result is not None and result["cniVersion"] == "1.0.0"
    # host-local picked the addresses; we configure them as host prefixes routed via the gateway.
    assert [ip["address"] for ip in result["ips"]] == ["10.244.1.2/32", "fd00:10::2/128"]
    assert [ip["gateway"] for ip in result["ips"]] == ["169.254.1.1", "fe80::1"]
    assert result["interfaces"][0]["name"] == "eth0" and result["interfaces"][0]["sandbox"] == netns
    assert node.reservations() == {"10.244.1.2": "c1\neth0", "fd00:10::2": "c1\neth0"}
    # tuning ran on our interface after us.
    assert "PROMISC" in links(pod)["eth0"]["flags"]
    facts = load_node_facts(node.facts)
    assert [(p.namespace, p.name, p.port, p.mac) for p in facts.pods] == [
        ("shop", "web", 10, result["interfaces"][0]["mac"])
    ]

    assert rt.check("c1", netns, args=ARGS.format(name="web")).code == 0

    out = rt.delete("c1", netns, args=ARGS.format(name="web"))
    assert out.code == 0, out
    assert node.reservations() == {}  # §4: DEL delegated to host-local released the addresses
    assert node.port_state("p4port10") == (1500, True, None) and node.pods_in_facts() == []
    assert rt.delete("c1", netns, args=ARGS.format(name="web")).code == 0  # §2: DEL twice succeeds


def test_check_passes_on_ipam_errors_and_catches_a_later_mac_change(node: Node) -> None:
    require_reference_plugins()
    rt = node.runtime([offload(node, ipam=node.host_local()), {**TUNING, "mac": "02:aa:bb:cc:dd:ee"}])
    pod = node.pod_ns("pod1")
    netns = f"/run/netns/{pod}"
    assert rt.add("c1", netns, args=ARGS.format(name="web")).code == 0
    # tuning changed the MAC after us: the datapath (node facts) still has the old one.
    out = rt.check("c1", netns, args=ARGS.format(name="web"))
    assert out.plugin == "offload-cni" and out.code == 1 and out.doc is not None
    assert out.doc["code"] == 103 and "node facts say" in out.doc["details"]

    rt.conflist["plugins"][1].pop("mac")
    ip("-n", pod, "link", "set", "eth0", "address", node.pods_in_facts()[0]["mac"])
    rt.results[("c1", "eth0")]["interfaces"][0]["mac"] = node.pods_in_facts()[0]["mac"]
    assert rt.check("c1", netns, args=ARGS.format(name="web")).code == 0
    # §2 "CHECK": the IPAM plugin is CHECKed too, and its error passed on unchanged.
    for reserved in (node.tmp / "ipam").glob("*/10.244.1.*"):
        reserved.unlink()
    for reserved in (node.tmp / "ipam").glob("*/fd00*"):
        reserved.unlink()
    out = rt.check("c1", netns, args=ARGS.format(name="web"))
    assert out.code == 1 and out.doc is not None and "host-local" in out.doc["msg"]
    assert rt.delete("c1", netns, args=ARGS.format(name="web")).code == 0


def test_concurrent_chain_adds_race_for_ports_and_release_addresses(node: Node) -> None:
    require_reference_plugins()
    rt = node.runtime([offload(node, ipam=node.host_local()), TUNING])
    pods = [node.pod_ns(f"pod{i}") for i in range(6)]

    def add(i: int) -> int:
        return rt.add(f"c{i}", f"/run/netns/{pods[i]}", args=ARGS.format(name=f"web-{i}")).code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(add, range(6)))
    winners = [i for i, code in enumerate(codes) if code == 0]
    assert len(winners) == 3, codes
    records = node.pods_in_facts()
    assert sorted(p["port"] for p in records) == [10, 11, 12]
    # Losers got code 100 and their addresses back (§4: a failed ADD runs the delegate's DEL).
    owners = sorted({v.split("\n")[0] for v in node.reservations().values()})
    assert owners == sorted(f"c{i}" for i in winners)
    assert len({p["mac"] for p in records}) == 3
    for i in winners:
        assert rt.delete(f"c{i}", f"/run/netns/{pods[i]}", args=ARGS.format(name=f"web-{i}")).code == 0
    assert node.reservations() == {} and node.pods_in_facts() == []


def test_ipam_failure_is_passed_through_and_leaves_the_port(node: Node) -> None:
    require_reference_plugins()
    tiny = {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.9.0/30"}]],
        "dataDir": str(node.tmp / "ipam"),
    }
    rt = node.runtime([offload(node, ipam=tiny)])
    pod1, pod2 = node.pod_ns("pod1"), node.pod_ns("pod2")
    assert rt.add("c1", f"/run/netns/{pod1}", args=ARGS.format(name="a")).code == 0
    out = rt.add("c2", f"/run/netns/{pod2}", args=ARGS.format(name="b"))
    assert out.code == 1 and out.doc is not None and "no IP addresses available" in out.doc["msg"]
    assert node.port_state("p4port11") == (1500, True, None) and set(links(pod2)) == {"lo"}
    assert [p["containerId"] for p in node.pods_in_facts()] == ["c1"]


def test_missing_ipam_plugin_is_error_104(node: Node) -> None:
    rt = node.runtime([offload(node, ipam={"type": "no-such-ipam"})])
    pod = node.pod_ns("pod1")
    out = rt.add("c1", f"/run/netns/{pod}", args=ARGS.format(name="a"))
    assert out.code == 1 and out.doc is not None and out.doc["code"] == 104
    assert node.port_state("p4port10") == (1500, True, None) and node.pods_in_facts() == []


def test_del_after_the_pod_namespace_is_gone_releases_everything(node: Node) -> None:
    require_reference_plugins()
    rt = node.runtime([offload(node, ipam=node.host_local())])
    pod = node.pod_ns("pod1")
    assert rt.add("c1", f"/run/netns/{pod}", args=ARGS.format(name="a")).code == 0
    ip("netns", "del", pod)
    node.ns.created.remove(pod)
    # §2 "DEL": best effort; the runtime may pass the (now gone) path or none at all.
    assert rt.delete("c1", f"/run/netns/{pod}", args=ARGS.format(name="a")).code == 0
    assert node.reservations() == {} and node.pods_in_facts() == []


# -- CNI 1.1.0: STATUS and GC ---------------------------------------------------------------------

FAKE_IPAM = """\
#!{python}
# A CNI 1.1.0 IPAM plugin for tests: records each call, allocates one fixed address.
import json, os, sys
conf = json.load(sys.stdin)
with open({log!r}, "a") as f:
    f.write(json.dumps({{"command": os.environ["CNI_COMMAND"], "conf": conf,
                        "cid": os.environ.get("CNI_CONTAINERID")}}) + "\\n")
command = os.environ["CNI_COMMAND"]
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]}}))
elif command == "ADD":
    print(json.dumps({{"cniVersion": conf["cniVersion"], "ips": [{{"address": "10.244.3.7/24"}}],
                      "dns": {{"nameservers": ["10.96.0.10"]}}}}))
elif command == "STATUS" and os.path.exists({log!r} + ".down"):
    print(json.dumps({{"cniVersion": "1.1.0", "code": 50, "msg": "allocator offline"}}))
    sys.exit(1)
"""


def fake_ipam(node: Node) -> Path:
    log = node.tmp / "fake-ipam.log"
    script = node.bin_dir() / "fake-ipam"
    script.write_text(FAKE_IPAM.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_status_reports_readiness_and_forwards_to_ipam(node: Node) -> None:
    log = fake_ipam(node)
    rt = node.runtime([offload(node, ipam={"type": "fake-ipam"})], version="1.1.0")
    assert rt.status().code == 0
    assert [c["command"] for c in calls(log)] == ["STATUS"]  # §2 "STATUS": delegated plugins too
    assert calls(log)[0]["conf"]["ipam"] == {"type": "fake-ipam"}  # §4: the complete configuration

    Path(f"{log}.down").touch()
    out = rt.status()
    assert out.code == 1 and out.doc is not None and out.doc["code"] == 50
    assert "allocator offline" in out.doc["msg"]
    Path(f"{log}.down").unlink()

    # Pool exhausted: §2 "STATUS" says a plugin out of resources must report it (code 50).
    pods = [node.pod_ns(f"pod{i}") for i in range(3)]
    for i, pod in enumerate(pods):
        assert rt.add(f"c{i}", f"/run/netns/{pod}", args=ARGS.format(name=f"w{i}")).code == 0
    out = rt.status()
    assert out.code == 1 and out.doc is not None and out.doc["code"] == 50
    assert out.doc["msg"] == "device port pool exhausted"
    # The fake IPAM hands everyone the same address; only our side matters here.
    assert rt.results[("c0", "eth0")]["dns"] == {"nameservers": ["10.96.0.10"]}


def test_status_with_a_1_0_ipam_plugin_is_not_available(node: Node) -> None:
    """host-local 1.1.1 does not know STATUS, so a 1.1.0 configuration using it cannot ADD either."""
    require_reference_plugins()
    rt = node.runtime([offload(node, ipam=node.host_local())], version="1.1.0")
    out = rt.status()
    assert out.code == 1 and out.doc is not None and out.doc["code"] == 50
    assert "host-local" in out.doc["msg"]


def test_gc_releases_stale_attachments_and_forwards_to_ipam(node: Node) -> None:
    log = fake_ipam(node)
    rt = node.runtime([offload(node, ipam={"type": "fake-ipam"})], version="1.1.0")
    pod0, pod1 = node.pod_ns("pod0"), node.pod_ns("pod1")
    assert rt.add("c0", f"/run/netns/{pod0}", args=ARGS.format(name="w0")).code == 0
    assert rt.add("c1", f"/run/netns/{pod1}", args=ARGS.format(name="w1")).code == 0
    # A third ADD killed after marking p4port12 but before moving it (no record, never DELeted).
    ip(
        "-n",
        node.node,
        "link",
        "set",
        "p4port12",
        "alias",
        Marker("p4port12", 1500, True, "c9", "eth0").encode(),
    )
    ip("-n", node.node, "link", "set", "p4port12", "down")

    outs = rt.gc([("c0", "eth0")])
    assert [o.code for o in outs] == [0], outs
    assert [p["containerId"] for p in node.pods_in_facts()] == ["c0"]
    assert node.port_state("p4port12") == (1500, True, None)
    gc_calls = [c for c in calls(log) if c["command"] == "GC"]
    assert len(gc_calls) == 1  # §2 "GC": forwarded to the delegated plugin, with the valid list
    assert gc_calls[0]["conf"]["cni.dev/valid-attachments"] == [{"containerID": "c0", "ifname": "eth0"}]
    load_node_facts(node.facts)


def test_gc_reports_ipam_errors_after_doing_its_own_part(node: Node) -> None:
    require_reference_plugins()
    # host-local 1.1.1 rejects GC; our records are still cleaned, then its error is reported.
    rt = node.runtime([offload(node, ipam=node.host_local())], version="1.1.0")
    ip(
        "-n",
        node.node,
        "link",
        "set",
        "p4port10",
        "alias",
        Marker("p4port10", 1500, True, "c9", "eth0").encode(),
    )
    outs = rt.gc([])
    assert outs[0].code == 1 and outs[0].doc is not None and "GC incomplete" in outs[0].doc["msg"]
    assert node.port_state("p4port10") == (1500, True, None)
