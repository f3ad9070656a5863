"""Node facts (docs/node-facts.md): what no Kubernetes object says about this node's device."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from k8s_offload.compiler.errors import Location, ManifestError, ManifestErrors
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import check_name, read_ip, unsupported
from k8s_offload.compiler.frontend.fields import Checker, Raw, at, shown, type_name
from k8s_offload.compiler.frontend.model import IPAddress, ip_sort_key
from k8s_offload.compiler.frontend.sources import SourceError, read_path
from k8s_offload.compiler.frontend.syntax import SyntaxFailure, load_yaml

API_VERSION = "offload.k8s-offload.dev/v1alpha1"
KIND = "NodeFacts"
CPU_PORT = 510
DROP_PORT = 511
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True, slots=True)
class Gateway:
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address | None
    mac: str
    """Lowercase, colon-separated."""


@dataclass(frozen=True, slots=True)
class SpecialPorts:
    arp_proxy: int
    host: int
    uplink: int


@dataclass(frozen=True, slots=True, order=True)
class PodAttachment:
    """Where the CNI plugin plugged one local pod into the device."""

    namespace: str
    name: str
    port: int
    mac: str
    interface: str | None = None
    host_interface: str | None = None
    container_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeFacts:
    node_name: str | None
    """None only for the defaults used without a node.yaml (then every pod with an IP is local)."""
    node_ips: tuple[IPAddress, ...]
    gateway: Gateway
    ports: SpecialPorts
    pods: tuple[PodAttachment, ...]
    """Sorted by (namespace, name)."""
    zone: str | None = None
    """The node's topology.kubernetes.io/zone label; topology hints apply only when it is known."""


DEFAULT_GATEWAY = Gateway(
    ipv4=ipaddress.IPv4Address("169.254.1.1"), ipv6=ipaddress.IPv6Address("fe80::1"), mac="02:00:00:00:00:01"
)
DEFAULT_PORTS = SpecialPorts(arp_proxy=1, host=2, uplink=3)
DEFAULT_NODE_FACTS = NodeFacts(None, (), DEFAULT_GATEWAY, DEFAULT_PORTS, ())


def load_node_facts(path: str | Path) -> NodeFacts:
    """Read and validate a node.yaml; raise ManifestErrors listing every problem."""
    errors: list[ManifestError] = []
    facts = read_node_facts(path, errors)
    if errors or facts is None:
        raise ManifestErrors(errors)
    return facts


def read_node_facts(path: str | Path, errors: list[ManifestError]) -> NodeFacts | None:
    """Read and validate a node.yaml with the manifests' bounds; problems go to `errors`."""
    location = Location(str(path))
    try:
        documents = list(load_yaml(read_path(path)))
    except SourceError as exc:
        errors.append(ManifestError(location, "", "", str(exc)))
        return None
    except SyntaxFailure as exc:
        errors.append(ManifestError(location, "", exc.problem.field_path, exc.problem.with_position()))
        return None
    if len(documents) != 1:
        errors.append(ManifestError(location, "", "", f"must hold one YAML document, got {len(documents)}"))
        return None
    if documents[0].problems:
        errors.extend(
            ManifestError(location, "", p.field_path, p.with_position()) for p in documents[0].problems
        )
        return None
    try:
        return parse_node_facts(documents[0].value, location)
    except ManifestErrors as exc:
        errors.extend(exc.errors)
        return None


def parse_node_facts(raw: object, location: Location) -> NodeFacts:
    errors: list[ManifestError] = []
    if not isinstance(raw, dict):
        raise ManifestErrors([ManifestError(location, "", "", f"must be an object, got {type_name(raw)}")])
    name = raw.get("nodeName")
    c = Checker(location, f"{KIND} {name if isinstance(name, str) and name else '<no name>'}", errors)
    if raw.get("apiVersion") != API_VERSION:
        c.fail("apiVersion", unsupported(_text(raw.get("apiVersion")), (API_VERSION,)))
    if raw.get("kind") != KIND:
        c.fail("kind", unsupported(_text(raw.get("kind")), (KIND,)))
    node_name = c.string(raw, "nodeName", "", required=True)
    check_name(c, node_name, "nodeName", validation.dns1123_subdomain)
    node_ips = tuple(
        sorted((ip for p, t in c.strings(raw, "nodeIPs", "") if (ip := read_ip(c, t, p))), key=ip_sort_key)
    )
    gateway = _gateway(c, c.mapping(raw, "gateway", ""))
    if "gateway" not in raw:
        c.fail("gateway", "Required value")
    if "ports" not in raw:
        c.fail("ports", "Required value")
    ports = _special_ports(c, c.mapping(raw, "ports", ""))
    pods = _pods(c, raw, ports, gateway.mac)
    zone = c.string(raw, "zone", "") or None
    if errors:
        raise ManifestErrors(errors)
    return NodeFacts(node_name, node_ips, gateway, ports, pods, zone)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else shown(value)


def _mac(c: Checker, obj: Raw, key: str, path: str) -> str:
    text = c.string(obj, key, path, required=True)
    if text is None:
        return ""
    mac = text.lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        c.fail(at(path, key), f"must be a MAC address like 02:00:00:00:00:0a, got {shown(text)}")
    elif int(mac[:2], 16) & 1:
        c.fail(at(path, key), f"must be a unicast MAC address, got {shown(text)}")
    return mac


def _gateway(c: Checker, raw: Raw) -> Gateway:
    ipv4 = ipv6 = None
    if (text := c.string(raw, "ipv4", "gateway", required=True)) is not None:
        ipv4 = read_ip(c, text, "gateway.ipv4")
        if ipv4 is not None and ipv4.version != 4:
            c.fail("gateway.ipv4", f"must be an IPv4 address, got {text}")
    if (text := c.string(raw, "ipv6", "gateway")) is not None:
        ipv6 = read_ip(c, text, "gateway.ipv6")
        if ipv6 is not None and ipv6.version != 6:
            c.fail("gateway.ipv6", f"must be an IPv6 address, got {text}")
    mac = _mac(c, raw, "mac", "gateway")
    v4 = ipv4 if isinstance(ipv4, ipaddress.IPv4Address) else DEFAULT_GATEWAY.ipv4
    v6 = ipv6 if isinstance(ipv6, ipaddress.IPv6Address) else None
    return Gateway(v4, v6, mac)


def _port(c: Checker, obj: Raw, key: str, path: str) -> int:
    value = c.integer(obj, key, path, required=True)
    if value is None:
        return -1
    if not 0 <= value < CPU_PORT:
        c.fail(
            at(path, key), f"must be between 0 and 509 (510 is the CPU port, 511 the drop port), got {value}"
        )
    return value


def _special_ports(c: Checker, raw: Raw) -> SpecialPorts:
    ports = SpecialPorts(
        _port(c, raw, "arpProxy", "ports"), _port(c, raw, "host", "ports"), _port(c, raw, "uplink", "ports")
    )
    seen: dict[int, str] = {}
    for key, value in (("arpProxy", ports.arp_proxy), ("host", ports.host), ("uplink", ports.uplink)):
        if value >= 0 and value in seen:
            c.fail(f"ports.{key}", f"Duplicate value: {value} is also ports.{seen[value]}")
        seen.setdefault(value, key)
    return ports


def _pods(c: Checker, raw: Raw, special: SpecialPorts, gateway_mac: str) -> tuple[PodAttachment, ...]:
    """Each pod's port and MAC are its own: a MAC seen twice, or the gateway's, would make frames
    of one interface look like another's (the ARP/NDP proxy answers for the gateway's MAC)."""
    specials = {special.arp_proxy: "arpProxy", special.host: "host", special.uplink: "uplink"}
    by_mac: dict[str, str] = {}
    by_port: dict[int, str] = {}
    by_name: dict[tuple[str, str], str] = {}
    pods: list[PodAttachment] = []
    for path, entry in c.objects(raw, "pods", ""):
        namespace = c.string(entry, "namespace", path, required=True) or ""
        check_name(c, namespace, at(path, "namespace"), validation.dns1123_label)
        name = c.string(entry, "name", path, required=True) or ""
        check_name(c, name, at(path, "name"), validation.dns1123_subdomain)
        port = _port(c, entry, "port", path)
        if port in specials:
            c.fail(
                at(path, "port"), f"must differ from the special ports, got {port} (ports.{specials[port]})"
            )
        elif port >= 0 and port in by_port:
            c.fail(at(path, "port"), f"Duplicate value: {port} is also used by {by_port[port]}")
        by_port.setdefault(port, path)
        if (namespace, name) in by_name:
            c.fail(path, f"Duplicate value: pod {namespace}/{name} is also {by_name[(namespace, name)]}")
        by_name.setdefault((namespace, name), path)
        mac = _mac(c, entry, "mac", path)
        if mac and gateway_mac and mac == gateway_mac:
            c.fail(at(path, "mac"), f"must differ from the gateway's MAC, got {mac} (gateway.mac)")
        elif mac and mac in by_mac:
            c.fail(at(path, "mac"), f"Duplicate value: {mac} is also the MAC of {by_mac[mac]}")
        by_mac.setdefault(mac, path)
        optional = [c.string(entry, key, path) for key in ("interface", "hostInterface", "containerId")]
        pods.append(PodAttachment(namespace, name, port, mac, *optional))
    return tuple(sorted(pods))
