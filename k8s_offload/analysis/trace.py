"""Packet-level answers to "may A talk to B?": real frames through the interpreter holding the
compiled bundle, request first, then the reply from wherever the request was delivered.

A probe crosses nodes the way traffic does: a frame that leaves a node on its uplink towards a pod
of another node enters that node's pipeline (compiled for it, with default placements) on its
uplink. Flow state stays in each node's interpreter, so the reply meets the state its request left.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet as ScapyPacket

from k8s_offload.analysis.explain import Named, NodeView, Packet, Step, explain_hop
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.errors import Location, ManifestError, ManifestErrors
from k8s_offload.compiler.frontend.fields import shown
from k8s_offload.compiler.frontend.loader import Manifests
from k8s_offload.compiler.frontend.model import IPAddress, ObjectKey, Protocol
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_GATEWAY, DEFAULT_PORTS, NodeFacts, PodAttachment
from k8s_offload.compiler.frontend.syntax import SyntaxFailure, load_yaml
from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.model import ClusterIR, PodEndpoint
from k8s_offload.compiler.ir.pods import FIRST_DEFAULT_POD_PORT, default_mac
from k8s_offload.compiler.lower.bundle import Lowered, lower
from k8s_offload.p4 import load_program
from k8s_offload.target.install import interpreter_with
from k8s_offload.target.interpreter import Interpreter, PacketResult

FIRST_CLIENT_PORT = 33000
MAX_HOPS = 4
OUTCOMES = ("allowed", "denied", "rejected")
"""Verdicts a probe can expect; `denied` is any verdict but allowed (dropped or rejected)."""


@dataclass(frozen=True, slots=True)
class Probe:
    source: str  # NS/POD
    target: str  # NS/POD, svc:NS/NAME or an IP address
    port: int
    protocol: Protocol
    expect: str | None = None
    """One of OUTCOMES, or None when the probe only asks."""


@dataclass(slots=True)
class Hop:
    node: str
    direction: str  # "request" or "reply"
    ingress_port: int
    egress_port: int | None
    tables: list[dict[str, Any]]
    drop_reason: str
    delivered_to: str
    steps: list[Step] = field(default_factory=list)
    """What decided each stage of the hop, naming the objects (k8s_offload/analysis/explain.py)."""


@dataclass(slots=True)
class Verdict:
    probe: Probe
    allowed: bool
    backend: str | None
    reason: str
    path: list[Hop] = field(default_factory=list)
    rejected: bool = False
    """The pipeline answered the request with an ICMP error (a Service port without endpoints)."""

    @property
    def outcome(self) -> str:
        return "allowed" if self.allowed else "rejected" if self.rejected else "denied"

    @property
    def as_expected(self) -> bool | None:
        """None without an expectation; `denied` matches a rejected verdict too."""
        want = self.probe.expect
        if want is None:
            return None
        return self.outcome == want or (want == "denied" and not self.allowed)

    @property
    def decided_by(self) -> list[Named]:
        """Every object the steps name, in path order, once each."""
        out: list[Named] = []
        for hop in self.path:
            for step in hop.steps:
                out.extend(n for n in step.named if n not in out)
        return out

    def as_json(self) -> dict[str, Any]:
        """The schema is documented in docs/trace.md and pinned by tests/analysis/test_trace_explain.py."""
        return {
            "from": self.probe.source,
            "to": self.probe.target,
            "port": self.probe.port,
            "protocol": self.probe.protocol.value,
            "verdict": self.outcome,
            "allowed": self.allowed,
            "rejected": self.rejected,
            "expect": self.probe.expect,
            "as_expected": self.as_expected,
            "backend": self.backend,
            "reason": self.reason,
            "decided_by": [n.as_json() for n in self.decided_by],
            "path": [
                {
                    "node": h.node,
                    "direction": h.direction,
                    "ingress_port": h.ingress_port,
                    "egress_port": h.egress_port,
                    "delivered_to": h.delivered_to,
                    "drop_reason": h.drop_reason,
                    "tables": h.tables,
                    "steps": [s.as_json() for s in h.steps],
                }
                for h in self.path
            ],
        }


def parse_probes(text: str, source: str, expect: str | None = None) -> list[Probe]:
    """A YAML list of {from, to, port, protocol, expect}; errors name the item and field.
    `expect` is the expectation of the probes that state none."""
    loc = Location(source)
    errors: list[ManifestError] = []
    try:
        documents = list(load_yaml(text))
    except SyntaxFailure as exc:
        problem = exc.problem
        raise ManifestErrors([ManifestError(loc, "", problem.field_path, problem.with_position())]) from None
    for problem in (p for d in documents for p in d.problems):
        errors.append(ManifestError(loc, "probe", problem.field_path, problem.with_position()))
    raw = documents[0].value if len(documents) == 1 else None
    if errors:
        raise ManifestErrors(errors)
    if not isinstance(raw, list):
        raise ManifestErrors([ManifestError(loc, "", "", "a probes file is a YAML list of probes")])
    probes: list[Probe] = []
    for i, item in enumerate(raw):
        path = f"[{i}]"
        if not isinstance(item, dict):
            errors.append(ManifestError(loc, "probe", path, "must be a mapping"))
            continue
        try:
            probes.append(
                make_probe(
                    item.get("from"),
                    item.get("to"),
                    item.get("port"),
                    item.get("protocol", "TCP"),
                    item.get("expect", expect),
                )
            )
        except ValueError as exc:
            errors.append(ManifestError(loc, "probe", path, str(exc)))
    if errors:
        raise ManifestErrors(errors)
    return probes


def split_host_port(text: str) -> tuple[IPAddress, int] | None:
    """`10.0.0.1:80` or `[fd00::1]:80` as (address, port); None when `text` carries no port."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, sep, port = text.partition(":")
    else:
        return None
    if not sep or not port.isdigit():
        raise ValueError(f"to: {text!r} is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)")
    try:
        return ipaddress.ip_address(host), int(port)
    except ValueError:
        raise ValueError(f"to: {host!r} in {text!r} is not an IP address") from None


TARGET_FORMS = "NS/POD, svc:NS/NAME, IP, IP:PORT or nodeport:NODE_IP:PORT"


def make_probe(
    source: object, target: object, port: object, protocol: object, expect: object = None
) -> Probe:
    if not isinstance(source, str) or source.count("/") != 1:
        raise ValueError(f"from: must be NS/POD, got {shown(source)}")
    if not isinstance(target, str) or not target:
        raise ValueError(f"to: must be {TARGET_FORMS}, got {shown(target)}")
    embedded = None if "/" in target else split_host_port(target.removeprefix("nodeport:"))
    if target.startswith("nodeport:") and embedded is None:
        raise ValueError(f"to: must be nodeport:NODE_IP:PORT, got {target!r}")
    if embedded is not None and port is None:
        port = embedded[1]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"port: must be between 1 and 65535, got {shown(port)}")
    if embedded is not None and embedded[1] != port:
        raise ValueError(f"port: {port} contradicts the port in to: {target!r}")
    try:
        proto = Protocol(protocol.upper() if isinstance(protocol, str) else "")
    except ValueError:
        raise ValueError(f"protocol: must be TCP, UDP or SCTP, got {shown(protocol)}") from None
    if expect is not None and expect not in OUTCOMES:
        raise ValueError(f"expect: must be one of {', '.join(OUTCOMES)}, got {shown(expect)}")
    return Probe(source, target, port, proto, expect if isinstance(expect, str) else None)


class _Node(NodeView):
    """One node's pipeline: its compiled state (for naming objects) and the interpreter holding
    its bundle."""

    def __init__(
        self, name: str, ir: ClusterIR, lowered: Lowered, sim: Interpreter, facts_known: bool
    ) -> None:
        super().__init__(name, ir, lowered, facts_known)
        self.sim = sim


class Tracer:
    def __init__(
        self,
        manifests: Manifests,
        ir: ClusterIR,
        schema: Schema,
        sim: Interpreter,
        lowered: Lowered | None = None,
    ) -> None:
        """`lowered` is what `sim` holds (the explanations name its isolations and rules); None
        lowers `ir` with every pass, as `compile_sources` does by default."""
        self.manifests = manifests
        self.schema = schema
        self.main = _Node(ir.node.node_name or "node", ir, lowered or lower(ir, schema), sim, True)
        self.nodes: dict[str, _Node] = {self.main.name: self.main}
        self.pods = {p.key.ref: p for p in ir.pods}
        self.host_network = set(ir.host_network_pods)
        """Host-network pods: they send and receive on their node's host port with its address."""
        self.pod_by_ip: dict[IPAddress, PodEndpoint] = {
            ip: p for p in ir.pods if p.key not in self.host_network for ip in p.ips
        }
        self.clock = 1_000_000
        self.next_port = FIRST_CLIENT_PORT

    @cached_property
    def drop_names(self) -> dict[int, str]:
        program = load_program()
        skip = {"DROP_PORT", "DROP_REASON_COUNT", "DROP_NONE"}
        return {
            int(c.value.value): c.name.removeprefix("DROP_").lower().replace("_", " ")
            for c in program.constants
            if c.name.startswith("DROP_") and c.name not in skip and not isinstance(c.value.value, bool)
        }

    # -- nodes -------------------------------------------------------------------------------
    def node_of(self, pod: PodEndpoint) -> _Node:
        here = self.main.ir.node.node_name  # None without node facts: host pods on their own nodes
        if pod.local or (pod.key in self.host_network and here is not None and pod.node_name == here):
            return self.main
        name = pod.node_name or "unscheduled"
        if name not in self.nodes:
            self.nodes[name] = self._other_node(name)
        return self.nodes[name]

    def _other_node(self, name: str) -> _Node:
        """A node we only know from the manifests: default gateway and ports, its pods attached
        in the same deterministic order the compiler uses without node facts."""
        pods = [
            p for p in self.main.ir.pods if p.node_name == name and p.ips and p.key not in self.host_network
        ]
        attachments = tuple(
            PodAttachment(p.key.namespace, p.key.name, port, default_mac(port))
            for port, p in enumerate(sorted(pods, key=lambda p: p.key), start=FIRST_DEFAULT_POD_PORT)
        )
        # Its addresses from its Node object, when the manifests have one: its own traffic (and
        # its host-network pods') goes to its host port.
        node_ips = next((n.addresses for n in self.main.ir.nodes if n.key.name == name), ())
        facts = NodeFacts(name, node_ips, DEFAULT_GATEWAY, DEFAULT_PORTS, attachments)
        ir = build_ir(self.manifests.objects, facts)
        lowered = lower(ir, self.schema)
        return _Node(name, ir, lowered, interpreter_with(self.schema, lowered.bundle), False)

    # -- probes ------------------------------------------------------------------------------
    def run(self, probe: Probe) -> Verdict:
        src = self.pods.get(probe.source)
        if src is None or not src.ips:
            raise ValueError(f"from: no pod {probe.source} with an IP in the manifests")
        dst_ip, dst_port, backend_set = self._target(probe, src)
        sport = self._client_port()
        src_ip = next(ip for ip in src.ips if ip.version == dst_ip.version)
        verdict = Verdict(probe, False, None, "")
        src_node = self.node_of(src)
        # A pod of another node has its device port and MAC in that node's IR, not in ours.
        attached = next((p for p in src_node.pod_by_port.values() if p.key == src.key), src)
        request = _frame(
            attached.mac or "02:00:00:00:00:ff", src_ip, dst_ip, probe.protocol, sport, dst_port, syn=True
        )
        delivered = self._carry(verdict, "request", src_node, self._port_for(src_node, attached), request)
        if delivered is None:
            return verdict
        node, receiver, data = delivered
        pkt = Ether(data)
        ip = _ip_layer(pkt)
        l4 = ip.payload
        if backend_set:
            verdict.backend = receiver.key.ref if receiver is not None else str(ip.dst)
        # The receiver answers the request as it saw it (after any masquerade).
        reply_src, reply_dst = ipaddress.ip_address(ip.dst), ipaddress.ip_address(ip.src)
        reply = _frame(pkt[Ether].dst, reply_src, reply_dst, probe.protocol, l4.dport, l4.sport, syn=False)
        if receiver is not None:
            back = self._carry(verdict, "reply", node, self._port_for(node, receiver), reply, src)
        else:  # a non-pod target answers from beyond the uplink
            back = self._carry(verdict, "reply", node, node.ir.node.ports.uplink, reply)
        if back is None:
            return verdict
        _, got, data = back
        rpkt = Ether(data)
        rip = _ip_layer(rpkt)
        expected_src = (dst_ip, dst_port)
        if got is None or got.key != src.key:
            verdict.reason = "the reply did not reach the source pod"
            return verdict
        if (ipaddress.ip_address(rip.src), rip.payload.sport) != expected_src:
            verdict.reason = (
                f"the reply came from {rip.src}:{rip.payload.sport}, not the address it was sent to"
            )
            return verdict
        verdict.allowed = True
        verdict.reason = "request delivered and reply returned"
        return verdict

    def _client_port(self) -> int:
        self.next_port += 1
        return self.next_port

    def _target(self, probe: Probe, src: PodEndpoint) -> tuple[IPAddress, int, bool]:
        families = {ip.version for ip in src.ips}
        if probe.target.startswith("svc:"):
            ref = probe.target.removeprefix("svc:")
            key = ObjectKey("Service", *ref.split("/", 1)) if "/" in ref else None
            fes = [
                fe
                for fe in self.main.ir.frontends
                if key is not None
                and fe.service == key
                and fe.port == probe.port
                and fe.protocol is probe.protocol
            ]
            fes.sort(key=lambda fe: fe.vip.version)
            for fe in fes:
                if fe.vip.version in families:
                    return fe.vip, probe.port, True
            raise ValueError(
                f"to: Service {ref} has no {probe.protocol.value}/{probe.port} frontend "
                "for the source's family"
            )
        if "/" in probe.target:
            pod = self.pods.get(probe.target)
            if pod is None or not pod.ips:
                raise ValueError(f"to: no pod {probe.target} with an IP in the manifests")
            for ip in sorted(pod.ips, key=lambda a: a.version):
                if ip.version in families:
                    return ip, probe.port, False
            raise ValueError(f"to: {probe.target} has no address of the source's family")
        embedded = split_host_port(probe.target.removeprefix("nodeport:"))
        if embedded is not None:
            ip = embedded[0]
        else:
            try:
                ip = ipaddress.ip_address(probe.target)
            except ValueError:
                raise ValueError(f"to: must be {TARGET_FORMS}, got {probe.target!r}") from None
        if ip.version not in families:
            raise ValueError(f"to: {ip} is not of the source pod's family")
        frontend = any(
            fe.vip == ip and fe.port == probe.port and fe.protocol is probe.protocol
            for fe in self.main.ir.frontends
        )
        return ip, probe.port, frontend

    def _port_for(self, node: _Node, pod: PodEndpoint) -> int:
        """A pod's device port; a host-network pod's traffic uses its node's host port."""
        if pod.key in self.host_network:
            return node.ir.node.ports.host
        return _port_of(pod)

    def _carry(
        self,
        verdict: Verdict,
        direction: str,
        node: _Node,
        port: int,
        frame: bytes,
        want: PodEndpoint | None = None,
    ) -> tuple[_Node, PodEndpoint | None, bytes] | None:
        """Move a frame through nodes until a pod port takes it (or it leaves the cluster)."""
        for _ in range(MAX_HOPS):
            self.clock += 1000
            result = node.sim.process(port, frame, self.clock)
            receiver = node.pod_by_port.get(result.egress_port) if result.egress_port is not None else None
            hop = Hop(
                node.name,
                direction,
                port,
                result.egress_port,
                _tables(result),
                self._drop_reason(result),
                receiver.key.ref if receiver is not None else self._port_name(node, result.egress_port),
            )
            verdict.path.append(hop)
            error = _icmp_error(result.data) if result.egress_port is not None else None
            if error is not None and result.egress_port == port:
                hop.drop_reason = error  # answered where it came from: see below
            after = _packet(result.data) if result.egress_port is not None and error is None else None
            hop.steps = explain_hop(
                node, port, _packet(frame), result, hop.drop_reason, direction == "reply", after
            )
            if result.egress_port is None:
                verdict.reason = f"{direction} dropped on {node.name}: {hop.drop_reason}"
                denial = next(
                    (s for s in hop.steps if s.fields.get("verdict") == "denied" and "tier" in s.fields), None
                )
                if denial is not None:  # "DENIED by AdminNetworkPolicy sre-guardrails rule 2 (egress)"
                    verdict.reason = f"by {denial.fields['rule']}: {verdict.reason}"
                return None
            if error is not None and result.egress_port == port:
                # Answered where it came from: the pipeline rejected it (kube-proxy's REJECT).
                verdict.rejected = True
                sender = _ip_layer(Ether(result.data)).src
                verdict.reason = f"{direction} rejected on {node.name}: {error} from {sender}"
                return None
            if receiver is not None:
                return node, receiver, result.data
            pkt = Ether(result.data)
            ip = _ip_layer(pkt)
            dst = ipaddress.ip_address(ip.dst) if ip is not None else None
            owner = self.pod_by_ip.get(dst) if dst is not None else None
            if result.egress_port == node.ir.node.ports.host and dst is not None:
                # Out of the host port to a host-network pod of this node: it has the node's
                # address (several may share it: the one the probe expects, else any).
                here = [p for p in self.host_pods.get(dst, ()) if self._on(p, node)]
                if here:
                    return node, want if want in here else here[0], result.data
            host = self.main if dst is not None and dst in self.main.ir.node.node_ips else None
            far = [p for p in self.host_pods.get(dst, ()) if not self._on(p, node)] if dst is not None else []
            if result.egress_port == node.ir.node.ports.uplink and far:
                # To a host-network pod of another node (its node's address): into that node.
                there = self.node_of(want if want in far else far[0])
                node, port, frame = there, there.ir.node.ports.uplink, result.data
                continue
            if result.egress_port == node.ir.node.ports.uplink and host is not None and host is not node:
                # Addressed to another node itself (a masqueraded flow's reply): into its pipeline.
                node, port, frame = host, host.ir.node.ports.uplink, result.data
                continue
            if (
                result.egress_port == node.ir.node.ports.uplink
                and owner is not None
                and not self._on(owner, node)
            ):
                node, port, frame = self.node_of(owner), self.node_of(owner).ir.node.ports.uplink, result.data
                continue
            if owner is None:
                return node, None, result.data  # left the cluster towards a non-pod address
            verdict.reason = (
                f"{direction} left {node.name} on port {result.egress_port}, not towards {owner.key.ref}"
            )
            return None
        verdict.reason = f"{direction} did not arrive after {MAX_HOPS} nodes"
        return None

    @cached_property
    def host_pods(self) -> dict[IPAddress, list[PodEndpoint]]:
        """Host-network pods by address (their node's)."""
        out: dict[IPAddress, list[PodEndpoint]] = {}
        for p in self.main.ir.pods:
            if p.key in self.host_network:
                for ip in p.ips:
                    out.setdefault(ip, []).append(p)
        return out

    def _on(self, pod: PodEndpoint, node: _Node) -> bool:
        return self.node_of(pod) is node

    def _drop_reason(self, result: PacketResult) -> str:
        if result.egress_port is not None:
            return ""
        for name, index in result.trace.counters:
            if name.endswith("drop_reasons"):
                return self.drop_names.get(index, f"reason {index}")
        return result.trace.drop_reason or "dropped"

    @staticmethod
    def _port_name(node: _Node, port: int | None) -> str:
        ports = node.ir.node.ports
        names = {ports.uplink: "uplink", ports.host: "host", ports.arp_proxy: "arp proxy"}
        return names.get(port, f"port {port}") if port is not None else ""


def _packet(frame: bytes) -> Packet:
    """The addresses, protocol and ports of a probe frame (always IP over Ethernet with ports)."""
    ip = _ip_layer(Ether(frame))
    l4 = ip.payload
    number = ip.proto if ip.version == 4 else ip.nh
    protocol = {6: Protocol.TCP, 17: Protocol.UDP, 132: Protocol.SCTP}[number]
    return Packet(ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst), protocol, l4.sport, l4.dport)


def _ip_layer(pkt: ScapyPacket) -> Any:
    return pkt.getlayer(IP) or pkt.getlayer(IPv6)


def _icmp_error(data: bytes) -> str | None:
    """ "ICMP port unreachable" (or the type and code) when the frame is an ICMP/ICMPv6 error."""
    pkt = Ether(data)
    if ICMP in pkt and pkt[ICMP].type in (3, 11, 12):
        t, c = pkt[ICMP].type, pkt[ICMP].code
        return "ICMP port unreachable" if (t, c) == (3, 3) else f"ICMP error type {t} code {c}"
    if ICMPv6DestUnreach in pkt:
        c = pkt[ICMPv6DestUnreach].code
        return "ICMPv6 port unreachable" if c == 4 else f"ICMPv6 destination unreachable code {c}"
    return None


def _port_of(pod: PodEndpoint) -> int:
    if pod.port is None:
        raise ValueError(f"{pod.key.ref} has no device port")
    return pod.port


def _tables(result: PacketResult) -> list[dict[str, Any]]:
    return [
        {"table": ev.table.rsplit(".", 1)[-1], "hit": ev.hit, "action": ev.action.rsplit(".", 1)[-1]}
        for ev in result.trace.tables
    ]


def _frame(
    src_mac: str, src: IPAddress, dst: IPAddress, protocol: Protocol, sport: int, dport: int, *, syn: bool
) -> bytes:
    l4: ScapyPacket
    if protocol is Protocol.TCP:
        l4 = TCP(sport=sport, dport=dport, flags="S" if syn else "SA", seq=100, ack=0 if syn else 101)
    elif protocol is Protocol.UDP:
        l4 = UDP(sport=sport, dport=dport) / b"probe"
    else:
        l4 = SCTP(sport=sport, dport=dport, tag=0 if syn else 1)
    ip: ScapyPacket = IP(src=str(src), dst=str(dst)) if src.version == 4 else IPv6(src=str(src), dst=str(dst))
    return bytes(Ether(src=src_mac, dst=DEFAULT_GATEWAY.mac) / ip / l4)


def render_text(verdicts: list[Verdict]) -> str:
    """Per probe: the verdict (and the expectation it misses), the objects that decided it, then
    each hop's tables and the step by step explanation."""
    lines: list[str] = []
    for i, v in enumerate(verdicts, 1):
        p = v.probe
        head = f"probe {i}: {p.source} -> {p.target} {p.protocol.value}/{p.port}: {v.outcome.upper()}"
        if v.backend:
            head += f" (backend {v.backend})"
        if not v.allowed:
            head += f" {v.reason}" if v.reason.startswith("by ") else f": {v.reason}"
        if v.as_expected is False:
            head += f" [EXPECTED {p.expect.upper() if p.expect else ''}]"
        lines.append(head)
        deciding = [n for n in v.decided_by if n.kind != "NodeFacts"]
        if deciding:
            lines.append("  decided by: " + "; ".join(str(n) for n in deciding))
        for h in v.path:
            stages = " ".join(
                f"{t['table']}:{t['action']}" for t in h.tables if t["hit"] or t["table"].endswith("_pod")
            )
            if h.egress_port is None:
                end = f"-> DROP ({h.drop_reason})"
            elif h.drop_reason:
                end = f"-> REJECTED: {h.drop_reason} back to {h.delivered_to}"
            else:
                end = f"-> {h.delivered_to}"
            lines.append(f"  {h.direction:<7} {h.node} port {h.ingress_port}: {stages} {end}")
            lines.extend(f"    {step.stage}: {step.text}" for step in h.steps)
    return "\n".join(lines) + ("\n" if lines else "")
