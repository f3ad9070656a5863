"""Build, inspect and tear down a lab: local pods in network namespaces, forwarded by the target.

Topology of a lab named NAME with one node (everything lives in namespaces it creates):

* `NAME-node` plays the node: it holds the device port interfaces (veth pairs `p4pN` <-> `dpN`,
  N the device port), the ARP proxy's port (`arpp` <-> `dp1`), the host port (`host0` <-> `dp2`:
  `host0` carries the node's addresses, the node's own network stack stands behind it), the
  embedded target with its AF_PACKET sockets on the `dp*` ends (`offload-switch --port`), the ARP
  proxy on `arpp`, and the loader; P4Runtime and the loader's metrics listen on that namespace's
  loopback.
* `NAME-<namespace>-<pod>` per local pod: the CNI plugin (run in `NAME-node` as a runtime runs
  it) moves a `p4pN` in as `eth0` with the pod's addresses and routes; a `k8s_offload.lab.podserver`
  serves the pod's TCP container ports.

With two nodes (`--nodes 2`), the second node is `NAME-node2`, built the same way from its own
node facts file, and the two devices' uplink ports are one veth pair (`dpU` in each node
namespace, U each node's uplink port): a frame one pipeline sends to its uplink enters the other's
on its uplink. Each node has its own switch, ARP proxy, CNI configuration, node facts file and
loader; both loaders compile the same manifests, each for its own node.

The state directory holds the lab's record (`lab.json`), its copy of the manifests (the loaders
watch it: edit it to change the cluster), per node (`nodes/NODE/`) the node facts file the CNI
plugin maintains, the CNI configuration and the proxy's counters, and the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k8s_offload.resources import EXAMPLES

DEFAULT_CLUSTER = (EXAMPLES / "lab" / "cluster").resolve()
STATE_ROOT = Path("/run/offload-lab")
P4RT_ADDRESS = "127.0.0.1:9559"
METRICS_ADDRESS = "127.0.0.1:9464"
FIRST_POD_PORT = 10
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class LabError(Exception):
    """Something the user can act on; `offload-lab` prints it and exits 1."""


@dataclass
class LabPod:
    namespace: str
    name: str
    ips: list[str]
    tcp_ports: list[int]
    netns: str = ""
    container_id: str = ""
    host_interface: str = ""
    device_port: int = 0
    node: str = ""  # the Kubernetes node (spec.nodeName) whose device it is plugged into

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class LabProcess:
    role: str
    pid: int
    log: str
    module: str  # checked against /proc/PID/cmdline before any signal is sent
    node: str = ""  # the node it serves ("" for pod servers)


@dataclass
class LabNode:
    """One Kubernetes node of the lab: its namespace, device and files."""

    name: str  # nodeName of its facts
    netns: str
    dir: str  # node.yaml (maintained by the CNI plugin), cni.json, arp-proxy.json
    facts_src: str  # the node facts file it was built from
    uplink_peer: str = ""  # the node whose uplink port is linked to this one's


@dataclass
class LabState:
    name: str
    state_dir: str
    cluster_src: str
    nodes: list[LabNode] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    pods: list[LabPod] = field(default_factory=list)
    processes: list[LabProcess] = field(default_factory=list)
    plugged: list[str] = field(default_factory=list)  # container ids added through the CNI plugin
    ready: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        data = dict(data)
        nodes = [LabNode(**n) for n in data.pop("nodes", [])]
        pods = [LabPod(**p) for p in data.pop("pods", [])]
        procs = [LabProcess(**p) for p in data.pop("processes", [])]
        return cls(**data, nodes=nodes, pods=pods, processes=procs)

    @property
    def node_ns(self) -> str:
        """The first node's namespace (the only one of a one-node lab)."""
        return self.nodes[0].netns

    def node(self, name: str) -> LabNode:
        found = [n for n in self.nodes if name in (n.name, n.netns)]
        if len(found) != 1:
            raise LabError(f"no lab node named {name!r}")
        return found[0]

    def pod(self, key: str) -> LabPod:
        """A pod by `namespace/name` or by bare name when that is unique."""
        found = [p for p in self.pods if key in (p.key, p.name)]
        if len(found) != 1:
            raise LabError(f"no single lab pod named {key!r}")
        return found[0]


# ---- helpers --------------------------------------------------------------------------------------


def run(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def ns_run(ns: str, *cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, *cmd, check=check, **kw)


def child_env() -> dict[str, str]:
    """This interpreter's environment, with the directory this package was imported from first on
    PYTHONPATH, so `python -m` children import the same code (an installed package, or a checkout)."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH", "")]))
    return env


def _script(name: str, module: str) -> list[str]:
    """A console script next to this interpreter (a venv's bin), on PATH, or `python -m`."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def netns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_alive(proc: LabProcess) -> bool:
    """Running (not a zombie) and still the program we started under that pid."""
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        _reap(proc.pid)
        return False
    return proc.module in _cmdline(proc.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def ns_http_get(ns: str, url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET from inside `ns`; status 0 when nothing answered."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen(sys.argv[1], timeout={timeout})\n"
        "    print(r.status); print(r.read().decode(), end='')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
        "except OSError:\n"
        "    print(0)\n"
    )
    proc = ns_run(ns, sys.executable, "-c", code, url, check=False, timeout=timeout + 10)
    first, _, rest = proc.stdout.partition("\n")
    return (int(first) if first.strip().isdigit() else 0), rest


def load_cluster(cluster: Path, node_file: Path) -> tuple[dict[str, Any], list[LabPod]]:
    """The node facts and the Pods scheduled on that node that have addresses, sorted by key."""
    try:
        facts = yaml.safe_load(node_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise LabError(f"cannot read node facts {node_file}: {err}") from err
    if not isinstance(facts, dict) or "nodeName" not in facts or "gateway" not in facts:
        raise LabError(f"{node_file}: not a node facts file (docs/node-facts.md)")
    files = sorted(p for p in cluster.rglob("*") if p.suffix in MANIFEST_SUFFIXES) if cluster.is_dir() else []
    if not files:
        raise LabError(f"no manifests under {cluster}")
    pods: list[LabPod] = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "Pod":
                continue
            meta, spec, status = doc.get("metadata", {}), doc.get("spec", {}), doc.get("status", {}) or {}
            if spec.get("nodeName") != facts["nodeName"] or spec.get("hostNetwork"):
                continue
            ips = [i["ip"] for i in status.get("podIPs") or []] or (
                [status["podIP"]] if status.get("podIP") else []
            )
            if not ips:
                continue
            tcp = {
                int(p["containerPort"])
                for c in spec.get("containers", [])
                for p in c.get("ports", []) or []
                if p.get("protocol", "TCP") == "TCP"
            }
            pod = LabPod(
                meta.get("namespace", "default"), meta["name"], ips, sorted(tcp), node=facts["nodeName"]
            )
            pods.append(pod)
    pods.sort(key=lambda p: p.key)
    return facts, pods


def node_files(cluster: Path, nodes: int) -> list[Path]:
    """The node facts files of a lab of `nodes` nodes: `node.yaml` next to the cluster directory,
    then `node-*.yaml` there in name order."""
    here = cluster.parent
    found = [here / "node.yaml", *sorted(here.glob("node-*.yaml"))]
    found = [f for f in found if f.is_file()]
    if len(found) < nodes:
        raise LabError(f"{nodes} nodes need {nodes} node facts files next to {cluster}, found {len(found)}")
    return found[:nodes]


# ---- the lab --------------------------------------------------------------------------------------


class Lab:
    def __init__(self, name: str = "lab", state_dir: Path | None = None) -> None:
        if not name or len(name) > 32 or not all(c.isalnum() or c == "-" for c in name):
            raise LabError(f"bad lab name {name!r}: letters, digits and '-', at most 32")
        self.name = name
        self.dir = (state_dir or STATE_ROOT / name).resolve()
        self.state_file = self.dir / "lab.json"

    # ---- state ------------------------------------------------------------------------------------

    def load(self) -> LabState | None:
        try:
            return LabState.from_json(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None

    def _save(self, state: LabState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
        tmp.replace(self.state_file)

    # ---- up ---------------------------------------------------------------------------------------

    def up(
        self,
        cluster: Path,
        node_file: Path | Sequence[Path] | None = None,
        timeout: float = 60.0,
        nodes: int | None = None,
    ) -> LabState:
        """Build the lab. `node_file`: one node facts file per node (default: `node_files`);
        `nodes`: how many (1 or 2; default as many files as given, else 1)."""
        if self.state_file.exists():
            raise LabError(f"lab {self.name} is already up (state in {self.dir}); run down first")
        files = [node_file] if isinstance(node_file, Path) else list(node_file or [])
        count = nodes if nodes is not None else max(1, len(files))
        if count not in (1, 2):
            raise LabError(f"--nodes {count}: a lab has one or two nodes (two uplinks make one link)")
        files = files or node_files(cluster, count)
        if len(files) != count:
            raise LabError(f"{count} nodes need {count} node facts files, got {len(files)}")
        loaded = [load_cluster(cluster, f) for f in files]
        names = [facts["nodeName"] for facts, _ in loaded]
        if len(set(names)) != len(names):
            raise LabError(f"two node facts files name the same node {names[0]!r}")
        for facts, pods in loaded:
            if not pods:
                raise LabError(f"no pod of {cluster} runs on node {facts['nodeName']} with an address")
        self.dir.mkdir(parents=True, exist_ok=True)
        state = LabState(self.name, str(self.dir), str(cluster.resolve()))
        for i, (facts, _) in enumerate(loaded):
            netns = f"{self.name}-node" + (str(i + 1) if i else "")
            node_dir = self.dir / "nodes" / facts["nodeName"]
            state.nodes.append(LabNode(facts["nodeName"], netns, str(node_dir), str(files[i].resolve())))
        if count == 2:
            state.nodes[0].uplink_peer, state.nodes[1].uplink_peer = names[1], names[0]
        self._save(state)
        try:
            self._build(state, cluster, loaded, timeout)
        except LabError as err:
            tails = self._log_tails(state)
            self.down()
            raise LabError(f"{err}{tails}") from err
        except BaseException:
            self.down()
            raise
        return state

    def _log_tails(self, state: LabState, lines: int = 5) -> str:
        """The last lines of every process log, for an error that tears the lab down with them."""
        out = []
        for p in state.processes:
            try:
                text = Path(p.log).read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"\n--- {p.role} ---\n" + "\n".join(text))
        return "".join(out)

    def _build(
        self,
        state: LabState,
        cluster: Path,
        loaded: list[tuple[dict[str, Any], list[LabPod]]],
        timeout: float,
    ) -> None:
        shutil.copytree(cluster, self.dir / "cluster")
        (self.dir / "logs").mkdir(exist_ok=True)
        ports: dict[str, list[int]] = {}
        for node, (facts, pods) in zip(state.nodes, loaded, strict=True):
            ports[node.name] = self._build_node(state, node, facts, pods)
        if len(state.nodes) == 2:
            self._link_uplinks(state, [facts for facts, _ in loaded])
        for node, (facts, pods) in zip(state.nodes, loaded, strict=True):
            self._start_node(state, node, facts, pods, ports[node.name])
        for _, pods in loaded:
            for pod in pods:
                if pod.tcp_ports:
                    args = ["--name", pod.key, *(f"--port={p}" for p in pod.tcp_ports)]
                    self._spawn(state, f"server {pod.key}", "k8s_offload.lab.podserver", pod.netns, args)
        self.wait_ready(state, timeout)
        state.ready = True
        self._save(state)

    def _build_node(
        self, state: LabState, node: LabNode, facts: dict[str, Any], pods: list[LabPod]
    ) -> list[int]:
        """The node's namespace, its device port veths and its host stack; returns the pods' ports."""
        special = {int(v) for v in (facts.get("ports") or {}).values()}
        ports = [p for p in range(FIRST_POD_PORT, 510) if p not in special][: len(pods)]
        if len(ports) < len(pods):
            raise LabError(f"node {node.name}: more pods than device ports")
        node_dir = Path(node.dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "node.yaml").write_text(yaml.safe_dump({**facts, "pods": []}, sort_keys=False))
        self._add_netns(state, node.netns)
        arp_port, host_port = int(facts["ports"]["arpProxy"]), int(facts["ports"]["host"])
        pairs = [(f"p4p{p}", f"dp{p}") for p in ports] + [
            ("arpp", f"dp{arp_port}"),
            ("host0", f"dp{host_port}"),
        ]
        for a, b in pairs:
            run("ip", "-n", node.netns, "link", "add", a, "type", "veth", "peer", "name", b)
        for ifname in [b for _, b in pairs] + ["arpp"]:
            ns_run(node.netns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
        for _, b in pairs:
            run("ip", "-n", node.netns, "link", "set", b, "up")
        run("ip", "-n", node.netns, "link", "set", "arpp", "up")
        self._host_stack(node, facts)
        self._tx_checksum_off(node.netns, [i for pair in pairs for i in pair])
        return ports

    def _host_stack(self, node: LabNode, facts: dict[str, Any]) -> None:
        """`host0`, the node's own network stack behind the host port: the node's addresses, and a
        default route through the device via the gateway, as a node sends pod traffic into its
        CNI. `host0` carries the gateway MAC, which is what pods address frames for the node to
        (the pipeline forwards node addresses to the host port without rewriting MACs), and knows
        the gateway's MAC without asking (its ARP reply would be addressed to itself)."""
        ns, gw = node.netns, facts["gateway"]
        mac = str(gw["mac"])
        ns_run(ns, "sysctl", "-qw", "net.ipv6.conf.host0.router_solicitations=0")
        run("ip", "-n", ns, "link", "set", "host0", "address", mac, "up")
        for addr in facts.get("nodeIPs") or []:
            run("ip", "-n", ns, "addr", "add", f"{addr}/{128 if ':' in str(addr) else 32}", "dev", "host0")
        gateways = [(str(gw["ipv4"]), "-4")] + ([(str(gw["ipv6"]), "-6")] if gw.get("ipv6") else [])
        for addr, family in gateways:
            run(
                "ip",
                "-n",
                ns,
                family,
                "neigh",
                "replace",
                addr,
                "lladdr",
                mac,
                "dev",
                "host0",
                "nud",
                "permanent",
            )
            run("ip", "-n", ns, family, "route", "add", "default", "via", addr, "dev", "host0", "onlink")

    def _link_uplinks(self, state: LabState, facts: list[dict[str, Any]]) -> None:
        """The two devices' uplink ports joined by one veth pair (`dpU` in each node namespace)."""
        a, b = state.nodes
        ua, ub = (int(f["ports"]["uplink"]) for f in facts)
        run("ip", "-n", a.netns, "link", "add", f"dp{ua}", "type", "veth", "peer", "name", f"dp{ub}",
            "netns", b.netns)  # fmt: skip
        for node, port in ((a, ua), (b, ub)):
            ns_run(node.netns, "sysctl", "-qw", f"net.ipv6.conf.dp{port}.disable_ipv6=1")
            run("ip", "-n", node.netns, "link", "set", f"dp{port}", "up")
            self._tx_checksum_off(node.netns, [f"dp{port}"])

    def _tx_checksum_off(self, netns: str, interfaces: list[str]) -> None:
        """Veths leave L4 checksums to "hardware"; the pipeline only recomputes them after NAT."""
        code = (
            "import sys\nfrom k8s_offload.target.dataplane import set_tx_checksum\n"
            "for i in sys.argv[1:]:\n    set_tx_checksum(i, False)\n"
        )
        ns_run(netns, sys.executable, "-c", code, *interfaces, env=child_env())

    def _start_node(
        self, state: LabState, node: LabNode, facts: dict[str, Any], pods: list[LabPod], ports: list[int]
    ) -> None:
        """The node's switch (every attached device port), ARP proxy, pods (through the CNI
        plugin) and loader."""
        node_dir = Path(node.dir)
        special = facts["ports"]
        attached = [int(special["arpProxy"]), int(special["host"])]
        if node.uplink_peer:
            attached.append(int(special["uplink"]))
        port_args = [f"--port={p}=dp{p}" for p in [*attached, *ports]]
        switch_args = ["--listen", P4RT_ADDRESS, *port_args]
        self._spawn(state, "switch", "k8s_offload.target.cli", node.netns, switch_args, node.name)
        gw = facts["gateway"]
        gw_ips = [str(gw["ipv4"]), *([str(gw["ipv6"])] if gw.get("ipv6") else [])]
        self._spawn(
            state,
            "arp-proxy",
            "k8s_offload.arp_proxy",
            node.netns,
            ["--interface", "arpp", "--gateway-ip", *gw_ips, "--mac", str(gw["mac"]),
             "--stats-file", str(node_dir / "arp-proxy.json")],
            node.name,
        )  # fmt: skip
        cni_conf = {
            "cniVersion": "1.0.0",
            "name": f"offload-lab-{self.name}",
            "type": "offload-cni",
            "pool": [{"interface": f"p4p{p}", "port": p} for p in ports],
            "nodeFacts": str(node_dir / "node.yaml"),
        }
        (node_dir / "cni.json").write_text(json.dumps(cni_conf, indent=2) + "\n")
        for pod in pods:
            pod.netns = f"{self.name}-{pod.namespace}-{pod.name}"
            pod.container_id = f"lab-{self.name}-{pod.namespace}-{pod.name}"
            self._add_netns(state, pod.netns)
            state.pods.append(pod)
            self._save(state)
            self._cni("ADD", pod, state)
        self._record_ports(state, node)
        self._spawn(
            state,
            "loader",
            "k8s_offload.loader.cli",
            node.netns,
            ["--target", P4RT_ADDRESS, "--node", str(node_dir / "node.yaml"), "--poll-interval", "0.2",
             "--metrics", METRICS_ADDRESS, str(self.dir / "cluster")],
            node.name,
        )  # fmt: skip

    def _add_netns(self, state: LabState, name: str) -> None:
        if netns_exists(name):
            raise LabError(f"network namespace {name} exists already; another lab named {self.name}?")
        run("ip", "netns", "add", name)
        state.netns.append(name)
        self._save(state)
        run("ip", "-n", name, "link", "set", "lo", "up")
        for key in ("all", "default"):
            ns_run(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")

    def _spawn(
        self, state: LabState, role: str, module: str, netns: str, args: list[str], node: str = ""
    ) -> None:
        stem = (f"{node}-" if len(state.nodes) > 1 and node else "") + role
        log = self.dir / "logs" / (stem.replace(" ", "-").replace("/", "_") + ".log")
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-m", module, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
            )
        state.processes.append(LabProcess(role, proc.pid, str(log), module, node))
        self._save(state)

    def _cni(self, command: str, pod: LabPod, state: LabState) -> dict[str, Any]:
        node = state.node(pod.node)
        cidrs = [f"{ip}/{128 if ':' in ip else 32}" for ip in pod.ips]
        env = {
            **child_env(),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": f"/run/netns/{pod.netns}" if netns_exists(pod.netns) else "",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(Path(sys.executable).parent),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"IP={','.join(cidrs)}",
        }
        conf = (Path(node.dir) / "cni.json").read_text()
        cmd = ["ip", "netns", "exec", node.netns, *_script("offload-cni", "k8s_offload.cni")]
        proc = subprocess.run(
            cmd, input=conf, capture_output=True, text=True, env=env, check=False, timeout=60
        )
        if proc.returncode != 0:
            raise LabError(f"offload-cni {command} {pod.key}: {proc.stdout.strip()} {proc.stderr.strip()}")
        if command == "ADD":
            state.plugged.append(pod.container_id)
            self._save(state)
        out: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return out

    def _record_ports(self, state: LabState, node: LabNode) -> None:
        facts = yaml.safe_load((Path(node.dir) / "node.yaml").read_text())
        by_cid = {p.get("containerId"): p for p in facts.get("pods") or []}
        for pod in state.pods:
            rec = by_cid.get(pod.container_id)
            if pod.node == node.name and rec is not None:
                pod.device_port, pod.host_interface = int(rec["port"]), str(rec.get("hostInterface", ""))
        self._save(state)

    def wait_ready(self, state: LabState, timeout: float) -> None:
        """Until every process runs, every loader's device matches the manifests, servers listen."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self.problems(state)
            if not problems:
                return
            if time.monotonic() > deadline:
                raise LabError("lab not ready: " + "; ".join(problems))
            time.sleep(0.2)

    def problems(self, state: LabState) -> list[str]:
        out = [
            f"{self._who(state, p)} (pid {p.pid}) is not running"
            for p in state.processes
            if not process_alive(p)
        ]
        for p in state.processes:
            if p.role.startswith("server ") and "serving" not in Path(p.log).read_text(errors="replace"):
                out.append(f"{p.role} not listening yet")
        for node in state.nodes:
            where = f" on {node.name}" if len(state.nodes) > 1 else ""
            try:
                attached = bool(json.loads((Path(node.dir) / "arp-proxy.json").read_text()).get("attached"))
            except (OSError, ValueError):
                attached = False
            if not attached:
                out.append(f"ARP proxy{where} not attached yet")
        if not out:
            for node in state.nodes:
                code, _ = ns_http_get(node.netns, f"http://{METRICS_ADDRESS}/readyz")
                if code != 200:
                    out.append(
                        "loader" + (f" on {node.name}" if len(state.nodes) > 1 else "") + " not in sync yet"
                    )
        return out

    @staticmethod
    def _who(state: LabState, p: LabProcess) -> str:
        return f"{p.role} on {p.node}" if p.node and len(state.nodes) > 1 else p.role

    def last_sync(self, state: LabState, node: LabNode | None = None) -> float:
        """A loader's last successful sync (Unix time; 0 if none or unreachable); default the
        first node's."""
        node = node or state.nodes[0]
        code, body = ns_http_get(node.netns, f"http://{METRICS_ADDRESS}/metrics")
        for line in body.splitlines() if code == 200 else []:
            if line.startswith("offload_last_successful_sync_timestamp_seconds "):
                return float(line.split()[1])
        return 0.0

    def wait_synced(self, state: LabState, since: float, timeout: float = 30.0) -> None:
        """Until every node's loader reports a successful sync after `since` (Unix time)."""
        deadline = time.monotonic() + timeout
        for node in state.nodes:
            while self.last_sync(state, node) <= since:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"loader of {node.name} did not sync within {timeout}s (see {self.dir / 'logs'})"
                    )
                time.sleep(0.2)

    def flush_flows(self, state: LabState, timeout: float = 10.0) -> None:
        """Make every node's target forget every connection (SIGUSR1 to `offload-switch`); waits."""
        switches = [p for p in state.processes if p.role == "switch" and process_alive(p)]
        if len(switches) != len(state.nodes):
            raise LabError("a switch is not running")
        for switch in switches:
            log = Path(switch.log)
            done = log.read_text(errors="replace").count("flow cache flushed")
            os.kill(switch.pid, signal.SIGUSR1)
            deadline = time.monotonic() + timeout
            while log.read_text(errors="replace").count("flow cache flushed") <= done:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"the switch of {switch.node} did not flush its flow cache within {timeout}s"
                    )
                time.sleep(0.05)

    # ---- down -------------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop processes, unplug pods, delete namespaces and the state directory; returns complaints."""
        state = self.load()
        if state is None:
            return []
        complaints: list[str] = []
        live = [p for p in state.processes if process_alive(p)]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(process_alive(p) for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in live:
            if process_alive(p):
                complaints.append(f"{self._who(state, p)} (pid {p.pid}) ignored SIGTERM; killed")
                os.kill(p.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(process_alive(p) for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pod in reversed(state.pods):
            if pod.container_id in state.plugged and netns_exists(state.node(pod.node).netns):
                try:
                    self._cni("DEL", pod, state)
                except (LabError, subprocess.TimeoutExpired) as err:
                    complaints.append(str(err))
        for ns in reversed(state.netns):
            if netns_exists(ns):
                proc = run("ip", "netns", "del", ns, check=False)
                if proc.returncode != 0:
                    complaints.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        shutil.rmtree(self.dir, ignore_errors=True)
        return complaints

    # ---- status -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        state = self.load()
        if state is None:
            return None
        nodes = []
        for node in state.nodes:
            facts: dict[str, Any] = {}
            with contextlib.suppress(OSError):
                facts = yaml.safe_load((Path(node.dir) / "node.yaml").read_text()) or {}
            try:
                proxy = json.loads((Path(node.dir) / "arp-proxy.json").read_text())
            except (OSError, ValueError):
                proxy = {}
            macs = {p.get("containerId"): p.get("mac") for p in facts.get("pods") or []}
            nodes.append(
                {
                    "name": node.name,
                    "netns": node.netns,
                    "nodeFacts": str(Path(node.dir) / "node.yaml"),
                    "uplinkPeer": node.uplink_peer or None,
                    "processes": [
                        {"role": p.role, "pid": p.pid, "running": process_alive(p), "log": p.log}
                        for p in state.processes
                        if p.node == node.name
                    ],
                    "pods": [
                        {
                            "pod": p.key,
                            "netns": p.netns,
                            "present": netns_exists(p.netns),
                            "ips": p.ips,
                            "tcpPorts": p.tcp_ports,
                            "devicePort": p.device_port,
                            "mac": macs.get(p.container_id),
                        }
                        for p in state.pods
                        if p.node == node.name
                    ],
                    "arpProxy": proxy,
                }
            )
        return {
            "name": state.name,
            "stateDir": state.state_dir,
            "cluster": state.cluster_src,
            "manifests": str(self.dir / "cluster"),
            "problems": self.problems(state),
            "nodes": nodes,
            "servers": [
                {"role": p.role, "pid": p.pid, "running": process_alive(p), "log": p.log}
                for p in state.processes
                if not p.node
            ],
        }
