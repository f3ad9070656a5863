"""The lab end to end (root): curl between pod namespaces through the software target.

One lab (examples/lab: demo/web-a and demo/web-b behind Service demo/web, clients demo/client and
demo/guest) is brought up with `offload-lab up` for the module and torn down by the last test,
which checks that nothing is left; a finalizer tears it down in any case. Tests that change the
manifests restore them before they end.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from k8s_offload.lab import cli
from k8s_offload.lab.core import child_env, ns_run, process_alive, run

from .harness import BODY, Running, flush_flow_caches, lab_up

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.root

VIP4, VIP6 = "10.96.0.10", "fd00:96::10"
WEB = {"demo/web-a": ("10.244.1.10", "fd00:244:1::10"), "demo/web-b": ("10.244.1.11", "fd00:244:1::11")}
CLIENT = ("10.244.1.20", "fd00:244:1::20")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with lab_up(tmp_path_factory, "--cluster", str(REPO / "examples/lab/cluster")) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_flow_cache(request: pytest.FixtureRequest) -> None:
    flush_flow_caches(request)


def test_status_lists_pods_on_cni_assigned_ports(lab: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--name", lab.state.name, "--state-dir", lab.state.state_dir]) == 0
    out = capsys.readouterr().out
    assert "ready" in out and "NOT ready" not in out
    ports = {p.key: p.device_port for p in lab.state.pods}
    assert set(ports) == {"demo/client", "demo/guest", "demo/web-a", "demo/web-b"}
    assert sorted(ports.values()) == [10, 11, 12, 13]
    facts = yaml.safe_load((Path(lab.state.nodes[0].dir) / "node.yaml").read_text())
    assert {f"{p['namespace']}/{p['name']}": p["port"] for p in facts["pods"]} == ports
    addrs = ns_run(lab.state.pod("web-a").netns, "ip", "-br", "addr", "show", "eth0").stdout
    assert "10.244.1.10/32" in addrs and "fd00:244:1::10/128" in addrs
    code = "from k8s_offload.target.dataplane import tx_checksum; print(tx_checksum('eth0'))"
    tx = ns_run(lab.state.pod("web-a").netns, sys.executable, "-c", code, env=child_env()).stdout
    assert tx.strip() == "False"  # checksum offload off, or the frames' L4 checksums are unfinished


@pytest.mark.parametrize("family", [0, 1], ids=["ipv4", "ipv6"])
def test_curl_pod_to_pod(lab: Running, family: int) -> None:
    for pod, addrs in WEB.items():
        host = addrs[family] if family == 0 else f"[{addrs[family]}]"
        remote, served_by, client, _ = lab.get("client", f"http://{host}:8080/")
        assert (remote, served_by, client) == (addrs[family], pod, CLIENT[family])


@pytest.mark.parametrize("family", [0, 1], ids=["ipv4", "ipv6"])
def test_curl_service_vip_reaches_a_backend(lab: Running, family: int) -> None:
    vip = (VIP4, VIP6)[family]
    url = f"http://{vip}/" if family == 0 else f"http://[{vip}]/"
    for _ in range(4):
        remote, served_by, client, _ = lab.get("client", url)
        assert remote == vip  # replies come back from the VIP (reverse NAT)
        assert served_by in WEB  # DNAT to a backend's port 8080
        assert client == CLIENT[family]  # no source NAT between pods


def test_network_policy_cuts_guest_keeps_client(lab: Running) -> None:
    url = f"http://{VIP4}/"
    assert lab.curl("guest", url)[0] == 0
    policy = (REPO / "examples/lab/policies/web-from-client.yaml").read_text()
    lab.change("web-from-client.yaml", policy)
    try:
        code, out = lab.curl("guest", url, max_time=2)
        assert code == 28, out  # timed out: the SYN is dropped by the ingress policy
        assert lab.curl("guest", f"http://[{WEB['demo/web-b'][1]}]:8080/", max_time=2)[0] == 28
        assert lab.get("client", url)[1] in WEB
        assert lab.get("client", f"http://[{VIP6}]/")[1] in WEB
    finally:
        lab.change("web-from-client.yaml", None)
    assert lab.get("guest", url)[1] in WEB


def test_guardrail_cuts_a_connection_the_network_policy_allows(lab: Running) -> None:
    """An AdminNetworkPolicy (examples/lab/policies/guardrail.yaml) denies demo/client's egress to
    the web pods: the admin tier comes before NetworkPolicy, so web-from-client's allow no longer
    counts (docs/tiers.md); guest, which the guardrail does not select, is still cut by the
    NetworkPolicy, and removing the guardrail gives client its connection back."""
    url = f"http://{VIP4}/"
    lab.change("web-from-client.yaml", (REPO / "examples/lab/policies/web-from-client.yaml").read_text())
    try:
        assert lab.get("client", url)[1] in WEB
        lab.change("guardrail.yaml", (REPO / "examples/lab/policies/guardrail.yaml").read_text())
        try:
            lab.lab.flush_flows(lab.state)  # no earlier connection of client survives
            code, out = lab.curl("client", url, max_time=2)
            assert code == 28, out  # the SYN is dropped by the client's egress admin tier
            assert lab.curl("client", f"http://[{WEB['demo/web-a'][1]}]:8080/", max_time=2)[0] == 28
            assert lab.curl("guest", url, max_time=2)[0] == 28  # the NetworkPolicy still applies
        finally:
            lab.change("guardrail.yaml", None)
        assert lab.get("client", url)[1] in WEB
    finally:
        lab.change("web-from-client.yaml", None)


def _without_endpoint(text: str, pod: str) -> str:
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        doc["endpoints"] = [e for e in doc["endpoints"] if e["targetRef"]["name"] != pod]
    return yaml.safe_dump_all(docs, sort_keys=False)


KEEPALIVE_CLIENT = """\
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
for _ in sys.stdin:
    conn.request("GET", "/")
    print(conn.getresponse().read().decode().strip(), flush=True)
"""


def test_removed_backend_gets_no_new_connections_open_one_survives(lab: Running) -> None:
    url = f"http://{VIP4}/"
    holder = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.state.pod("client").netns,
            sys.executable,
            "-c",
            KEEPALIVE_CLIENT,
            VIP4,
            "80",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    original = (lab.manifests / "endpointslices.yaml").read_text()
    try:
        assert holder.stdin is not None and holder.stdout is not None

        def ask() -> tuple[str, str]:
            holder.stdin.write("\n")  # type: ignore[union-attr]
            holder.stdin.flush()  # type: ignore[union-attr]
            m = BODY.search(holder.stdout.readline())  # type: ignore[union-attr]
            assert m, "the kept connection broke"
            return m[1], m[4]

        kept, kept_port = ask()
        removed = next(p for p in WEB if p != kept)
        # The other backend does take new connections before it is removed.
        assert any(lab.get("client", url)[1] == removed for _ in range(24))
        lab.change("endpointslices.yaml", _without_endpoint(original, removed.split("/")[1]))
        assert {lab.get("client", url)[1] for _ in range(8)} == {kept}
        assert ask() == (kept, kept_port)  # same backend, same connection
    finally:
        holder.kill()
        holder.wait()
        lab.change("endpointslices.yaml", original)


def test_down_leaves_nothing(lab: Running) -> None:
    state = lab.state
    assert cli.main(["down", "--name", state.name, "--state-dir", state.state_dir]) == 0
    netns = run("ip", "netns", "list").stdout
    assert not [ns for ns in state.netns if re.search(rf"^{re.escape(ns)}\b", netns, re.M)]
    assert not [p.role for p in state.processes if process_alive(p)]
    assert not any(state.state_dir in ln for ln in run("ps", "-eo", "args").stdout.splitlines())
    assert not re.search(r"\b(arpp|p4p1[0-3]|dp1[0-3]?)\b", run("ip", "-o", "link").stdout)
    assert not Path(state.state_dir).exists()
    assert cli.main(["status", "--name", state.name, "--state-dir", state.state_dir]) == 3
