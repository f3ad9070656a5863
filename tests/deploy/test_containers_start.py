"""Every container of deploy/daemonset.yaml started from its actual command line (root).

No kubelet or container engine here, so the test plays both, as closely as one process tree can:
- the pod's network (hostNetwork: the node's) is a fresh network namespace with the node's pieces
  the manifests expect: the pod IP on loopback, the ARP proxy's interface (from the ConfigMap), a
  P4Runtime device at the ConfigMap's target address (`offload-switch`) and an API server
  (the fake one of tests/cluster, HTTPS with a bearer token);
- each command line is the manifest's, resolved by tests/deploy/podspec.py (env, downward API
  values, ConfigMap keys; volumes at directories of the test);
- each container gets only its declared environment plus what the kubelet adds
  (KUBERNETES_SERVICE_HOST/PORT, PATH), its service account token and CA mounted at the standard
  path (a private mount namespace), and only the capabilities its securityContext adds, without
  the right to gain more (`setpriv`: bounding set, no_new_privs);
- init containers must exit 0 in order; the daemons must answer their readiness and liveness
  probes, as the kubelet sends them, at the pod IP.

Not covered without a container engine: the image's file system (tests/deploy/test_deploy.py
builds its wheel, test_wheel.py runs it), runAsUser (the venv lives under /root here, which a
non-root user cannot read), readOnlyRootFilesystem and the seccomp profile.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from k8s_offload.lab.core import ns_http_get
from tests.cni.conftest import require_reference_plugins
from tests.netns_util import Namespaces, ip, links, ns_exec
from tests.pki import SERVER_EXT, make_ca, make_leaf

from .podspec import Resolved, one, resolve

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
POD_IP = "192.0.2.10"
POD_CIDRS = ["10.244.7.0/24", "fd00:10:244:7::/64"]  # node-a's spec.podCIDRs in the API server
# Files of the image the command lines name (tests/deploy/test_deploy.py checks the Dockerfile
# puts them there); a fixture gives each a file of the test.
SHIM_IN_IMAGE = "/usr/local/libexec/k8s-offload/offload-cni"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.deploy-test-token"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Mount the service account where the kubelet does, drop to the container's capabilities, run it.
# /run (= /var/run) is replaced by a tmpfs in a private mount namespace: nothing outside changes.
CONTAINER = """set -e
sa=$1; caps=$2; shift 2
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
mount --bind -o ro "$sa" /run/secrets/kubernetes.io/serviceaccount
exec setpriv --no-new-privs --inh-caps=-all --bounding-set="$caps" -- "$@"
"""

API_SERVER = """
import sys, yaml, pathlib
from tests.cluster.apiserver import FakeApiServer
from tests.cluster.harness import shop_objects
srv = FakeApiServer(tls=(sys.argv[1], sys.argv[2]), token=sys.argv[3]).start()
for obj in shop_objects():
    srv.apply(obj)
srv.apply({"kind": "Node", "metadata": {"name": "node-a"}, "spec": {"podCIDRs": sys.argv[4:]}})
print(srv.port, flush=True)
sys.stdin.read()
srv.stop()
"""


@dataclass
class Node:
    ns: str
    root: Path
    sa: Path
    api_port: int
    containers: dict[str, Resolved]
    procs: list[subprocess.Popen[bytes]]
    namespaces: Namespaces
    image: dict[str, Path]  # path in the image -> the test's file
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def _capabilities(container: dict[str, object]) -> str:
    """setpriv's bounding set for the securityContext: drop all, add back what is added."""
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}  # type: ignore[union-attr]
    assert caps.get("drop") == ["ALL"]
    return ",".join(["-all", *(f"+{c.lower()}" for c in caps.get("add", []))])


def _argv(node: Node, c: Resolved) -> list[str]:
    wrap = ["ip", "netns", "exec", node.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c"]
    argv = c.argv
    for path, file in node.image.items():
        argv = [a.replace(path, str(file)) for a in argv]
    return [*wrap, CONTAINER, "container", str(node.sa), _capabilities(c.container), *argv]


def _env(node: Node, c: Resolved) -> dict[str, str]:
    """The container's declared variables and the kubelet's own, nothing of this test process."""
    path = f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    kubelet = {"PATH": path, "HOSTNAME": "node-a", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(node.api_port)}  # fmt: skip
    return {**kubelet, **c.env}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, cni_shim: Path) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("deploy-node")
    pki = root / "pki"
    pki.mkdir()
    make_ca(pki, "cluster-ca")
    make_leaf(pki, "apiserver", "cluster-ca", SERVER_EXT)
    sa = root / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(TOKEN)
    shutil.copy(pki / "cluster-ca.pem", sa / "ca.crt")
    (sa / "namespace").write_text("k8s-offload")

    namespaces = Namespaces()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ns = namespaces.add("node")
        ip("-n", ns, "addr", "add", f"{POD_IP}/32", "dev", "lo")
        proxy_if = one("ConfigMap")["data"]["arpProxyInterface"]
        ip("-n", ns, "link", "add", proxy_if, "type", "veth", "peer", "name", "dp1")
        for ifname in (proxy_if, "dp1"):
            ip("-n", ns, "link", "set", ifname, "up")
        api = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", API_SERVER,
             str(pki / "apiserver.pem"), str(pki / "apiserver.key"), TOKEN, *POD_CIDRS],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        procs.append(api)
        assert api.stdout is not None
        api_port = int(api.stdout.readline())
        target = one("ConfigMap")["data"]["target"]
        log = (root / "switch.log").open("wb")
        switch = [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "k8s_offload.target.cli",
            "--listen",
            target,
        ]
        procs.append(subprocess.Popen(switch, stdout=log, stderr=subprocess.STDOUT))
        pod_values = {"spec.nodeName": "node-a", "status.podIP": POD_IP}
        containers = {c.name: c for c in resolve(pod_values, root)}
        yield Node(ns, root, sa, api_port, containers, procs, namespaces, {SHIM_IN_IMAGE: cni_shim})
    finally:
        for p in reversed(procs):
            if p.stdin is not None:
                p.stdin.close()
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        namespaces.cleanup()


def _run_init(node: Node, name: str) -> subprocess.CompletedProcess[str]:
    c = node.containers[name]
    run = subprocess.run(_argv(node, c), env=_env(node, c), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{name}: {' '.join(c.argv)}\n{run.stdout}\n{run.stderr}"
    return run


@pytest.fixture(scope="module")
def seeded(node: Node) -> Node:
    _run_init(node, "seed-node-facts")
    return node


def test_seed_node_facts_writes_the_template_once(seeded: Node) -> None:
    facts_dir = seeded.containers["seed-node-facts"].mounts["/host-etc"]
    facts = load_node_facts(facts_dir / "node.yaml")
    assert facts.node_name == "node-a" and facts.pods == ()
    # A complete file (the CNI plugin has recorded pods in it) is kept as it is.
    doc = yaml.safe_load((facts_dir / "node.yaml").read_text())
    doc["nodeIPs"] = ["192.0.2.10"]
    text = yaml.safe_dump(doc, sort_keys=False)
    (facts_dir / "node.yaml").write_text(text)
    _run_init(seeded, "seed-node-facts")
    assert (facts_dir / "node.yaml").read_text() == text


def test_install_cni_puts_the_shim_and_this_nodes_conflist_on_the_host(seeded: Node) -> None:
    c = seeded.containers["install-cni"]
    _run_init(seeded, "install-cni")
    bin_dir, conf_dir = c.mounts["/host/opt/cni/bin"], c.mounts["/host/etc/cni/net.d"]
    assert (bin_dir / "offload-cni").read_bytes() == seeded.image[SHIM_IN_IMAGE].read_bytes()
    assert os.access(bin_dir / "offload-cni", os.X_OK)
    conflist = json.loads((conf_dir / "10-offload.conflist").read_text())
    template = json.loads(one("ConfigMap")["data"]["10-offload.conflist"])
    (ours,) = [p for p in conflist["plugins"] if p["type"] == "offload-cni"]
    assert ours["ipam"]["ranges"] == [[{"subnet": cidr}] for cidr in POD_CIDRS]  # node-a's own
    ours["ipam"]["ranges"] = template["plugins"][0]["ipam"]["ranges"]
    assert conflist == template


def _serve_probes(node: Node, name: str, timeout: float = 90.0) -> None:
    """Start a daemon container and wait, as the kubelet does, for its readiness probe to pass;
    then its liveness probe must pass too. A container that exits fails at once, with its log."""
    c = node.containers[name]
    log_path = node.root / f"{name}.log"
    proc = node.started.get(name)
    if proc is None:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(_argv(node, c), env=_env(node, c), stdout=log, stderr=subprocess.STDOUT)
        node.procs.append(proc)
        node.started[name] = proc
    deadline = time.monotonic() + timeout
    probes = {k: c.container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    for kind, probe in probes.items():
        url = f"http://{POD_IP}:{c.port(probe['port'])}{probe['path']}"
        while True:
            assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
            code, _ = ns_http_get(node.ns, url, timeout=2.0)
            if code == 200:
                break
            assert time.monotonic() < deadline, (
                f"{name}: {kind} {url} never 200:\n{log_path.read_text()[-3000:]}"
            )
            time.sleep(0.3)


def test_loader_becomes_ready_against_the_api_server_and_the_device(seeded: Node) -> None:
    """Readiness: the first full list compiled and on the device (the ConfigMap's target)."""
    _serve_probes(seeded, "loader")


def test_arp_proxy_becomes_ready_with_only_net_raw(seeded: Node) -> None:
    _serve_probes(seeded, "arp-proxy")


def test_cni_server_becomes_ready_with_net_admin_and_sys_admin(seeded: Node) -> None:
    _serve_probes(seeded, "cni")


@pytest.mark.parametrize("name", ["loader", "arp-proxy", "cni"])
def test_daemons_log_one_json_object_per_line(seeded: Node, name: str) -> None:
    """Each daemon's command line asks for --log-format json (a cluster's log pipeline ingests it
    without parsing rules): once ready, everything the container wrote is JSON objects with the
    fields docs/arp-proxy.md lists, at least the line saying it started."""
    _serve_probes(seeded, name)
    assert "--log-format=json" in seeded.containers[name].argv
    lines = (seeded.root / f"{name}.log").read_text().splitlines()
    assert lines, f"{name} logged nothing"
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= record.keys(), line


def test_a_pod_is_plugged_through_the_shim_the_init_container_installed(seeded: Node) -> None:
    """What the kubelet's runtime does for a pod on this node: it finds `offload-cni` in the
    plugin directory install-cni filled, runs it with CNI_* only (and a PATH whose python is not
    ours), host-local from CNI_PATH; the `cni` container serves it, in its own mount namespace
    where /run/netns is another tmpfs (so the pod's namespace reaches it as a descriptor). The pod
    gets an address from node-a's own pod CIDR, and DEL returns everything."""
    require_reference_plugins()
    _run_init(seeded, "install-cni")
    _serve_probes(seeded, "cni")
    install, cni = seeded.containers["install-cni"], seeded.containers["cni"]
    bin_dir, conf_dir = install.mounts["/host/opt/cni/bin"], install.mounts["/host/etc/cni/net.d"]
    conflist = json.loads((conf_dir / "10-offload.conflist").read_text())
    (plugin,) = conflist["plugins"]
    port = plugin["pool"][0]["interface"]
    ip("-n", seeded.ns, "link", "add", port, "type", "veth", "peer", "name", "dp10")
    ip("-n", seeded.ns, "link", "set", port, "up")
    pod = seeded.namespaces.add("pod")
    request = {**plugin, "cniVersion": conflist["cniVersion"], "name": conflist["name"]}
    request["ipam"]["dataDir"] = str(seeded.root / "ipam")  # host-local's store: not this machine's
    # The server opens nodeFacts in its container, where the node-facts volume is mounted at
    # /etc/k8s-offload; here that volume is a directory of the test, so the path is rewritten as
    # podspec rewrites mount paths in command lines (else this machine's /etc would be written).
    facts_dir = cni.mounts["/etc/k8s-offload"]
    assert plugin["nodeFacts"] == "/etc/k8s-offload/node.yaml"
    assert facts_dir == seeded.containers["loader"].mounts["/etc/k8s-offload"]  # the loader's --node
    request["nodeFacts"] = str(facts_dir / "node.yaml")
    foreign = seeded.root / "foreign-bin"
    foreign.mkdir(exist_ok=True)
    (foreign / "python3").write_text("#!/bin/sh\nexit 99\n")
    (foreign / "python3").chmod(0o755)
    env = {
        "CNI_CONTAINERID": "deploy1",
        "CNI_NETNS": f"/run/netns/{pod}",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web",
        "CNI_PATH": f"{bin_dir}:/usr/lib/cni",
        "PATH": str(foreign),
        "OFFLOAD_CNI_SOCKET": str(cni.mounts["/run/k8s-offload"] / "cni.sock"),
    }

    def cni_call(command: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shutil.which("ip") or "ip", "netns", "exec", seeded.ns, str(bin_dir / "offload-cni")],
            input=json.dumps(doc), env={**env, "CNI_COMMAND": command},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    add = cni_call("ADD", request)
    assert add.returncode == 0, add.stdout + add.stderr
    result = json.loads(add.stdout)
    assert result["interfaces"][0]["sandbox"] == env["CNI_NETNS"]
    addresses = [ipaddress.ip_interface(i["address"]) for i in result["ips"]]
    assert [a.ip in ipaddress.ip_network(c) for a, c in zip(addresses, POD_CIDRS, strict=True)] == [
        True,
        True,
    ]
    pod_addrs = {a["local"] for a in links(pod)["eth0"]["addr_info"]}
    assert {str(a.ip) for a in addresses} <= pod_addrs
    facts = load_node_facts(facts_dir / "node.yaml")
    assert [(p.namespace, p.name) for p in facts.pods] == [("shop", "web")]
    assert "plugged" in add.stderr  # the server's log line, relayed to the runtime

    delete = cni_call("DEL", {**request, "prevResult": result})
    assert delete.returncode == 0, delete.stdout + delete.stderr
    assert port in links(seeded.ns)
    assert load_node_facts(facts_dir / "node.yaml").pods == ()


def test_a_missing_argument_is_caught(seeded: Node) -> None:
    """The harness can fail: the loader's command line without --in-cluster has neither
    manifests nor a cluster to follow, and the container exits 2 at once."""
    c = seeded.containers["loader"]
    broken = Resolved(c.name, [a for a in c.argv if a != "--in-cluster"], c.env, c.mounts, c.container)
    run = subprocess.run(
        _argv(seeded, broken), env=_env(seeded, broken), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "--in-cluster" in run.stderr


def test_device_is_reachable_inside_the_pod_network(seeded: Node) -> None:
    """Sanity of the harness: the target from the ConfigMap listens in the pod's namespace."""
    host, _, port = one("ConfigMap")["data"]["target"].rpartition(":")
    code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=5)"
    run = ns_exec(seeded.ns, sys.executable, "-c", code, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("add", [[], ["NET_RAW"]])
def test_containers_get_only_the_capabilities_they_add(seeded: Node, add: list[str]) -> None:
    """Sanity of the harness: a raw packet socket needs CAP_NET_RAW, so it opens only when the
    securityContext adds it, although the process runs as root."""
    code = "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)"
    container = {"capabilities": {"drop": ["ALL"], "add": add}}
    c = Resolved("probe", [sys.executable, "-c", code], {}, {}, {"securityContext": container})
    run = subprocess.run(_argv(seeded, c), env=_env(seeded, c), capture_output=True, text=True, timeout=60)
    assert (run.returncode == 0) == bool(add), run.stderr
    if not add:
        assert "PermissionError" in run.stderr
