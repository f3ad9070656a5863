"""Why a trace verdict is what it is: the Kubernetes objects behind every table a frame hit.

Nothing here evaluates NetworkPolicy or Service semantics again. Each step starts from what the
interpreter did (the entry it hit: its key, its action and arguments, rule bits) and looks up
the provenance the compiler recorded for it: the IR node a key or argument names (a frontend, a
backend with the EndpointSlice it came from, a pod and its node facts entry), and for policy the
pod's isolation with the NetworkPolicy rules its rule set was resolved from (`RuleSource`). The
only test applied to a packet is membership of its peer and port in those resolved rules, to
say which API rule of the ones merged into a hit rule admits it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from k8s_offload.compiler.bundle.values import PROTOCOLS, unmapped
from k8s_offload.compiler.frontend.model import IPAddress, ObjectKey, Protocol
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.frontend.tiers import Tier
from k8s_offload.compiler.ir.dump import conditions
from k8s_offload.compiler.ir.model import BackendSet, ClusterIR, PodEndpoint, ServiceFrontend
from k8s_offload.compiler.ir.rules import PodIsolation, RuleSource
from k8s_offload.compiler.ir.tiers import PodTiers
from k8s_offload.compiler.lower.bundle import Lowered
from k8s_offload.compiler.lower.policy import RULE_BITS
from k8s_offload.target.context import TableEvent
from k8s_offload.target.interpreter import PacketResult


@dataclass(frozen=True, slots=True)
class Named:
    """An object a step names: kind, `namespace/name` (or the node's name), and in what role."""

    kind: str
    name: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.detail})"


@dataclass(slots=True)
class Step:
    """One stage of one hop: a line for people, fields for tools, the objects it names."""

    stage: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    named: tuple[Named, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "text": self.text,
            **self.fields,
            "objects": [n.as_json() for n in self.named],
        }


@dataclass(frozen=True, slots=True)
class Packet:
    """The fields of the frame a hop started with that the steps speak of."""

    src: IPAddress
    dst: IPAddress
    protocol: Protocol
    sport: int
    dport: int


class NodeView:
    """One node's compiled state, indexed by the keys table entries carry."""

    def __init__(self, name: str, ir: ClusterIR, lowered: Lowered, facts_known: bool) -> None:
        self.name = name
        self.ir = ir
        self.lowered = lowered
        self.facts_known = facts_known
        """False for a node trace only knows from the manifests (default placement assumed)."""
        self.pod_by_port = {p.port: p for p in ir.pods if p.local and p.port is not None}

    @cached_property
    def pods_by_ip(self) -> dict[IPAddress, PodEndpoint]:
        return {ip: p for p in self.ir.pods for ip in p.ips}

    @cached_property
    def frontends(self) -> dict[tuple[IPAddress, Protocol, int], ServiceFrontend]:
        return {(fe.vip, fe.protocol, fe.port): fe for fe in self.ir.frontends}

    @cached_property
    def backend_sets(self) -> dict[object, BackendSet]:
        return {bs.key: bs for bs in self.ir.backend_sets}

    @cached_property
    def isolations(self) -> dict[tuple[ObjectKey, PolicyType], PodIsolation]:
        return {(iso.pod, iso.direction): iso for iso in self.lowered.policy.isolations}

    @cached_property
    def tiers(self) -> dict[tuple[ObjectKey, PolicyType], PodTiers]:
        return {(pt.pod, pt.direction): pt for pt in self.lowered.tiers}

    @cached_property
    def attachments(self) -> dict[tuple[str, str], int]:
        return {(a.namespace, a.name): i for i, a in enumerate(self.ir.node.pods)}

    def placement(self, pod: PodEndpoint) -> tuple[str, Named | None]:
        """Where the pod's device port comes from, and the node facts entry behind it."""
        if not self.facts_known:
            return f"no node facts for {self.name}: default placement assumed", None
        index = self.attachments.get((pod.key.namespace, pod.key.name))
        if self.ir.node.node_name is None or index is None:
            return "default placement, no node facts", None
        where = f"pods[{index}]"
        return f"node facts of {self.name}, {where}", Named("NodeFacts", self.name, where)

    def port_role(self, port: int) -> tuple[dict[str, Any], str, tuple[Named, ...]]:
        """(fields, text, named) for a device port: a local pod, or one of the special ports."""
        pod = self.pod_by_port.get(port)
        if pod is not None:
            text, entry = self.placement(pod)
            fields = {"port": port, "role": "pod", "pod": pod.key.ref, "facts": text}
            return fields, f"Pod {pod.key.ref} ({text})", (entry,) if entry else ()
        ports = self.ir.node.ports
        roles = {ports.uplink: "uplink", ports.host: "host", ports.arp_proxy: "arpProxy"}
        role = roles.get(port, "other")
        if role == "other":
            return {"port": port, "role": role, "pod": None, "facts": ""}, "no pod or special port", ()
        known = self.facts_known and self.ir.node.node_name is not None
        facts = (
            f"node facts of {self.name}, ports.{role}" if known else f"default ports.{role}, no node facts"
        )
        named = (Named("NodeFacts", self.name, f"ports.{role}"),) if known else ()
        return {"port": port, "role": role, "pod": None, "facts": facts}, f"{role} ({facts})", named


def _events(result: PacketResult) -> dict[str, TableEvent]:
    return {ev.table.rsplit(".", 1)[-1]: ev for ev in result.trace.tables}


def _protocol(number: int) -> Protocol | None:
    name = PROTOCOLS.get(number, "")
    return Protocol(name.upper()) if name.upper() in Protocol.__members__ else None


def explain_hop(
    view: NodeView,
    in_port: int,
    packet: Packet,
    result: PacketResult,
    drop_reason: str,
    reply: bool,
    after: Packet | None = None,
) -> list[Step]:
    """The steps of one hop through one node's pipeline, in pipeline order. `after`: the frame the
    hop sent on (None when dropped or answered): address translation shows in it, since the
    backend of an established flow and the frontend of a reply come from the flow cache, not from
    a table entry."""
    events = _events(result)
    fields, text, named = view.port_role(in_port)
    steps = [Step("in", f"port {in_port}: {text}", fields, named)]
    fe, frontend_step = _frontend(view, events)
    if frontend_step is not None:
        steps.append(frontend_step)
    peer_dst, dport = packet.dst, packet.dport
    translated = None
    if not reply and after is not None and (after.dst, after.dport) != (packet.dst, packet.dport):
        translated = (after.dst, after.dport)
    backend_step, target = _backend(view, translated, fe or view.frontends.get(_frontend_key(packet)))
    if backend_step is not None:
        steps.append(backend_step)
    if target is not None:
        peer_dst, dport = target
    src = packet.src
    nat = events.get("nat_source")
    if nat is not None and nat.hit and frontend_step is not None and frontend_step.fields.get("masquerade"):
        src = unmapped(nat.args[0])
    policy = [
        _tier(view, events, PolicyType.Egress, Tier.Admin),
        _policy(view, events, PolicyType.Egress, src, peer_dst, packet.protocol, dport),
        _tier(view, events, PolicyType.Egress, Tier.Baseline),
        _tier(view, events, PolicyType.Ingress, Tier.Admin),
        _policy(view, events, PolicyType.Ingress, peer_dst, src, packet.protocol, dport),
        _tier(view, events, PolicyType.Ingress, Tier.Baseline),
    ]
    steps.extend(s for s in policy if s is not None)
    if reply and "eg_pod" not in events and "in_pod" not in events:
        steps.append(
            Step(
                "flow cache",
                "the reply of a flow the request committed: no policy stage applies",
            )
        )
    rev = None
    if reply and after is not None and (after.src, after.sport) != (packet.src, packet.sport):
        rev = _reverse_nat(view, (after.src, after.sport), packet.protocol)
    if rev is not None:
        steps.append(rev)
    steps.append(_out(view, result, drop_reason))
    return steps


def _frontend_key(packet: Packet) -> tuple[IPAddress, Protocol, int]:
    return packet.dst, packet.protocol, packet.dport


FRONTEND_TABLES = ("svc_frontend_internal", "svc_options", "svc_frontend")
"""The tables keyed by a new flow's frontend (VIP, protocol, port)."""


def _frontend(view: NodeView, events: dict[str, TableEvent]) -> tuple[ServiceFrontend | None, Step | None]:
    hits = {t: ev for t in FRONTEND_TABLES if (ev := events.get(t)) is not None and ev.hit and ev.key}
    if not hits:
        return None, None
    key = next(iter(hits.values())).key
    assert key is not None
    vip, proto, port = unmapped(key[0]), _protocol(key[1]), key[2]
    where = f"[{vip}]:{port}" if vip.version == 6 else f"{vip}:{port}"
    options = hits.get("svc_options")
    chosen = hits.get("svc_frontend")
    action = options.action if options is not None and options.action != "set_options" else ""
    action = action or (chosen.action if chosen is not None else "set_options")
    fe = view.frontends.get((vip, proto, port)) if proto is not None else None
    if fe is None:
        return None, Step("service", f"{where}: a frontend entry ({action}) with no frontend in the IR")
    svc = fe.service.ref
    port_name = fe.port_name or "-"
    text = f"{where}/{fe.protocol} is the {fe.kind} frontend of Service {svc}, port {port_name}"
    internal = "svc_frontend_internal" in hits
    if internal:
        text += (
            "; from a pod or the host: its cluster endpoints (externalTrafficPolicy Local is for the uplink)"
        )
    masquerade = options is not None and options.action == "set_options" and bool(options.args[0])
    outcome = {
        "reject_no_endpoint": "; no endpoint takes new connections: rejected (ICMP port unreachable), "
        "as kube-proxy does",
        "drop_no_local_endpoint": "; Local traffic policy and no endpoint on this node: dropped, "
        "as kube-proxy does",
    }.get(action, "")
    if masquerade:
        outcome = "; source masqueraded (externalTrafficPolicy Cluster)"
    fields = {
        "frontend": f"{where}/{fe.protocol}",
        "frontend_kind": str(fe.kind),
        "service": svc,
        "port_name": fe.port_name,
        "action": action,
        "table": "svc_frontend_internal" if internal else "svc_frontend",
        "masquerade": masquerade,
    }
    return fe, Step("service", text + outcome, fields, (Named("Service", svc, f"port {port_name}"),))


def _backend(
    view: NodeView, translated: tuple[IPAddress, int] | None, fe: ServiceFrontend | None
) -> tuple[Step | None, tuple[IPAddress, int] | None]:
    """The backend a flow was translated to (a selector member's address and port for a new flow,
    the flow cache's for an established one) and the endpoint it is."""
    if translated is None:
        return None, None
    address, port = translated
    where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    bset = view.backend_sets.get(fe.backend_set) if fe is not None else None
    backend = (
        next((b for b in bset.backends if (b.address, b.port) == (address, port)), None) if bset else None
    )
    if bset is None or backend is None:
        return Step("backend", where, {"backend": where}), (address, port)
    owner = f"Pod {backend.pod.ref}" if backend.pod is not None else "an address of no known pod"
    on = f" on {backend.node_name}" if backend.node_name else ""
    ready = len(bset.ready)
    state = conditions(backend.conditions)
    text = f"{where} is {owner}{on} ({state}; one of {ready} ready in {bset.key})"
    named: list[Named] = []
    if backend.source is not None:
        text += f", an endpoint of {backend.source}"
        named.append(Named(backend.source.kind, backend.source.ref, f"endpoint {address}"))
    fields = {
        "backend": where,
        "pod": backend.pod.ref if backend.pod is not None else None,
        "node_name": backend.node_name,
        "conditions": conditions(backend.conditions),
        "source": str(backend.source) if backend.source is not None else None,
        "backend_set": str(bset.key),
    }
    return Step("backend", text, fields, tuple(named)), (address, port)


def _names(sources: Iterable[RuleSource], way: str) -> list[Named]:
    out: list[Named] = []
    for s in sources:
        n = Named("NetworkPolicy", s.policy.ref, f"{way}[{s.index}]")
        if n not in out:
            out.append(n)
    return out


TIER_STAGE_TABLES = {Tier.Admin: "admin", Tier.Baseline: "baseline"}
TIER_VERDICTS = {"tier_allow": "allowed", "tier_deny": "denied", "tier_pass": "passed on"}


def _tier(view: NodeView, events: dict[str, TableEvent], direction: PolicyType, tier: Tier) -> Step | None:
    """The tier's decision, when its table ran: the first rule of the pod's tier set that the
    flow matches (the entry's priority gives its bit, lower/tiers.py), or none."""
    prefix = "eg" if direction is PolicyType.Egress else "in"
    ev = events.get(f"{prefix}_{TIER_STAGE_TABLES[tier]}")
    pod_ev = events.get(f"{prefix}_tier_pod")
    if ev is None or pod_ev is None or pod_ev.key is None:
        return None
    way = direction.value.lower()
    stage = f"{way} {tier.value.lower()} tier"
    pod = view.pods_by_ip.get(unmapped(pod_ev.key[0]))
    pt = view.tiers.get((pod.key, direction)) if pod is not None else None
    if pod is None or pt is None:
        return Step(stage, "a tier entry with no tier rules in the IR", {"verdict": "unknown"})
    if not ev.hit:
        text = f"{pod.key.ref}: no {tier.value.lower()} tier rule matches: the next tier decides"
        return Step(stage, text, {"verdict": "no match", "pod": pod.key.ref})
    bit = RULE_BITS - ev.priority
    entries = pt.tier_set.entries
    if not 0 <= bit < len(entries):
        return Step(stage, f"{pod.key.ref}: a tier entry of unknown rule bit {bit}", {"verdict": "unknown"})
    entry = entries[bit]
    verdict = TIER_VERDICTS.get(ev.action.rsplit(".", 1)[-1].removeprefix(f"{prefix}_"), "unknown")
    rule = entry.describe(direction)
    text = f"{pod.key.ref}: {verdict} by {rule}"
    if verdict == "passed on":
        text += " (Pass: NetworkPolicy, then the baseline tier decide)" if tier is Tier.Admin else " (Pass)"
    named = Named(
        entry.policy.kind, entry.policy.name, f"rule {entry.index + 1} ({way}): {entry.action.value}"
    )
    fields = {"verdict": verdict, "pod": pod.key.ref, "rule": rule, "tier": tier.value}
    return Step(stage, text, fields, (named,))


def _policy(
    view: NodeView,
    events: dict[str, TableEvent],
    direction: PolicyType,
    own: IPAddress,
    peer: IPAddress,
    protocol: Protocol,
    port: int,
) -> Step | None:
    way = direction.value.lower()
    prefix = "eg" if direction is PolicyType.Egress else "in"
    stage = f"{way} policy"
    ev = events.get(f"{prefix}_pod")
    if ev is None:
        return None
    if not ev.hit or ev.key is None:
        pod = view.pods_by_ip.get(own)
        if pod is not None and pod.key in view.ir.host_network_pods:
            text = f"{pod.key.ref} is a host-network pod: no NetworkPolicy or cluster policy selects it"
            return Step(stage, text, {"verdict": "host network", "pod": pod.key.ref})
        if pod is not None and pod.local:
            text = f"{pod.key.ref}: no NetworkPolicy selects it for {way}: not isolated, allowed"
            named = (Named("Pod", pod.key.ref, f"not isolated for {way}"),)
            return Step(stage, text, {"verdict": "not isolated", "pod": pod.key.ref}, named)
        what = f"Pod {pod.key.ref} ({own})" if pod is not None else str(own)
        text = f"{what} is not local to {view.name}: its own node applies its {way} policy"
        return Step(stage, text, {"verdict": "not local", "pod": pod.key.ref if pod else None})
    address = unmapped(ev.key[0])
    pod = view.pods_by_ip.get(address)
    iso = view.isolations.get((pod.key, direction)) if pod is not None else None
    if pod is None or iso is None:
        return Step(
            stage, f"{address}: isolated by an entry with no isolation in the IR", {"verdict": "unknown"}
        )
    _, any_peer, any_port = ev.args
    peer_bits = _bits(events.get(f"{prefix}_peer_rules"))
    port_bits = _bits(events.get(f"{prefix}_port_rules"))
    allowed = (peer_bits | any_peer) & (port_bits | any_port)
    to = "to" if direction is PolicyType.Egress else "from"
    flow = f"{protocol}/{port} {to} {peer}"
    fields: dict[str, Any] = {
        "pod": pod.key.ref,
        "policies": [k.ref for k in iso.policies],
        "peer": str(peer),
        "rule_bits": _indices(allowed),
    }
    if allowed:
        hit = [
            s
            for s in iso.sources
            if any(q.admits_peer(peer) and q.admits_port(protocol, port) for q in s.rules)
        ]
        rules = _names(hit, way)
        by = ", ".join(f"NetworkPolicy {n.name} {n.detail}" for n in rules) or (
            "a rule of " + ", ".join(f"NetworkPolicy {k.ref}" for k in iso.policies)
        )
        text = f"{pod.key.ref}: {flow} allowed by {by} (compiled rule {_bit_text(allowed)})"
        fields["verdict"] = "allowed"
        fields["rules"] = [n.as_json() for n in rules]
        return Step(stage, text, fields, tuple(rules))
    peer_only = _names((s for s in iso.sources if any(q.admits_peer(peer) for q in s.rules)), way)
    port_only = _names((s for s in iso.sources if any(q.admits_port(protocol, port) for q in s.rules)), way)
    policies = ", ".join(f"NetworkPolicy {k.ref}" for k in iso.policies)
    text = f"{pod.key.ref}: {flow} denied: isolated by {policies}, and no rule allows it"
    if peer_only:
        text += "; rules for this peer (other ports): " + ", ".join(f"{n.name} {n.detail}" for n in peer_only)
    if port_only:
        text += "; rules for this port (other peers): " + ", ".join(f"{n.name} {n.detail}" for n in port_only)
    fields["verdict"] = "denied"
    fields["peer_rules"] = [n.as_json() for n in peer_only]
    fields["port_rules"] = [n.as_json() for n in port_only]
    deciding = tuple(
        Named("NetworkPolicy", k.ref, f"isolates {pod.key.ref}, no rule allows") for k in iso.policies
    )
    return Step(stage, text, fields, deciding)


def _bits(ev: TableEvent | None) -> int:
    return int(ev.args[0]) if ev is not None and ev.hit and ev.args else 0


def _indices(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _bit_text(mask: int) -> str:
    return ", ".join(str(i) for i in _indices(mask))


def _reverse_nat(view: NodeView, source: tuple[IPAddress, int], protocol: Protocol) -> Step | None:
    """A reply's source rewritten to the frontend its request was sent to (the flow cache)."""
    vip, port = source
    where = f"[{vip}]:{port}" if vip.version == 6 else f"{vip}:{port}"
    fe = view.frontends.get((vip, protocol, port))
    if fe is None:
        return Step("reverse nat", f"reply source rewritten to {where}", {"frontend": where})
    text = f"reply source rewritten to {where}, the frontend of Service {fe.service.ref} it was sent to"
    fields = {"frontend": where, "service": fe.service.ref}
    return Step(
        "reverse nat", text, fields, (Named("Service", fe.service.ref, f"port {fe.port_name or '-'}"),)
    )


def _out(view: NodeView, result: PacketResult, drop_reason: str) -> Step:
    if result.egress_port is None:
        return Step("drop", drop_reason, {"reason": drop_reason})
    fields, text, named = view.port_role(result.egress_port)
    if drop_reason:  # answered on the port it came from: rejected
        return Step("out", f"port {result.egress_port}: {drop_reason} back to {text}", fields, named)
    return Step("out", f"port {result.egress_port}: {text}", fields, named)
