"""Namespace and Pod: the objects that say which addresses exist and where they live."""

from __future__ import annotations

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import check_name, read_ip, read_meta, read_port, read_protocol
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.model import ContainerPort, IPAddress, Namespace, Pod


def parse_namespace(c: Checker, raw: Raw, location: Location) -> Namespace:
    key, labels = read_meta(c, raw, "Namespace", namespaced=False, name_rule=validation.dns1123_label)
    return Namespace(key, labels, location)


def parse_pod(c: Checker, raw: Raw, location: Location) -> Pod:
    key, labels = read_meta(c, raw, "Pod", namespaced=True, name_rule=validation.dns1123_subdomain)
    spec = c.mapping(raw, "spec", "")
    status = c.mapping(raw, "status", "")
    node_name = c.string(spec, "nodeName", "spec") or ""
    check_name(c, node_name, "spec.nodeName", validation.dns1123_subdomain)
    host_network = bool(c.boolean(spec, "hostNetwork", "spec"))
    phase = c.string(status, "phase", "status") or ""
    return Pod(
        key=key,
        labels=labels,
        node_name=node_name,
        ips=_pod_ips(c, status),
        host_network=host_network,
        phase=phase,
        ports=_container_ports(c, spec),
        location=location,
    )


def _pod_ips(c: Checker, status: Raw) -> tuple[IPAddress, ...]:
    """status.podIPs (primary first, one per family), falling back to the older status.podIP."""
    pod_ip = c.string(status, "podIP", "status")
    entries = c.objects(status, "podIPs", "status")
    ips: list[IPAddress] = []
    for path, entry in entries:
        text = c.string(entry, "ip", path, required=True)
        if text is None:
            continue
        ip = read_ip(c, text, at(path, "ip"))
        if ip is None:
            continue
        if any(other.version == ip.version for other in ips):
            c.fail(path, "may specify no more than one IP for each IP family")
            continue
        ips.append(ip)
    if pod_ip and entries and entries[0][1].get("ip") == pod_ip:
        pass  # the usual case: podIP repeats podIPs[0], which is already checked
    elif pod_ip:
        primary = read_ip(c, pod_ip, "status.podIP")
        if entries and primary is not None and ips and ips[0] != primary:
            c.fail("status.podIPs[0].ip", f"must be the same as status.podIP ({primary}), got {ips[0]}")
        if not entries and primary is not None:
            ips.append(primary)
    return tuple(ips)


def _container_ports(c: Checker, spec: Raw) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    names: set[str] = set()
    for cpath, container in c.objects(spec, "containers", "spec"):
        for path, port in c.objects(container, "ports", cpath):
            name = c.string(port, "name", path) or ""
            if name:
                if (reason := validation.iana_svc_name(name)) is not None:
                    c.fail(at(path, "name"), reason)
                elif name in names:
                    c.fail(at(path, "name"), f'Duplicate value: "{name}"')
                names.add(name)
            number = read_port(c, port, "containerPort", path, required=True)
            protocol = read_protocol(c, port, path)
            if number is not None:
                ports.append(ContainerPort(name, number, protocol))
    return tuple(sorted(ports))
