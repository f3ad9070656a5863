"""Each node's own pod range: `offload-cni install --node-name` fills the conflist's usePodCidr
placeholders from the Node's spec.podCIDRs, read with the pod's service account (HTTPS, bearer
token) from the loopback API server, as the install-cni init container does on every node.

Without this, the ConfigMap's one host-local range would be every node's, and pods on two nodes
would get the same address (issue 18)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.cluster.watch import api_client
from k8s_offload.cni import install
from k8s_offload.cni.podcidr import RBAC
from tests.deploy.podspec import one

from .apiserver import FakeApiServer

TOKEN = "eyJhbGciOiJSUzI1NiJ9.install-cni-token"
NODES = {
    "node-a": ["10.244.1.0/24", "fd00:10:244:1::/64"],
    "node-b": ["10.244.2.0/24", "fd00:10:244:2::/64"],
    "node-v4": ["10.244.3.0/24"],
    "node-new": [],  # registered, no range assigned yet
}


def node_object(name: str, cidrs: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDRs": cidrs, "podCIDR": cidrs[0]} if cidrs else {}
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def server(pki: Path) -> Iterator[FakeApiServer]:
    srv = FakeApiServer(tls=(str(pki / "apiserver.pem"), str(pki / "apiserver.key")), token=TOKEN).start()
    for name, cidrs in NODES.items():
        srv.apply(node_object(name, cidrs))
    yield srv
    srv.stop()


def clients(server: FakeApiServer, pki: Path, tmp_path: Path, token: str = TOKEN) -> Callable[[], Any]:
    """The in-cluster client of the init container: its service account, the service address."""
    sa = tmp_path / "sa"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text(token)
    (sa / "ca.crt").write_bytes((pki / "cluster-ca.pem").read_bytes())
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
    return lambda: api_client(service_account_dir=str(sa), environ=environ)


def template(tmp_path: Path) -> Path:
    """The ConfigMap's conflist, as the init container sees it in its ConfigMap volume."""
    path = tmp_path / "10-offload.conflist"
    path.write_text(one("ConfigMap")["data"]["10-offload.conflist"])
    return path


def ranges(conflist: dict[str, Any]) -> list[list[dict[str, str]]]:
    (plugin,) = [p for p in conflist["plugins"] if p["type"] == "offload-cni"]
    return list(plugin["ipam"]["ranges"])


def run_install(
    node: str | None, tmp_path: Path, factory: Callable[[], Any] | None, where: str = "host"
) -> tuple[Path, list[str]]:
    """install-cni for `node` into a fresh host directory: (its net.d, the output lines)."""
    host = tmp_path / where
    (host / "bin").mkdir(parents=True)
    (host / "net.d").mkdir()
    plugin = tmp_path / "offload-cni"  # stands for the image's shim
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    lines = install.install(host / "bin", host / "net.d", template(tmp_path), plugin, node, factory)
    return host / "net.d", lines


def test_the_configmap_asks_for_each_nodes_range() -> None:
    conflist = json.loads(one("ConfigMap")["data"]["10-offload.conflist"])
    assert ranges(conflist) == [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]]
    args = {c["name"]: c for c in one("DaemonSet")["spec"]["template"]["spec"]["initContainers"]}
    assert "--node-name=$(NODE_NAME)" in args["install-cni"]["args"]


def test_two_nodes_get_their_own_disjoint_ranges(server: FakeApiServer, pki: Path, tmp_path: Path) -> None:
    factory = clients(server, pki, tmp_path)
    installed = {}
    for name in ("node-a", "node-b"):
        conf_dir, _ = run_install(name, tmp_path, factory, where=name)
        installed[name] = json.loads((conf_dir / "10-offload.conflist").read_text())
    for name, conflist in installed.items():
        assert ranges(conflist) == [[{"subnet": NODES[name][0]}], [{"subnet": NODES[name][1]}]]
    a, b = ([ipaddress.ip_network(r[0]["subnet"]) for r in ranges(c)] for c in installed.values())
    assert not any(x.overlaps(y) for x in a for y in b if x.version == y.version)
    # Nothing else of the conflist changed.
    template_doc = json.loads(one("ConfigMap")["data"]["10-offload.conflist"])
    for doc in (template_doc, *installed.values()):
        for plugin in doc["plugins"]:
            plugin.get("ipam", {}).pop("ranges", None)
    assert all(doc == template_doc for doc in installed.values())
    # One GET of the node per install, with the token: exactly what RBAC grants (get on nodes).
    want = [("Node", False, f"bearer {TOKEN}")] * 2
    assert [(r.kind, r.watch, r.authorization) for r in server.requests] == want
    assert RBAC == (("", "nodes", "get"),)


def test_a_single_stack_node_keeps_only_its_family(server: FakeApiServer, pki: Path, tmp_path: Path) -> None:
    conf_dir, lines = run_install("node-v4", tmp_path, clients(server, pki, tmp_path))
    assert lines[0] == "note: node node-v4 has no IPv6 pod CIDR: dropping the usePodCidrIPv6 range"
    conflist = json.loads((conf_dir / "10-offload.conflist").read_text())
    assert ranges(conflist) == [[{"subnet": "10.244.3.0/24"}]]


@pytest.mark.parametrize(
    ("node", "token", "message"),
    [
        ("node-new", TOKEN, "node node-new: no pod CIDR for any range"),
        ("node-gone", TOKEN, "cannot read node node-gone: HTTP 404 (no such node)"),
        ("node-a", "stolen", "cannot read node node-a: HTTP 401"),
    ],
)
def test_no_range_for_the_node_is_exit_1_and_writes_nothing(
    node: str, token: str, message: str, server: FakeApiServer, pki: Path, tmp_path: Path
) -> None:
    """The init container fails and the kubelet retries it: a node whose range is not assigned
    yet gets it on a later try. Nothing is written meanwhile, not even the plugin."""
    with pytest.raises(install.InstallError, match=re.escape(message)) as err:
        run_install(node, tmp_path, clients(server, pki, tmp_path, token))
    assert err.value.code == install.EXIT_IO == 1
    host = tmp_path / "host"
    assert list((host / "bin").iterdir()) == [] and list((host / "net.d").iterdir()) == []


def test_placeholders_without_a_node_name_are_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(install.InstallError, match="give --node-name") as err:
        run_install(None, tmp_path, None)
    assert err.value.code == 2 and list((tmp_path / "host" / "net.d").iterdir()) == []


def test_kubeconfig_and_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`offload-cni install --node-name N --kubeconfig F` (by hand on a node), through main()."""
    plain = FakeApiServer().start()
    try:
        plain.apply(node_object("node-b", NODES["node-b"]))
        for d in ("bin", "net.d"):
            (tmp_path / d).mkdir()
        (tmp_path / "shim").write_text("#!/bin/sh\n")
        (tmp_path / "shim").chmod(0o755)
        argv = ["--bin-dir", str(tmp_path / "bin"), "--conf-dir", str(tmp_path / "net.d"),
                "--shim", str(tmp_path / "shim"), "--conflist", str(template(tmp_path)),
                "--node-name", "node-b", "--kubeconfig", str(plain.kubeconfig(tmp_path / "kc"))]  # fmt: skip
        assert install.main(argv) == 0, capsys.readouterr().err
    finally:
        plain.stop()
    conflist = json.loads((tmp_path / "net.d" / "10-offload.conflist").read_text())
    assert ranges(conflist)[0] == [{"subnet": "10.244.2.0/24"}]
