"""Textual cluster IR (`--emit ir`): one line per node, in IR order, so two runs diff line by line.

The text is lossless: `k8s_offload.compiler.ir.parse` reads it back into an equal IR
(docs/ir.md, "Textual IR", gives the grammar and the stability promise). A string prints bare
when it is a plain word and JSON-quoted otherwise; `-` stands for an absent value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from k8s_offload.compiler.frontend.model import EndpointConditions, IPAddress, Labels, ObjectKey
from k8s_offload.compiler.frontend.nodefacts import NodeFacts, PodAttachment
from k8s_offload.compiler.frontend.policy import (
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from k8s_offload.compiler.frontend.tiers import to_manifest
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    ClusterIR,
    Diagnostic,
    FrontendKind,
    NamespaceInfo,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)

WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
"""What prints without quotes; the grammar's WORD terminal (ir.lark) is the same pattern."""
KEYWORDS = frozenset(
    (
        "declared",
        "implied",
        "local",
        "remote",
        "headless",
        "topology",
        "reject",
        "any",
        "in",
        "notin",
        "ns",
        "pods",
        "except",
    )
)
"""Words the grammar reads as keywords where a name may also stand: names spelled so are quoted."""
_PORT_WORD = re.compile(r"[0-9]+(-[0-9]+)?")
"""A policy port written as a bare word that is a number or a range, not a name."""


def dump(ir: ClusterIR) -> str:
    lines = [_node(ir.node)]
    lines.extend(_attach(a) for a in ir.node.pods)
    lines.extend(_namespace(ns) for ns in ir.namespaces)
    lines.extend(_pod(pod) for pod in ir.pods)
    lines.extend(_service(svc) for svc in ir.services)
    lines.extend(_frontend(fe) for fe in ir.frontends)
    lines.extend(_backend_set(bs) for bs in ir.backend_sets)
    lines.extend(_policy(np) for np in ir.network_policies)
    lines.extend(f"tier {json.dumps(to_manifest(cp), sort_keys=True)}" for cp in ir.cluster_policies)
    lines.extend(
        f"k8snode {word(n.key.name)} labels={_labels(n.labels)} addrs={addresses(n.addresses)}"
        for n in ir.nodes
    )
    lines.extend(f"hostnetwork {ref(key)}" for key in ir.host_network_pods)
    lines.extend(_diagnostic(d) for d in ir.diagnostics)
    return "\n".join(lines) + "\n"


def word(text: str) -> str:
    """`text` bare when it is a plain word, else as a JSON string (ASCII, escaped)."""
    return text if WORD.fullmatch(text) and text not in KEYWORDS else json.dumps(text)


def opt(text: str | None) -> str:
    """`-` for an absent (None or empty) value."""
    return "-" if not text else word(text)


def ref(key: ObjectKey) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object; the kind is implied by the line."""
    return f"{word(key.namespace)}/{word(key.name)}" if key.namespace else word(key.name)


def label_key(key: str) -> str:
    prefix, slash, name = key.partition("/")
    if slash and word(prefix) == prefix and word(name) == name:
        return key
    return word(key)


def addresses(items: Iterable[object]) -> str:
    return "[" + ",".join(str(i) for i in items) + "]"


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f"{label_key(k)}={word(v) if v else ''}" for k, v in labels) + "}"


def _endpoint(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _node(facts: NodeFacts) -> str:
    gw = facts.gateway
    ports = facts.ports
    name = "-" if facts.node_name is None else word(facts.node_name)
    text = (
        f"node name={name} ips={addresses(facts.node_ips)} "
        f"gateway={addresses(ip for ip in (gw.ipv4, gw.ipv6) if ip is not None)} mac={gw.mac} "
        f"ports={{arpProxy={ports.arp_proxy},host={ports.host},uplink={ports.uplink}}}"
    )
    return text if facts.zone is None else f"{text} zone={word(facts.zone)}"


def _attach(a: PodAttachment) -> str:
    text = f"attach {ref(ObjectKey('Pod', a.namespace, a.name))} port={a.port} mac={a.mac}"
    for name, value in (
        ("interface", a.interface),
        ("hostInterface", a.host_interface),
        ("containerId", a.container_id),
    ):
        if value is not None:
            text += f" {name}={word(value)}"
    return text


def _namespace(ns: NamespaceInfo) -> str:
    origin = "declared" if ns.declared else "implied"
    return f"namespace {word(ns.key.name)} {origin} labels={_labels(ns.labels)}"


def _pod(pod: PodEndpoint) -> str:
    where = "local" if pod.local else "remote"
    if pod.port is not None:
        where += f" port={pod.port}"
    if pod.mac is not None:
        where += f" mac={pod.mac}"
    ports = ",".join(f"{opt(p.name)}/{p.protocol}/{p.port}" for p in pod.container_ports)
    return (
        f"pod {ref(pod.key)} ipv4={pod.ipv4 or '-'} ipv6={pod.ipv6 or '-'} node={opt(pod.node_name)} "
        f"{where} labels={_labels(pod.labels)} ports=[{ports}]"
    )


def _service(svc: ServiceInfo) -> str:
    flags = (
        ("headless", svc.headless),
        (f"externalName={word(svc.external_name or '')}", svc.external_name is not None),
        ("externalTrafficPolicy=Local", svc.external_local),
        ("internalTrafficPolicy=Local", svc.internal_local),
        (f"affinity=ClientIP/{svc.affinity_timeout}s", svc.affinity_timeout is not None),
        ("topology", svc.topology),
    )
    head = f"service {ref(svc.key)} type={svc.type} vips={addresses(svc.vips)}"
    return " ".join([head, *(text for text, on in flags if on)])


def set_key(fe_or_set: ServiceFrontend | BackendSet) -> str:
    key = fe_or_set.backend_set if isinstance(fe_or_set, ServiceFrontend) else fe_or_set.key
    return f"{ref(key.service)}:{opt(key.port_name)}/{key.family}"


def _frontend(fe: ServiceFrontend) -> str:
    text = f"frontend {_endpoint(fe.vip, fe.port)}/{fe.protocol} -> {set_key(fe)}"
    return text if fe.kind is FrontendKind.ClusterIP else f"{text} {fe.kind}"


def conditions(c: EndpointConditions) -> str:
    flags = [
        name
        for name, on in (("ready", c.ready), ("serving", c.serving), ("terminating", c.terminating))
        if on
    ]
    return ",".join(flags) or "down"


def source(key: ObjectKey, namespace: str) -> str:
    """`Kind/name` for an object of `namespace`, `Kind/namespace/name` otherwise."""
    if key.namespace == namespace:
        return f"{word(key.kind)}/{word(key.name)}"
    return f"{word(key.kind)}/{word(key.namespace)}/{word(key.name)}"


def _backend(b: Backend, namespace: str) -> str:
    text = f"{_endpoint(b.address, b.port)} {conditions(b.conditions)}"
    if b.pod is not None:
        text += f" {'local' if b.local else 'pod'}={ref(b.pod)}"
    elif b.local:
        text += " local"
    if b.node_name is not None:
        text += f" node={word(b.node_name)}"
    if b.hint_zones:
        text += f" zones=[{','.join(word(z) for z in b.hint_zones)}]"
    if b.source is not None:
        text += f" source={source(b.source, namespace)}"
    return text


def _backend_set(bs: BackendSet) -> str:
    ns = bs.key.service.namespace
    verdict = " reject" if bs.reject else ""
    return (
        f"backends {set_key(bs)} {bs.protocol} ready={len(bs.ready)}/{len(bs.backends)}{verdict} "
        f"[{', '.join(_backend(b, ns) for b in bs.backends)}] "
        f"from=[{','.join(source(k, ns) for k in bs.sources)}]"
    )


def _selector(sel: LabelSelector) -> str:
    terms = [f"{label_key(k)}={word(v) if v else ''}" for k, v in sel.match_labels]
    for req in sel.match_expressions:
        key = label_key(req.key)
        values = ",".join(word(v) for v in req.values)
        match req.operator:
            case Operator.In:
                terms.append(f"{key} in ({values})")
            case Operator.NotIn:
                terms.append(f"{key} notin ({values})")
            case Operator.Exists:
                terms.append(key)
            case Operator.DoesNotExist:
                terms.append(f"!{key}")
    return "{" + ",".join(terms) + "}"


def _peer(peer: PolicyPeer) -> str:
    if peer.ip_block is not None:
        excepts = (
            f" except {','.join(str(n) for n in peer.ip_block.except_)}" if peer.ip_block.except_ else ""
        )
        return f"ip({peer.ip_block.cidr}{excepts})"
    parts = []
    if peer.namespace_selector is not None:
        parts.append("ns" + _selector(peer.namespace_selector))
    if peer.pod_selector is not None:
        parts.append("pods" + _selector(peer.pod_selector))
    return "&".join(parts)


def _port(port: PolicyPort) -> str:
    if port.port is None:
        value = "*"
    elif isinstance(port.port, str):
        value = json.dumps(port.port) if _PORT_WORD.fullmatch(port.port) else word(port.port)
    else:
        value = str(port.port)
    if port.end_port is not None:
        value += f"-{port.end_port}"
    return f"{port.protocol}/{value}"


def _rule(rule: PolicyRule) -> str:
    peers = "[" + ",".join(_peer(p) for p in rule.peers) + "]" if rule.peers else "*"
    ports = "[" + ",".join(_port(p) for p in rule.ports) + "]" if rule.ports else "*"
    return f"{{peers={peers} ports={ports}}}"


def _policy(np: NetworkPolicy) -> str:
    text = (
        f"policy {ref(np.key)} types=[{','.join(np.policy_types)}] pods={_selector(np.pod_selector)} "
        f"ingress=[{','.join(_rule(r) for r in np.ingress)}] egress=[{','.join(_rule(r) for r in np.egress)}]"
    )
    return f"{text} labels={_labels(np.labels)}" if np.labels else text


def _diagnostic(d: Diagnostic) -> str:
    return f"diagnostic {word(d.severity)} {word(d.subject.kind)} {ref(d.subject)} {json.dumps(d.message)}"
