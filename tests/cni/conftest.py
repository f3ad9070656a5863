"""Fixtures for the CNI tests that need root: a "node" namespace with veth device ports.

Per test: namespace ``node`` plays the host (the plugin runs inside it, so its "host namespace" is
``node``), namespace ``dp`` holds the datapath side of every device port, and each pod gets its
own namespace. Device ports are veth pairs p4portN (node) <-> dpN (dp). All names carry the
fixture's random prefix, so parallel runs cannot collide.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cni.runtime import Runtime
from tests.netns_util import REPO, Namespaces, ip, links, veth

REFERENCE_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
FAULTY = REPO / "tests" / "cni" / "faulty.py"

# The operator-written part of a node facts file; the plugin maintains `pods`.
FACTS_HEAD = """\
apiVersion: offload.k8s-offload.dev/v1alpha1
kind: NodeFacts
nodeName: node-a
nodeIPs: [192.168.10.11]
gateway: {ipv4: 169.254.1.1, ipv6: "fe80::1", mac: "02:00:00:00:00:01"}
ports: {arpProxy: 1, host: 2, uplink: 3}
"""
FACTS = FACTS_HEAD + "pods: []\n"


def require_reference_plugins() -> None:
    if not (REFERENCE_PLUGINS / "host-local").is_file():
        pytest.skip("the reference CNI plugins are missing: apt-get install containernetworking-plugins")


@dataclass
class Node:
    ns: Namespaces
    node: str
    dp: str
    facts: Path
    ports: list[tuple[str, int]]
    tmp: Path
    shim: Path | None = None  # set: offload-cni is the static shim in front of `offload-cni serve`
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

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
        extra_env: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """Invoke the plugin alone inside the node namespace the way a runtime would."""
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{pod}" if pod else "",
            "CNI_IFNAME": ifname,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name};IP={ip_arg}",
            "CNI_PATH": "/opt/cni/bin",
            **(extra_env or {}),
        }
        proc = subprocess.run(
            ["ip", "netns", "exec", self.node, sys.executable, "-m", "k8s_offload.cni"],
            input=json.dumps(conf or self.conf()),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def pods_in_facts(self) -> list[dict[str, Any]]:
        return list(yaml.safe_load(self.facts.read_text())["pods"] or [])

    def bin_dir(self) -> Path:
        """A plugin directory holding offload-cni: a launcher for this checkout's interpreter, or
        with `shim` the static shim as `offload-cni install --shim` puts it on a node."""
        path = self.tmp / "bin"
        if not path.is_dir():
            path.mkdir()
            if self.shim is not None:
                run = subprocess.run(
                    [sys.executable, "-m", "k8s_offload.cni", "install", "--shim", str(self.shim),
                     "--bin-dir", str(path), "--conf-dir", str(self.tmp)],
                    capture_output=True, text=True, cwd=REPO, timeout=60,
                )  # fmt: skip
                assert run.returncode == 0, run.stderr
            else:
                script = path / "offload-cni"
                script.write_text(f'#!/bin/sh\nexec {sys.executable} -m k8s_offload.cni "$@"\n')
                script.chmod(0o755)
        return path

    @property
    def socket(self) -> Path:
        return self.tmp / "cni.sock"

    def serve(self) -> None:
        """Run `offload-cni serve` in the node namespace (the DaemonSet's `cni` container)."""
        log = (self.tmp / "cni-server.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", self.node, sys.executable, "-m", "k8s_offload.cni", "serve",
                 "--socket", str(self.socket)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.procs[-1].poll() is None, (self.tmp / "cni-server.log").read_text()
            assert time.monotonic() < deadline, "offload-cni serve did not create its socket"
            time.sleep(0.05)

    def runtime(self, plugins: list[dict[str, Any]], version: str = "1.0.0", **kw: Any) -> Runtime:
        conflist = {"cniVersion": version, "name": f"offload-{self.ns.prefix}", "plugins": plugins}
        if self.shim is not None:
            # As a kubelet's runtime runs it: only CNI_* (added per call), the socket, and a PATH
            # whose python3 is not ours (it fails loudly if anything runs it).
            kw.setdefault("extra_env", {})
            kw["extra_env"].update(
                {"PATH": str(self.foreign_python()), "OFFLOAD_CNI_SOCKET": str(self.socket)}
            )
        return Runtime(conflist, [self.bin_dir(), REFERENCE_PLUGINS], self.node, **kw)

    def foreign_python(self) -> Path:
        """A directory with a `python3` and `python` that are not the package's and exit 99."""
        path = self.tmp / "foreign-bin"
        if not path.is_dir():
            path.mkdir()
            for name in ("python3", "python"):
                (path / name).write_text("#!/bin/sh\necho 'a python on PATH was run' >&2\nexit 99\n")
                (path / name).chmod(0o755)
        return path

    def host_local(self) -> dict[str, Any]:
        """ipam section delegating to the reference host-local plugin, its store in this test's tmp."""
        return {
            "type": "host-local",
            "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10::/64"}]],
            "dataDir": str(self.tmp / "ipam"),
        }

    def reservations(self) -> dict[str, str]:
        """host-local's store: reserved address -> "containerID\\nifname"."""
        out = {}
        for path in (self.tmp / "ipam").glob("*/*"):
            if path.name != "lock" and not path.name.startswith("last_reserved_ip"):
                out[path.name] = path.read_text()
        return out

    def port_state(self, name: str) -> tuple[int, bool, str | None] | None:
        """(MTU, up, alias) of a pool interface in the node namespace, or None if it is not there."""
        link = links(self.node).get(name)
        if link is None:
            return None
        return link["mtu"], "UP" in link["flags"], link.get("ifalias")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    ns = Namespaces()
    facts = tmp_path / "node.yaml"
    facts.write_text(FACTS)
    ports = [(f"p4port{n}", n) for n in (10, 11, 12)]
    node = Node(ns, f"{ns.prefix}-node", f"{ns.prefix}-dp", facts, ports, tmp_path)
    try:
        assert (ns.add("node"), ns.add("dp")) == (node.node, node.dp)
        for name, n in ports:
            veth(node.node, name, node.dp, f"dp{n}")
            ip("-n", node.node, "link", "set", name, "up")
            ip("-n", node.dp, "link", "set", f"dp{n}", "up")
        yield node
    finally:
        for proc in node.procs:  # the CNI server, when a test started one
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ns.cleanup()


def faulty_prefix() -> list[str]:
    return [sys.executable, str(FAULTY)]
