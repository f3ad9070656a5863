"""Textual IR (`--emit ir`): one line per node, in IR order, so two runs diff line by line.

The text is for people and golden tests; nothing parses it back.
"""

from __future__ import annotations

from collections.abc import Iterable

from k8s_offload.compiler.frontend.model import EndpointConditions, IPAddress, Labels
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.frontend.policy import (
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from k8s_offload.compiler.ir.model import (
    BackendSet,
    ClusterIR,
    NamespaceInfo,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)


def dump(ir: ClusterIR) -> str:
    lines = [_node(ir.node)]
    lines.extend(_namespace(ns) for ns in ir.namespaces)
    lines.extend(_pod(pod) for pod in ir.pods)
    lines.extend(_service(svc) for svc in ir.services)
    lines.extend(_frontend(fe) for fe in ir.frontends)
    lines.extend(_backend_set(bs) for bs in ir.backend_sets)
    lines.extend(_policy(np) for np in ir.network_policies)
    lines.extend(str(d) for d in ir.diagnostics)
    return "\n".join(lines) + "\n"


def _list(items: Iterable[object]) -> str:
    return "[" + ",".join(str(i) for i in items) + "]"


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"


def _endpoint(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _node(facts: NodeFacts) -> str:
    gw = facts.gateway
    ports = facts.ports
    return (
        f"node name={facts.node_name or '-'} ips={_list(facts.node_ips)} "
        f"gateway={_list(ip for ip in (gw.ipv4, gw.ipv6) if ip is not None)} mac={gw.mac} "
        f"ports={{arpProxy={ports.arp_proxy},host={ports.host},uplink={ports.uplink}}}"
    )


def _namespace(ns: NamespaceInfo) -> str:
    origin = "declared" if ns.declared else "implied"
    return f"namespace {ns.key.name} {origin} labels={_labels(ns.labels)}"


def _pod(pod: PodEndpoint) -> str:
    where = f"local port={pod.port} mac={pod.mac}" if pod.local else "remote"
    ports = _list(f"{p.name or '-'}/{p.protocol}/{p.port}" for p in pod.container_ports)
    return (
        f"pod {pod.key.ref} ipv4={pod.ipv4 or '-'} ipv6={pod.ipv6 or '-'} node={pod.node_name or '-'} "
        f"{where} labels={_labels(pod.labels)} ports={ports}"
    )


def _service(svc: ServiceInfo) -> str:
    text = f"service {svc.key.ref} type={svc.type}"
    if svc.headless:
        return text + " headless"
    if svc.external_name:
        return text + f" externalName={svc.external_name}"
    text += f" vips={_list(svc.vips)}"
    extras = (
        ("externalTrafficPolicy=Local", svc.external_local),
        ("internalTrafficPolicy=Local", svc.internal_local),
        (f"affinity=ClientIP/{svc.affinity_timeout}s", svc.affinity_timeout is not None),
        ("topology", svc.topology),
    )
    return " ".join([text, *(name for name, on in extras if on)])


def _frontend(fe: ServiceFrontend) -> str:
    text = f"frontend {_endpoint(fe.vip, fe.port)}/{fe.protocol} -> {fe.backend_set}"
    return text if not fe.external else f"{text} {fe.kind}"


def _conditions(c: EndpointConditions) -> str:
    flags = [
        name
        for name, on in (("ready", c.ready), ("serving", c.serving), ("terminating", c.terminating))
        if on
    ]
    return ",".join(flags) or "down"


def _backend_set(bs: BackendSet) -> str:
    backends = []
    for b in bs.backends:
        owner = f" {'local' if b.local else 'pod'}={b.pod.ref}" if b.pod else ""
        backends.append(f"{_endpoint(b.address, b.port)} {_conditions(b.conditions)}{owner}")
    verdict = " reject" if bs.reject else ""
    return (
        f"backends {bs.key} {bs.protocol} ready={len(bs.ready)}/{len(bs.backends)}{verdict} "
        f"[{', '.join(backends)}] from={_list(f'{k.kind}/{k.name}' for k in bs.sources)}"
    )


def _selector(sel: LabelSelector) -> str:
    terms = [f"{k}={v}" for k, v in sel.match_labels]
    for req in sel.match_expressions:
        values = ",".join(req.values)
        match req.operator:
            case Operator.In:
                terms.append(f"{req.key} in ({values})")
            case Operator.NotIn:
                terms.append(f"{req.key} notin ({values})")
            case Operator.Exists:
                terms.append(req.key)
            case Operator.DoesNotExist:
                terms.append(f"!{req.key}")
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
        return f"{port.protocol}/*"
    if port.end_port is not None:
        return f"{port.protocol}/{port.port}-{port.end_port}"
    return f"{port.protocol}/{port.port}"


def _rule(rule: PolicyRule) -> str:
    peers = _list(_peer(p) for p in rule.peers) if rule.peers else "*"
    ports = _list(_port(p) for p in rule.ports) if rule.ports else "*"
    return f"{{peers={peers} ports={ports}}}"


def _policy(np: NetworkPolicy) -> str:
    return (
        f"policy {np.key.ref} types={_list(np.policy_types)} pods={_selector(np.pod_selector)} "
        f"ingress={_list(_rule(r) for r in np.ingress)} egress={_list(_rule(r) for r in np.egress)}"
    )
