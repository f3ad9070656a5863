"""EndpointSlice (discovery.k8s.io/v1) and legacy Endpoints (core/v1): who serves a Service."""

from __future__ import annotations

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import check_name, read_ip, read_meta, read_port, read_protocol
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.model import (
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    IPAddress,
    TargetRef,
)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
_MAX_ENDPOINTS = 1000
_MAX_ADDRESSES = 100
_MAX_PORTS = 100


def parse_endpoint_slice(c: Checker, raw: Raw, location: Location) -> EndpointSlice:
    key, labels = read_meta(c, raw, "EndpointSlice", namespaced=True, name_rule=validation.dns1123_subdomain)
    address_type = c.string(raw, "addressType", "", required=True) or ""
    if address_type and address_type not in _ADDRESS_TYPES:
        c.fail(
            "addressType", f'Unsupported value: "{address_type}": supported values: "FQDN", "IPv4", "IPv6"'
        )
        address_type = ""
    entries = c.objects(raw, "endpoints", "")
    if len(entries) > _MAX_ENDPOINTS:
        c.fail("endpoints", f"Too many: {len(entries)}: must have at most {_MAX_ENDPOINTS} items")
    endpoints = tuple(_endpoint(c, path, entry, address_type) for path, entry in entries)
    port_entries = c.objects(raw, "ports", "")
    if len(port_entries) > _MAX_PORTS:
        c.fail("ports", f"Too many: {len(port_entries)}: must have at most {_MAX_PORTS} items")
    return EndpointSlice(
        key=key,
        labels=labels,
        service_name=dict(labels).get(SERVICE_NAME_LABEL),
        address_type=address_type,
        endpoints=endpoints,
        ports=_ports(c, port_entries, name_required=False, port_required=False),
        location=location,
    )


def _endpoint(c: Checker, path: str, raw: Raw, address_type: str) -> Endpoint:
    texts = c.strings(raw, "addresses", path)
    if not texts:
        c.fail(at(path, "addresses"), "must contain at least 1 address")
    elif len(texts) > _MAX_ADDRESSES:
        c.fail(at(path, "addresses"), f"Too many: {len(texts)}: must have at most {_MAX_ADDRESSES} items")
    addresses: list[IPAddress] = []
    for apath, text in texts:
        if address_type == "FQDN":
            check_name(c, text, apath, validation.dns1123_subdomain)
            continue
        ip = read_ip(c, text, apath)
        if ip is not None and address_type and f"IPv{ip.version}" != address_type:
            c.fail(apath, f"must be an {address_type} address, got {text}")
        elif ip is not None:
            addresses.append(ip)
    cond = c.mapping(raw, "conditions", path)
    cpath = at(path, "conditions")
    ready = c.boolean(cond, "ready", cpath)
    serving = c.boolean(cond, "serving", cpath)
    terminating = c.boolean(cond, "terminating", cpath)
    ready = True if ready is None else ready
    conditions = EndpointConditions(ready, ready if serving is None else serving, bool(terminating))
    node_name = c.string(raw, "nodeName", path)
    check_name(c, node_name, at(path, "nodeName"), validation.dns1123_subdomain)
    hints = c.mapping(raw, "hints", path)
    zones = sorted(
        zone
        for zpath, z in c.objects(hints, "forZones", at(path, "hints"))
        if (zone := c.string(z, "name", zpath, required=True))
    )
    return Endpoint(
        addresses=tuple(addresses),
        conditions=conditions,
        node_name=node_name or None,
        zone=c.string(raw, "zone", path) or None,
        hint_zones=tuple(zones),
        target_ref=_target_ref(c, raw, path),
    )


def _target_ref(c: Checker, raw: Raw, path: str) -> TargetRef | None:
    if raw.get("targetRef") is None:
        return None
    ref = c.mapping(raw, "targetRef", path)
    rpath = at(path, "targetRef")
    return TargetRef(
        kind=c.string(ref, "kind", rpath) or "",
        namespace=c.string(ref, "namespace", rpath) or "",
        name=c.string(ref, "name", rpath) or "",
    )


def _ports(
    c: Checker, entries: list[tuple[str, Raw]], *, name_required: bool, port_required: bool
) -> tuple[EndpointPort, ...]:
    ports: list[EndpointPort] = []
    names: set[str] = set()
    for path, raw in entries:
        name = c.string(raw, "name", path) or ""
        if name_required and not name:
            c.fail(at(path, "name"), "Required value")
        if name and (reason := validation.dns1123_label(name)) is not None:
            c.fail(at(path, "name"), reason)
        elif name in names and (name or not name_required):
            c.fail(at(path, "name"), f'Duplicate value: "{name}"')
        names.add(name)
        port = read_port(c, raw, "port", path, required=port_required)
        protocol = read_protocol(c, raw, path)
        app_protocol = c.string(raw, "appProtocol", path)
        check_name(c, app_protocol, at(path, "appProtocol"), validation.qualified_name)
        ports.append(EndpointPort(name, port, protocol, app_protocol or None))
    return tuple(ports)


def parse_endpoints(c: Checker, raw: Raw, location: Location) -> Endpoints:
    key, labels = read_meta(c, raw, "Endpoints", namespaced=True, name_rule=validation.dns1123_subdomain)
    subsets: list[EndpointSubset] = []
    for spath, subset in c.objects(raw, "subsets", ""):
        addresses = [
            address
            for field, ready in (("addresses", True), ("notReadyAddresses", False))
            for apath, entry in c.objects(subset, field, spath)
            if (address := _legacy_address(c, apath, entry, ready)) is not None
        ]
        port_entries = c.objects(subset, "ports", spath)
        ports = _ports(c, port_entries, name_required=len(port_entries) > 1, port_required=True)
        subsets.append(EndpointSubset(tuple(addresses), ports))
    return Endpoints(key, labels, tuple(subsets), location)


def _legacy_address(c: Checker, path: str, raw: Raw, ready: bool) -> EndpointAddress | None:
    text = c.string(raw, "ip", path, required=True)
    ip = read_ip(c, text, at(path, "ip")) if text else None
    node_name = c.string(raw, "nodeName", path)
    check_name(c, node_name, at(path, "nodeName"), validation.dns1123_subdomain)
    target_ref = _target_ref(c, raw, path)
    return EndpointAddress(ip, ready, node_name or None, target_ref) if ip is not None else None
