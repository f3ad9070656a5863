"""The textual IR back into IR objects: `parse(dump(ir)) == ir` for the cluster IR and the policy
rule IR (docs/ir.md, "Textual IR"), so `--emit ir` output can be compiled (`--from-ir`) and pass
tests can be written as text (tests/compiler/passes/*.ir).

Each line is parsed on its own by one LALR grammar (ir.lark), so every bad line of a file is
reported, as `FILE:LINE:COLUMN: reason`, in one run; `#` lines and blank lines are skipped. The
grammar shapes a line; this module checks the values (addresses, MACs, enums, port ranges) with
the front end's own rules where they apply, and `load_ir` runs `check_ir` on the result and
reports its findings at the lines they name.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, v_args

from k8s_offload.compiler.errors import IRVerificationError, Location, ManifestError, ManifestErrors
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.fields import Checker
from k8s_offload.compiler.frontend.model import (
    ContainerPort,
    EndpointConditions,
    IPAddress,
    IPFamily,
    IPNetwork,
    Labels,
    ObjectKey,
    Protocol,
    ServiceType,
)
from k8s_offload.compiler.frontend.nodefacts import CPU_PORT, Gateway, NodeFacts, PodAttachment, SpecialPorts
from k8s_offload.compiler.frontend.parse_tiers import (
    parse_admin_network_policy,
    parse_baseline_admin_network_policy,
    parse_cluster_network_policy,
)
from k8s_offload.compiler.frontend.policy import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    SelectorRequirement,
)
from k8s_offload.compiler.frontend.sources import SourceError, read_path
from k8s_offload.compiler.frontend.tiers import (
    ANP_KIND,
    API_VERSIONS,
    BANP_KIND,
    CNP_KIND,
    ClusterPolicy,
    Node,
)
from k8s_offload.compiler.ir.check import check_ir
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    FrontendKind,
    NamespaceInfo,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.ir.rules import (
    PORT_MAX,
    PORT_MIN,
    AddressSet,
    PodIsolation,
    PolicyIR,
    PortRange,
    Rule,
    RuleSet,
)

E = TypeVar("E", bound=StrEnum)
_TIER_PARSERS = {
    ANP_KIND: parse_admin_network_policy,
    BANP_KIND: parse_baseline_admin_network_policy,
    CNP_KIND: parse_cluster_network_policy,
}

SECTIONS = (
    "node",
    "attach",
    "namespace",
    "pod",
    "service",
    "frontend",
    "backends",
    "policy",
    "tier",
    "k8snode",
    "hostnetwork",
    "diagnostic",
    "isolation",
)
"""Line kinds in the order they must appear (a `rule` line belongs to the `isolation` above it)."""
_COLLECTIONS = {
    "namespace": "namespaces",
    "pod": "pods",
    "service": "services",
    "frontend": "frontends",
    "backends": "backend_sets",
    "policy": "network_policies",
    "tier": "cluster_policies",
    "k8snode": "nodes",
    "hostnetwork": "host_network_pods",
    "diagnostic": "diagnostics",
}
"""Line kind -> the `ClusterIR` field its nodes go to (the names `check_ir` reports)."""
_TOKEN_NAMES = {
    "WORD": "a word",
    "STRING": "a quoted string",
    "INT": "a number",
    "ADDR": "an IP address",
    "NET": "a network (ADDRESS/LENGTH)",
    "MAC": "a MAC address",
    "ENDPOINT": "ADDRESS:PORT",
    "CONDITIONS": "endpoint conditions",
    "$END": "end of line",
    "<END-OF-FILE>": "end of line",
}
_MAX_DIGITS = 20
_AFFINITY_MAX = 86400
_SEVERITIES = ("error", "warning", "info")
_CONDITIONS = ("ready", "serving", "terminating")


@cache
def _parser() -> Lark:
    """The LALR parser with `_ToIR` applied as it parses (no tree is built: about three times
    faster than transforming a tree afterwards)."""
    grammar = resources.files("k8s_offload.compiler.ir").joinpath("ir.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", maybe_placeholders=False, transformer=_TRANSFORMER)


class _Error(Exception):
    """A bad value: the token it is at (for the column) and the reason."""

    def __init__(self, token: Token | None, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Ref:
    namespace: str
    name: str
    token: Token

    def key(self, kind: str) -> ObjectKey:
        return ObjectKey(kind, self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class ParsedIR:
    """What a text held: the cluster IR (None without a `node` line), the policy rule IR (None
    without `isolation` lines), and the line of every node, for messages about them."""

    cluster: ClusterIR | None
    policy: PolicyIR | None
    lines: dict[tuple[str, int], int] = field(default_factory=dict)
    """(collection, index) -> line number: ("pods", 3), ("isolations", 0), ("isolations[0].rules",
    2), ("node", 0), ..."""


# ---- values -----------------------------------------------------------------------------------
def _int(tok: Token, low: int, high: int, what: str) -> int:
    if len(tok) > _MAX_DIGITS or not low <= int(tok) <= high:
        raise _Error(tok, f"{what} must be between {low} and {high}, got {tok}")
    return int(tok)


def _enum(tok: Token, enum: type[E], what: str) -> E:
    try:
        return enum(str(tok))
    except ValueError:
        raise _Error(tok, f"{what} must be one of {', '.join(enum)}, got {str(tok)!r}") from None


def _ip(tok: Token) -> IPAddress:
    parsed = validation.parse_ip(str(tok))
    if isinstance(parsed, str):
        raise _Error(tok, f"bad address: {parsed}")
    return parsed


def _net(tok: Token) -> IPNetwork:
    parsed = validation.parse_cidr(str(tok))
    if isinstance(parsed, str):
        raise _Error(tok, f"bad network: {parsed}")
    return parsed


def _mac(tok: Token) -> str:
    return str(tok).lower()


def _device_port(tok: Token) -> int:
    return _int(tok, 0, CPU_PORT - 1, "a device port")


def _endpoint(tok: Token) -> tuple[IPAddress, int, Token]:
    text = str(tok)
    host, _, port = text.rpartition(":")
    address = _ip(Token.new_borrow_pos("ADDR", host.strip("[]"), tok))
    if (address.version == 6) != host.startswith("["):
        raise _Error(tok, f"{text}: write IPv6 endpoints as [ADDRESS]:PORT and IPv4 ones as ADDRESS:PORT")
    return address, _int(Token.new_borrow_pos("INT", port, tok), 1, 65535, "a port"), tok


# ---- lines ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Opt:
    """An optional part of a line (`zone=`, `port=`, ...), by the field it sets."""

    name: str
    value: Any


def _split(parts: Sequence[Any]) -> tuple[dict[str, Any], list[Any]]:
    """Optional parts by name, and the others in order."""
    return {p.name: p.value for p in parts if isinstance(p, _Opt)}, [
        p for p in parts if not isinstance(p, _Opt)
    ]


def _conditions(tok: Token) -> EndpointConditions:
    words = str(tok).split(",")
    if words == ["down"]:
        return EndpointConditions(False, False, False)
    if any(w not in _CONDITIONS for w in words) or words != sorted(set(words), key=_CONDITIONS.index):
        raise _Error(
            tok, f"conditions must be some of ready,serving,terminating in this order, or down; got {tok}"
        )
    return EndpointConditions("ready" in words, "serving" in words, "terminating" in words)


def _v4(value: tuple[IPAddress | None, Token]) -> ipaddress.IPv4Address | None:
    address, tok = value
    if address is not None and not isinstance(address, ipaddress.IPv4Address):
        raise _Error(tok, f"ipv4= must be an IPv4 address, got {address}")
    return address


def _v6(value: tuple[IPAddress | None, Token]) -> ipaddress.IPv6Address | None:
    address, tok = value
    if address is not None and not isinstance(address, ipaddress.IPv6Address):
        raise _Error(tok, f"ipv6= must be an IPv6 address, got {address}")
    return address


def _policy_port(protocol: Token, value: Token) -> PolicyPort:
    proto = _enum(protocol, Protocol, "protocol")
    if value.type == "STAR":
        return PolicyPort(proto, None, None)
    text = str(value)
    if value.type == "WORD" and (m := re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", text)):
        port = _int(Token.new_borrow_pos("INT", m[1], value), 1, 65535, "a port")
        end = _int(Token.new_borrow_pos("INT", m[2], value), port, 65535, "endPort") if m[2] else None
        return PolicyPort(proto, port, end)
    if (reason := validation.iana_svc_name(text)) is not None:
        raise _Error(value, f"a named port {reason}")
    return PolicyPort(proto, text, None)


def _port_range(protocol: Token, span: Token) -> PortRange:
    proto = _enum(Token.new_borrow_pos("WORD", str(protocol).upper(), protocol), Protocol, "protocol")
    m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", str(span))
    if m is None:
        raise _Error(span, f"a port range must be LOW or LOW-HIGH, got {span}")
    low = _int(Token.new_borrow_pos("INT", m[1], span), PORT_MIN, PORT_MAX, "a port")
    high = _int(Token.new_borrow_pos("INT", m[2], span), low, PORT_MAX, "the range's end") if m[2] else low
    return PortRange(proto, low, high)


@v_args(inline=True)
class _ToIR(Transformer[Token, Any]):
    """Tree of one line -> (line kind, node); values are checked on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.location = ""
        """The line being parsed, `SOURCE:LINE` (NetworkPolicy locations); set before each parse."""

    # shared
    def start(self, item: tuple[str, Any]) -> tuple[str, Any]:
        return item

    def string(self, tok: Token) -> Token:
        if tok.type != "STRING":
            return tok
        try:
            value = json.loads(str(tok))
        except ValueError:
            raise _Error(tok, f"bad string {tok}: write it as a JSON string") from None
        return Token.new_borrow_pos("STRING", value, tok)

    def opt_string(self, tok: Token) -> Token | None:
        return None if tok.type == "NONE" else tok

    def ref(self, first: Token, second: Token | None = None) -> _Ref:
        return _Ref("", str(first), first) if second is None else _Ref(str(first), str(second), first)

    def refs(self, *refs: _Ref) -> list[_Ref]:
        return list(refs)

    def label_key(self, first: Token, second: Token | None = None) -> Token:
        return first if second is None else Token.new_borrow_pos("WORD", f"{first}/{second}", first)

    def label(self, key: Token, value: Token | None = None) -> tuple[str, str]:
        return (str(key), "" if value is None else str(value))

    def labels(self, *pairs: tuple[str, str]) -> Labels:
        return tuple(pairs)

    def addrs(self, *toks: Token) -> tuple[IPAddress, ...]:
        return tuple(_ip(t) for t in toks)

    def opt_addr(self, tok: Token) -> tuple[IPAddress | None, Token]:
        return (None if tok.type == "NONE" else _ip(tok)), tok

    # cluster IR
    def node(self, *parts: Any) -> tuple[str, NodeFacts]:
        opts, (name, ips, gateway, mac, ports) = _split(parts)
        v4 = gateway[0] if gateway else None
        v6 = gateway[1] if len(gateway) == 2 else None
        if (
            not isinstance(v4, ipaddress.IPv4Address)
            or len(gateway) > 2
            or (v6 is not None and not isinstance(v6, ipaddress.IPv6Address))
        ):
            raise _Error(mac, "gateway= must be [IPV4] or [IPV4,IPV6]")
        name_text = None if name is None else str(name)
        return "node", NodeFacts(name_text, ips, Gateway(v4, v6, _mac(mac)), ports, (), opts.get("zone"))

    def ports(self, arp: Token, host: Token, uplink: Token) -> SpecialPorts:
        return SpecialPorts(_device_port(arp), _device_port(host), _device_port(uplink))

    def zone(self, value: Token) -> _Opt:
        return _Opt("zone", str(value))

    def interface(self, value: Token) -> _Opt:
        return _Opt("interface", str(value))

    def host_interface(self, value: Token) -> _Opt:
        return _Opt("host_interface", str(value))

    def container_id(self, value: Token) -> _Opt:
        return _Opt("container_id", str(value))

    def attach(self, pod: _Ref, port: Token, mac: Token, *extra: _Opt) -> tuple[str, PodAttachment]:
        opts, _ = _split(extra)
        return "attach", PodAttachment(pod.namespace, pod.name, _device_port(port), _mac(mac), **opts)

    def namespace(self, name: Token, origin: Token, labels: Labels) -> tuple[str, NamespaceInfo]:
        key = ObjectKey("Namespace", "", str(name))
        return "namespace", NamespaceInfo(key, labels, origin.type == "DECLARED")

    def device_port(self, tok: Token) -> _Opt:
        return _Opt("port", _device_port(tok))

    def pod_mac(self, tok: Token) -> _Opt:
        return _Opt("mac", _mac(tok))

    def container_ports(self, *ports: ContainerPort) -> tuple[ContainerPort, ...]:
        return ports

    def container_port(self, name: Token | None, protocol: Token, port: Token) -> ContainerPort:
        number = _int(port, 1, 65535, "a container port")
        return ContainerPort("" if name is None else str(name), number, _enum(protocol, Protocol, "protocol"))

    def pod(self, *parts: Any) -> tuple[str, PodEndpoint]:
        opts, (key, v4, v6, node, place, labels, ports) = _split(parts)
        node_name = "" if node is None else str(node)
        pod = PodEndpoint(
            key.key("Pod"), labels, _v4(v4), _v6(v6), node_name, place.type == "LOCAL",
            opts.get("port"), opts.get("mac"), ports,
        )  # fmt: skip
        return "pod", pod

    def service(self, *parts: Any) -> tuple[str, ServiceInfo]:
        opts, rest = _split(parts)
        key, type_, vips = rest[:3]
        flags = {str(t) for t in rest[3:]}
        svc = ServiceInfo(
            key.key("Service"), _enum(type_, ServiceType, "type"), vips, "headless" in flags,
            opts.get("external_name"), external_local=opts.get("external_local", False),
            internal_local=opts.get("internal_local", False), affinity_timeout=opts.get("affinity"),
            topology="topology" in flags,
        )  # fmt: skip
        return "service", svc

    def external_name(self, value: Token) -> _Opt:
        return _Opt("external_name", str(value))

    def external_policy(self, value: Token) -> _Opt:
        if value != "Local":
            raise _Error(value, f"externalTrafficPolicy= is printed only as Local, got {value}")
        return _Opt("external_local", True)

    def internal_policy(self, value: Token) -> _Opt:
        if value != "Local":
            raise _Error(value, f"internalTrafficPolicy= is printed only as Local, got {value}")
        return _Opt("internal_local", True)

    def affinity(self, seconds: Token) -> _Opt:
        return _Opt("affinity", _int(seconds, 1, _AFFINITY_MAX, "the affinity timeout"))

    def set_key(self, service: _Ref, port_name: Token | None, family: Token) -> BackendSetKey:
        name = "" if port_name is None else str(port_name)
        return BackendSetKey(service.key("Service"), name, _enum(family, IPFamily, "family"))

    def frontend(
        self, endpoint: Token, protocol: Token, key: BackendSetKey, kind: Token | None = None
    ) -> Any:
        vip, port, _ = _endpoint(endpoint)
        fe = ServiceFrontend(
            key.service, vip, key.family, _enum(protocol, Protocol, "protocol"), port, key.port_name,
            FrontendKind.ClusterIP if kind is None else _enum(kind, FrontendKind, "frontend kind"),
        )  # fmt: skip
        return "frontend", fe

    def backend_list(self, *backends: Callable[[str], Backend]) -> list[Callable[[str], Backend]]:
        return list(backends)

    def sources(self, *sources: Callable[[str], ObjectKey]) -> list[Callable[[str], ObjectKey]]:
        return list(sources)

    def source(self, kind: Token, first: Token, second: Token | None = None) -> Callable[[str], ObjectKey]:
        """The key, once the namespace it defaults to (the Service's) is known."""
        if second is not None:
            return lambda _ns: ObjectKey(str(kind), str(first), str(second))
        return lambda ns: ObjectKey(str(kind), ns, str(first))

    def local_owner(self, pod: _Ref) -> _Opt:
        return _Opt("owner", (True, pod.key("Pod")))

    def remote_owner(self, pod: _Ref) -> _Opt:
        return _Opt("owner", (False, pod.key("Pod")))

    def local_without_pod(self, _tok: Token) -> _Opt:
        return _Opt("owner", (True, None))

    def backend_node(self, value: Token) -> _Opt:
        return _Opt("node", str(value))

    def zones(self, *zones: Token) -> _Opt:
        return _Opt("zones", tuple(str(z) for z in zones))

    def backend_source(self, source: Callable[[str], ObjectKey]) -> _Opt:
        return _Opt("source", source)

    def backend(self, endpoint: Token, conditions: Token, *extra: _Opt) -> Callable[[str], Backend]:
        address, port, _ = _endpoint(endpoint)
        cond = _conditions(conditions)
        opts, _ = _split(extra)
        local, pod = opts.get("owner", (False, None))
        source = opts.get("source")

        def make(ns: str) -> Backend:
            return Backend(
                address, port, cond, local, pod, opts.get("node"), opts.get("zones", ()),
                None if source is None else source(ns),
            )  # fmt: skip

        return make

    def backends(self, key: BackendSetKey, protocol: Token, ready: Token, total: Token, *rest: Any) -> Any:
        reject = bool(rest) and isinstance(rest[0], Token)
        makers, sources = rest[-2:]
        ns = key.service.namespace
        bs = BackendSet(key, _enum(protocol, Protocol, "protocol"), tuple(m(ns) for m in makers),
                        tuple(s(ns) for s in sources))  # fmt: skip
        if (int(ready), int(total)) != (len(bs.ready), len(bs.backends)):
            raise _Error(ready, f"ready={ready}/{total} but {len(bs.ready)} of the {len(bs.backends)} "
                         "backends listed are ready")  # fmt: skip
        if reject != bs.reject:
            word = "reject is missing" if bs.reject else "reject is wrong"
            raise _Error(ready, f"{word}: the set has {'no' if bs.reject else 'a'} backend that takes new "
                         "connections")  # fmt: skip
        return "backends", bs

    def policy_types(self, *types: Token) -> tuple[PolicyType, ...]:
        return tuple(_enum(t, PolicyType, "a policy type") for t in types)

    def policy_labels(self, labels: Labels) -> _Opt:
        return _Opt("labels", labels)

    def values(self, *values: Token) -> tuple[str, ...]:
        return tuple(str(v) for v in values)

    def equals(self, key: Token, value: Token | None = None) -> tuple[str, str]:
        return (str(key), "" if value is None else str(value))

    def in_(self, key: Token, values: tuple[str, ...]) -> SelectorRequirement:
        return SelectorRequirement(str(key), Operator.In, values)

    def not_in(self, key: Token, values: tuple[str, ...]) -> SelectorRequirement:
        return SelectorRequirement(str(key), Operator.NotIn, values)

    def exists(self, key: Token) -> SelectorRequirement:
        return SelectorRequirement(str(key), Operator.Exists, ())

    def does_not_exist(self, key: Token) -> SelectorRequirement:
        return SelectorRequirement(str(key), Operator.DoesNotExist, ())

    def selector(self, *terms: tuple[str, str] | SelectorRequirement) -> LabelSelector:
        labels = tuple(t for t in terms if isinstance(t, tuple))
        return LabelSelector(labels, tuple(t for t in terms if isinstance(t, SelectorRequirement)))

    def excepts(self, *nets: Token) -> tuple[IPNetwork, ...]:
        return tuple(_net(n) for n in nets)

    def ip_peer(self, cidr: Token, excepts: tuple[IPNetwork, ...] = ()) -> PolicyPeer:
        return PolicyPeer(None, None, IPBlock(_net(cidr), excepts))

    def namespace_pod_peer(self, ns: LabelSelector, pods: LabelSelector) -> PolicyPeer:
        return PolicyPeer(pods, ns, None)

    def namespace_peer(self, ns: LabelSelector) -> PolicyPeer:
        return PolicyPeer(None, ns, None)

    def pod_peer(self, pods: LabelSelector) -> PolicyPeer:
        return PolicyPeer(pods, None, None)

    def api_peers(self, *peers: PolicyPeer) -> tuple[PolicyPeer, ...]:
        return peers

    def api_port(self, protocol: Token, value: Token) -> PolicyPort:
        return _policy_port(protocol, value)

    def api_ports(self, *ports: PolicyPort) -> tuple[PolicyPort, ...]:
        return ports

    def api_rule(self, peers: Any, ports: Any) -> PolicyRule:
        return PolicyRule(
            () if isinstance(peers, Token) else peers, () if isinstance(ports, Token) else ports
        )

    def api_rules(self, *rules: PolicyRule) -> tuple[PolicyRule, ...]:
        return rules

    def policy(self, *parts: Any) -> tuple[str, NetworkPolicy]:
        opts, (key, types, pods, ingress, egress) = _split(parts)
        np = NetworkPolicy(key.key("NetworkPolicy"), opts.get("labels", ()), pods, types, ingress, egress,
                           Location(self.location))  # fmt: skip
        return "policy", np

    def tier(self, tok: Token) -> tuple[str, ClusterPolicy]:
        """The object through the front end's own parser and checks (frontend/parse_tiers.py)."""
        try:
            raw = json.loads(str(tok))
        except ValueError:
            raise _Error(tok, "a tier line holds one JSON object (the policy's manifest)") from None
        kind = raw.get("kind") if isinstance(raw, dict) else None
        parse = _TIER_PARSERS.get(kind) if isinstance(kind, str) else None
        if parse is None or not isinstance(kind, str) or raw.get("apiVersion") != API_VERSIONS[kind]:
            raise _Error(tok, f"not a cluster policy manifest: kind {kind!r}")
        errors: list[ManifestError] = []
        c = Checker(Location(self.location), f"{kind}", errors)
        policy = parse(c, raw, Location(self.location))
        if errors:
            raise _Error(tok, "; ".join(f"{e.path}: {e.reason}" for e in errors))
        return "tier", policy

    def k8snode(self, name: Token, labels: Labels, addrs: tuple[IPAddress, ...]) -> tuple[str, Node]:
        return "k8snode", Node(ObjectKey("Node", "", str(name)), labels, addrs, Location(self.location))

    def hostnetwork(self, pod: _Ref) -> tuple[str, ObjectKey]:
        return "hostnetwork", pod.key("Pod")

    def diagnostic(self, severity: Token, kind: Token, subject: _Ref, message: Token) -> Any:
        if severity not in _SEVERITIES:
            raise _Error(severity, f"severity must be one of {', '.join(_SEVERITIES)}, got {str(severity)!r}")
        text = self.string(message)
        return "diagnostic", Diagnostic(subject.key(str(kind)), str(text), str(severity))

    # policy rule IR
    def isolation(
        self, direction: Token, pod: _Ref, addrs: tuple[IPAddress, ...], policies: list[_Ref]
    ) -> Any:
        if direction not in ("ingress", "egress"):
            raise _Error(direction, f"direction must be ingress or egress, got {str(direction)!r}")
        way = PolicyType(direction.capitalize())
        keys = tuple(p.key("NetworkPolicy") for p in policies)
        return "isolation", PodIsolation(pod.key("Pod"), way, addrs, RuleSet(()), keys)

    def peers(self, *toks: Token) -> AddressSet | None:
        if toks[0].type == "ANY":
            return None
        if toks[0].type == "NONE":
            return AddressSet()
        return AddressSet([_net(t) for t in toks])

    def port_ranges(self, *toks: Token) -> tuple[PortRange, ...] | None:
        if toks and toks[0].type == "ANY":
            return None
        return tuple(_port_range(toks[i], toks[i + 1]) for i in range(0, len(toks), 2))

    def rule(self, index: Token, peers: AddressSet | None, ports: tuple[PortRange, ...] | None) -> Any:
        return "rule", (index, Rule(peers, ports))


_TRANSFORMER = _ToIR()
"""One instance for the parser (lark calls it while parsing); parsing is not reentrant."""


# ---- files ------------------------------------------------------------------------------------
def _message(exc: UnexpectedInput, line: str) -> tuple[int, str]:
    """(column, reason) of a syntax error."""
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = sorted({_TOKEN_NAMES.get(t, "") or _literal(t) for t in exc.expected})
        hint = f"; expected {', '.join(expected[:8])}" if expected else ""
        if tok.type == "$END":
            return len(line.rstrip()) + 1, f"unexpected end of line{hint}"
        found = line[exc.column - 1 :].split(" ", 1)[0] if exc.column > 0 else str(tok)
        return exc.column, f"unexpected {found!r}{hint}"
    if isinstance(exc, UnexpectedCharacters):
        return exc.column, f"unexpected character {line[exc.pos_in_stream or 0]!r}"
    return exc.column, str(exc)


@cache
def _literals() -> dict[str, str]:
    return {t.name: t.pattern.value for t in _parser().terminals if t.pattern.type == "str"}


def _literal(name: str) -> str:
    value = _literals().get(name)
    return repr(value) if value is not None else name.lower()


def parse(text: str, source: str = "<ir>") -> ParsedIR:
    """Every node of the text; raises ManifestErrors with one `SOURCE:LINE:COLUMN: reason` per
    bad line (or misplaced one)."""
    errors: list[ManifestError] = []

    def fail(line: int, column: int, reason: str) -> None:
        errors.append(ManifestError(Location(f"{source}:{line}:{column}"), "", "", reason))

    items: dict[str, list[Any]] = {kind: [] for kind in SECTIONS}
    where: dict[tuple[str, int], int] = {}
    rules: list[tuple[int, int, Rule]] = []  # (isolation index, line, rule)
    rank = 0
    for number, line in enumerate(text.split("\n"), 1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        try:
            _TRANSFORMER.location = f"{source}:{number}"
            parsed: Any = _parser().parse(line)  # the transformer's (kind, node), not a tree
            kind, value = parsed
        except UnexpectedInput as exc:
            column, reason = _message(exc, line)
            fail(number, column, reason)
            continue
        except _Error as exc:
            column = exc.token.column if exc.token is not None and exc.token.column else 1
            fail(number, column, exc.reason)
            continue
        column = len(line) - len(line.lstrip()) + 1
        section = "isolation" if kind == "rule" else kind
        if SECTIONS.index(section) < rank:
            fail(number, column, f"a {kind} line must come before every {SECTIONS[rank]} line (docs/ir.md)")
            continue
        rank = SECTIONS.index(section)
        if kind == "rule":
            index, rule = value
            if not items["isolation"]:
                fail(number, column, "a rule line must follow an isolation line")
                continue
            owner = len(items["isolation"]) - 1
            expected = sum(1 for o, _, _ in rules if o == owner)
            if int(index) != expected:
                fail(number, index.column or column, f"rule {index} out of order: this is rule {expected}")
                continue
            where[(f"isolations[{owner}].rules", expected)] = number
            rules.append((owner, number, rule))
            continue
        if kind == "node" and items["node"]:
            fail(number, column, "a second node line: there is one node per IR")
            continue
        if kind != "node" and kind in SECTIONS[1:12] and not items["node"]:
            fail(number, column, f"a {kind} line before the node line: the cluster IR starts with it")
            continue
        where[(_COLLECTIONS.get(kind, kind + "s") if kind != "node" else "node", len(items[kind]))] = number
        items[kind].append(value)
    if errors:
        raise ManifestErrors(errors)
    cluster = None
    if items["node"]:
        facts: NodeFacts = items["node"][0]
        node = NodeFacts(facts.node_name, facts.node_ips, facts.gateway, facts.ports, tuple(items["attach"]),
                         facts.zone)  # fmt: skip
        cluster = ClusterIR(node, **{_COLLECTIONS[kind]: tuple(items[kind]) for kind in SECTIONS[2:12]})
    policy = None
    if items["isolation"]:
        per_set: list[list[Rule]] = [[] for _ in items["isolation"]]
        for owner, _, rule in rules:
            per_set[owner].append(rule)
        policy = PolicyIR(
            tuple(
                PodIsolation(iso.pod, iso.direction, iso.addresses, RuleSet(tuple(r)), iso.policies)
                for iso, r in zip(items["isolation"], per_set, strict=True)
            )
        )
    return ParsedIR(cluster, policy, where)


def parse_cluster_ir(text: str, source: str = "<ir>") -> ClusterIR:
    """The cluster IR of a text (`dump`'s output); a text without one is an error."""
    parsed = parse(text, source)
    if parsed.cluster is None:
        raise ManifestErrors(
            [ManifestError(Location(source), "", "", "no cluster IR (it starts with a node line)")]
        )
    return parsed.cluster


def parse_policy_ir(text: str, source: str = "<ir>") -> PolicyIR:
    """The policy rule IR of a text (`dump_rules`'s output); no isolation line is an empty IR."""
    parsed = parse(text, source)
    return parsed.policy if parsed.policy is not None else PolicyIR(())


_PROBLEM = re.compile(r"\s*(\w+)\[(\d+)\]")


def check(parsed: ParsedIR, source: str) -> None:
    """`check_ir` on a parsed cluster IR, its findings as `SOURCE:LINE:1: problem` at the line of
    the node each names (cross-references, order, uniqueness: what one line cannot show)."""
    if parsed.cluster is None:
        return
    try:
        check_ir(parsed.cluster)
    except IRVerificationError as err:
        errors = []
        for problem in err.problems:
            m = _PROBLEM.match(problem)
            line = parsed.lines.get((m[1], int(m[2]))) if m else None
            place = f"{source}:{line}:1" if line is not None else source
            errors.append(ManifestError(Location(place), "", "", problem))
        raise ManifestErrors(errors) from None


def load_ir(path: str | Path, text: str | None = None) -> ParsedIR:
    """Read (with the front end's bounds: size, NUL, devices), parse and check an IR file
    (`offload-compile --from-ir`)."""
    source = str(path)
    if text is None:
        try:
            text = read_path(path)
        except SourceError as exc:
            raise ManifestErrors([ManifestError(Location(source), "", "", f"cannot read: {exc}")]) from None
    parsed = parse(text, source)
    check(parsed, source)
    return parsed
