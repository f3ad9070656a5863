"""A validating fast path for the bulk kinds, Pods and EndpointSlices (100k of each at size M).

`fast_pod` and `fast_endpoint_slice` make the same checks as `parse_pod` and
`parse_endpoint_slice`, but without a `Checker`: no field path is formatted and no error is
recorded. They return the very object the full parser would return when the object is valid, and
None as soon as anything is unusual (a wrong type, an invalid value, an FQDN slice, a YAML subtype
of dict or str): the loader then runs the full parser, which reports every problem with object,
field path and reason. So the fast path can only be conservative, never wrong about an error; the
equivalence is tested on mutated objects (tests/compiler/frontend/test_frontend_fast.py).

Names that recur across objects (namespaces, node names, label keys and values, port names) are
validated once per run and remembered in bounded sets; IP texts map to shared address objects.
"""

from __future__ import annotations

import operator
from typing import Any

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import DEFAULT_NAMESPACE
from k8s_offload.compiler.frontend.model import (
    ContainerPort,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    IPAddress,
    Labels,
    ObjectKey,
    Pod,
    Protocol,
    TargetRef,
)
from k8s_offload.compiler.frontend.parse_endpoints import (
    _MAX_ADDRESSES,
    _MAX_ENDPOINTS,
    _MAX_PORTS,
    SERVICE_NAME_LABEL,
)


class _Slow(Exception):
    """Raised inside the fast path: leave this object to the full parser."""


_SLOW = _Slow()
_CACHE_LIMIT = 1 << 16
_PROTOCOLS = {p.value: p for p in Protocol}
_CONDITIONS = {
    (r, s, t): EndpointConditions(r, s, t)
    for r in (False, True)
    for s in (False, True)
    for t in (False, True)
}
"""Each of the eight condition combinations as one shared (frozen) object."""


class _ValidNames:
    """Values a rule accepted, so each distinct value is checked once; bounded, cleared when full."""

    __slots__ = ("rule", "seen")

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.seen: set[str] = set()

    def check(self, value: str) -> None:
        if value in self.seen:
            return
        if self.rule(value) is not None:
            raise _SLOW
        if len(self.seen) >= _CACHE_LIMIT:
            self.seen.clear()
        self.seen.add(value)


_namespaces = _ValidNames(validation.dns1123_label)
_node_names = _ValidNames(validation.dns1123_subdomain)
_label_keys = _ValidNames(validation.qualified_name)
_label_values = _ValidNames(validation.label_value)
_container_port_names = _ValidNames(validation.iana_svc_name)
_slice_port_names = _ValidNames(validation.dns1123_label)
_app_protocols = _ValidNames(validation.qualified_name)


_ips: dict[str, IPAddress] = {}
_IP_CACHE_LIMIT = 1 << 18
"""Enough for the pod IPs of size M, so a slice's addresses are the Pods' very objects."""


def _ip(text: str) -> IPAddress:
    ip = _ips.get(text)
    if ip is not None:
        return ip
    parsed = validation.parse_ip(text)
    if type(parsed) is str:
        raise _SLOW
    if len(_ips) >= _IP_CACHE_LIMIT:
        _ips.clear()
    _ips[text] = parsed  # type: ignore[assignment]
    return parsed  # type: ignore[return-value]


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """`Checker.mapping` for the common case: absent/null is empty, a plain dict is itself."""
    value = obj.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise _SLOW
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise _SLOW
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    """An optional string field; absent/null reads as ""."""
    value = obj.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise _SLOW
    return value


def _bool(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is None or type(value) is bool:
        return value
    raise _SLOW


def _protocol(obj: dict[str, Any]) -> Protocol:
    value = obj.get("protocol")
    if value is None or value == "":
        return Protocol.TCP
    if type(value) is not str:
        raise _SLOW
    member = _PROTOCOLS.get(value)
    if member is None:
        raise _SLOW
    return member


def _meta(raw: dict[str, Any], kind: str) -> tuple[ObjectKey, Labels]:
    """`read_meta` for a namespaced kind whose names are DNS subdomains (Pod, EndpointSlice)."""
    meta = raw.get("metadata")
    if type(meta) is not dict:
        raise _SLOW
    name = meta.get("name")
    if type(name) is not str or not name or validation.dns1123_subdomain(name) is not None:
        raise _SLOW
    namespace = meta.get("namespace")
    if namespace is None or namespace == "":
        namespace = DEFAULT_NAMESPACE
    elif type(namespace) is not str:
        raise _SLOW
    _namespaces.check(namespace)
    labels = meta.get("labels")
    if labels is None:
        return ObjectKey(kind, namespace, name), ()
    if type(labels) is not dict:
        raise _SLOW
    return ObjectKey(kind, namespace, name), _labels(labels)


_label_sets: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}


def _labels(labels: dict[Any, Any]) -> tuple[tuple[str, str], ...]:
    """Checked labels, sorted; a label map seen before (in the same order) is looked up, not re-checked.

    The cache is keyed by the exact items in the order given; only plain str keys and values
    ever enter it, and a str equals only a str, so a hit stands for the same check."""
    items = tuple(labels.items())
    try:
        known = _label_sets.get(items)
    except TypeError:  # an unhashable key or value (a list, a map): the full parser words it
        raise _SLOW from None
    if known is not None:
        return known
    for k, v in items:
        if type(k) is not str or type(v) is not str:
            raise _SLOW
        _label_keys.check(k)
        _label_values.check(v)
    ordered = tuple(sorted(items))
    if len(_label_sets) >= _CACHE_LIMIT:
        _label_sets.clear()
    _label_sets[items] = ordered
    return ordered


def fast_pod(raw: dict[str, Any], location: Location) -> Pod | None:
    """The Pod `parse_pod` would return for a valid object, or None (then use `parse_pod`)."""
    try:
        key, labels = _meta(raw, "Pod")
        spec = _dict(raw, "spec")
        status = _dict(raw, "status")
        node_name = _str(spec, "nodeName")
        if node_name:
            _node_names.check(node_name)
        host_network = bool(_bool(spec, "hostNetwork"))
        phase = _str(status, "phase")
        return Pod(
            key=key,
            labels=labels,
            node_name=node_name,
            ips=_pod_ips(status),
            host_network=host_network,
            phase=phase,
            ports=_container_ports(spec),
            location=location,
        )
    except _Slow:
        return None


def _pod_ips(status: dict[str, Any]) -> tuple[IPAddress, ...]:
    pod_ip = status.get("podIP")
    entries = status.get("podIPs")
    if type(entries) is list and len(entries) == 1 and type(pod_ip) is str and pod_ip:
        # The common shape: podIPs holds podIP alone.
        entry = entries[0]
        if type(entry) is dict and entry.get("ip") == pod_ip:
            ip = _ips.get(pod_ip)
            return (ip if ip is not None else _ip(pod_ip),)
    pod_ip = _str(status, "podIP")
    entries = _list(status, "podIPs")
    ips: list[IPAddress] = []
    for entry in entries:
        if type(entry) is not dict:
            raise _SLOW
        text = entry.get("ip")
        if type(text) is not str or not text:
            raise _SLOW
        ip = _ip(text)
        if ips and any(other.version == ip.version for other in ips):
            raise _SLOW
        ips.append(ip)
    if pod_ip and entries and entries[0].get("ip") == pod_ip:
        pass  # podIP repeats podIPs[0], which is already checked
    elif pod_ip:
        primary = _ip(pod_ip)
        if entries and ips[0] != primary:
            raise _SLOW
        if not entries:
            ips.append(primary)
    return tuple(ips)


def _container_ports(spec: dict[str, Any]) -> tuple[ContainerPort, ...]:
    containers = spec.get("containers")
    if containers is None:
        return ()
    if type(containers) is not list:
        raise _SLOW
    raw: list[tuple[str | None, int, str | None]] = []
    for container in containers:
        if type(container) is not dict:
            raise _SLOW
        entries = container.get("ports")
        if entries is None:
            continue
        if type(entries) is not list:
            raise _SLOW
        for port in entries:
            if type(port) is not dict:
                raise _SLOW
            name = port.get("name")
            number = port.get("containerPort")
            protocol = port.get("protocol")
            # Exact types before any lookup: True == 1 and 80.0 == 80 would hit a cached port.
            if type(number) is not int or not (name is None or type(name) is str):
                raise _SLOW
            if not (protocol is None or type(protocol) is str):
                raise _SLOW
            raw.append((name, number, protocol))
    key = tuple(raw)
    known = _port_lists.get(key)
    if known is None:
        known = _checked_ports(key)
        if len(_port_lists) >= _CACHE_LIMIT:
            _port_lists.clear()
        _port_lists[key] = known
    return known


def _checked_ports(raw: tuple[tuple[str | None, int, str | None], ...]) -> tuple[ContainerPort, ...]:
    """A pod's container ports (all containers, in order) checked and sorted; the result depends
    on this sequence of (name, number, protocol) only, so pods with the same ports share it."""
    ports: list[ContainerPort] = []
    names: set[str] = set()
    for name, number, protocol in raw:
        known = _container_port_cache.get((name, number, protocol))
        if known is None:
            known = _container_port(name, number, protocol)
        if known.name:
            if known.name in names:
                raise _SLOW
            names.add(known.name)
        ports.append(known)
    if len(ports) > 1:
        ports.sort(key=_PORT_ORDER)  # the dataclass order, compared as plain tuples
    return tuple(ports)


_port_lists: dict[tuple[tuple[str | None, int, str | None], ...], tuple[ContainerPort, ...]] = {}
_PORT_ORDER = operator.attrgetter("name", "port", "protocol")
_container_port_cache: dict[tuple[str | None, int, str | None], ContainerPort] = {}


def _container_port(name: str | None, number: int, protocol: str | None) -> ContainerPort:
    """A checked container port from its raw fields, remembered: most pods repeat a few ports."""
    if name:
        _container_port_names.check(name)
    if not 1 <= number <= 65535:
        raise _SLOW
    port = ContainerPort(name or "", number, _protocol({"protocol": protocol}))
    if len(_container_port_cache) >= _CACHE_LIMIT:
        _container_port_cache.clear()
    _container_port_cache[(name, number, protocol)] = port
    return port


def fast_endpoint_slice(raw: dict[str, Any], location: Location) -> EndpointSlice | None:
    """The EndpointSlice `parse_endpoint_slice` would return for a valid IPv4 or IPv6 slice, or None."""
    try:
        key, labels = _meta(raw, "EndpointSlice")
        address_type = raw.get("addressType")
        if address_type == "IPv4":
            version = 4
        elif address_type == "IPv6":
            version = 6
        else:
            raise _SLOW  # FQDN, missing or invalid: rare, and the full parser words the errors
        entries = _list(raw, "endpoints")
        if len(entries) > _MAX_ENDPOINTS:
            raise _SLOW
        endpoints = tuple([_endpoint(entry, version) for entry in entries])
        port_entries = _list(raw, "ports")
        if len(port_entries) > _MAX_PORTS:
            raise _SLOW
        return EndpointSlice(
            key=key,
            labels=labels,
            service_name=dict(labels).get(SERVICE_NAME_LABEL),
            address_type=address_type,
            endpoints=endpoints,
            ports=_slice_ports(port_entries),
            location=location,
        )
    except _Slow:
        return None


def _endpoint(raw: Any, version: int) -> Endpoint:
    if type(raw) is not dict:
        raise _SLOW
    texts = raw.get("addresses")
    if type(texts) is not list or not texts or len(texts) > _MAX_ADDRESSES:
        raise _SLOW
    addresses: list[IPAddress] = []
    for text in texts:
        if type(text) is not str:
            raise _SLOW
        ip = _ips.get(text) or _ip(text)
        if ip.version != version:
            raise _SLOW
        addresses.append(ip)
    cond = raw.get("conditions")
    if cond is None:
        conditions = _CONDITIONS[(True, True, False)]
    elif type(cond) is dict:
        ready = cond.get("ready")
        serving = cond.get("serving")
        terminating = cond.get("terminating")
        if ready is None:
            ready = True
        elif type(ready) is not bool:
            raise _SLOW
        if serving is None:
            serving = ready
        elif type(serving) is not bool:
            raise _SLOW
        if terminating is None:
            terminating = False
        elif type(terminating) is not bool:
            raise _SLOW
        conditions = _CONDITIONS[(ready, serving, terminating)]
    else:
        raise _SLOW
    node_name = raw.get("nodeName")
    if node_name is not None:
        if type(node_name) is not str:
            raise _SLOW
        if node_name:
            _node_names.check(node_name)
    hints = raw.get("hints")
    zones: tuple[str, ...] = ()
    if hints is not None:
        zones = _hint_zones(hints)
    zone = raw.get("zone")
    if zone is not None and type(zone) is not str:
        raise _SLOW
    ref = raw.get("targetRef")
    target_ref = None
    if ref is not None:
        if type(ref) is not dict:
            raise _SLOW
        kind = ref.get("kind")
        namespace = ref.get("namespace")
        name = ref.get("name")
        if type(kind) is not str or type(namespace) is not str or type(name) is not str:
            target_ref = _target_ref(ref)  # an absent or null field, or a wrong type
        else:
            target_ref = TargetRef(kind=kind, namespace=namespace, name=name)
    return Endpoint(
        addresses=tuple(addresses),
        conditions=conditions,
        node_name=node_name or None,
        zone=zone or None,
        hint_zones=zones,
        target_ref=target_ref,
    )


def _hint_zones(hints: Any) -> tuple[str, ...]:
    if type(hints) is not dict:
        raise _SLOW
    zones: list[str] = []
    for z in _list(hints, "forZones"):
        if type(z) is not dict:
            raise _SLOW
        zone_name = z.get("name")
        if type(zone_name) is not str or not zone_name:
            raise _SLOW
        zones.append(zone_name)
    zones.sort()
    return tuple(zones)


def _target_ref(ref: dict[str, Any]) -> TargetRef:
    return TargetRef(kind=_str(ref, "kind"), namespace=_str(ref, "namespace"), name=_str(ref, "name"))


def _slice_ports(entries: list[Any]) -> tuple[EndpointPort, ...]:
    ports: list[EndpointPort] = []
    names: set[str] = set()
    for raw in entries:
        if type(raw) is not dict:
            raise _SLOW
        name = _str(raw, "name")
        if name:
            _slice_port_names.check(name)
        if name in names:
            raise _SLOW
        names.add(name)
        port = raw.get("port")
        if port is not None and (type(port) is not int or not 1 <= port <= 65535):
            raise _SLOW
        protocol = _protocol(raw)
        app_protocol = _str(raw, "appProtocol")
        if app_protocol:
            _app_protocols.check(app_protocol)
        ports.append(EndpointPort(name, port, protocol, app_protocol or None))
    return tuple(ports)
