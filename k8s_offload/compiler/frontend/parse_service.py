"""Service (core/v1), checked with the API server's rules for the fields the compiler reads."""

from __future__ import annotations

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import (
    check_name,
    read_choice,
    read_enum,
    read_ip,
    read_labels,
    read_meta,
    read_port,
    read_protocol,
)
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.model import (
    IPAddress,
    IPFamily,
    LoadBalancerIngress,
    Service,
    ServicePort,
    ServiceType,
)

_MAX_AFFINITY_TIMEOUT = 86400


def parse_service(c: Checker, raw: Raw, location: Location) -> Service:
    key, labels = read_meta(c, raw, "Service", namespaced=True, name_rule=validation.dns1035_label)
    spec = c.mapping(raw, "spec", "")
    type_ = read_enum(c, spec, "type", "spec", ServiceType, ServiceType.ClusterIP) or ServiceType.ClusterIP
    cluster_ips, headless = _cluster_ips(c, spec, type_)
    families = _ip_families(c, spec, cluster_ips)
    policy = read_choice(
        c, spec, "ipFamilyPolicy", "spec", ("SingleStack", "PreferDualStack", "RequireDualStack")
    )
    if policy == "SingleStack" and (len(families) > 1 or len(cluster_ips) > 1):
        c.fail(
            "spec.ipFamilyPolicy",
            "must be RequireDualStack or PreferDualStack when multiple IP families are specified",
        )
    ports = _ports(c, spec, type_)
    if not spec.get("ports") and not headless and type_ is not ServiceType.ExternalName:
        c.fail("spec.ports", "Required value")
    external_name = c.string(spec, "externalName", "spec")
    if type_ is ServiceType.ExternalName:
        if not external_name:
            c.fail("spec.externalName", "Required value")
        else:
            check_name(c, external_name.removesuffix("."), "spec.externalName", validation.dns1123_subdomain)
    external_ips = tuple(
        ip
        for path, text in c.strings(spec, "externalIPs", "spec")
        if (ip := read_ip(c, text, path)) is not None
    )
    affinity = read_choice(c, spec, "sessionAffinity", "spec", ("None", "ClientIP")) or "None"
    timeout = _affinity_timeout(c, spec, affinity)
    return Service(
        key=key,
        labels=labels,
        type=type_,
        cluster_ips=cluster_ips,
        headless=headless,
        ip_families=families,
        ip_family_policy=policy,
        ports=ports,
        selector=read_labels(c, spec, "selector", "spec"),
        external_name=external_name or None,
        external_ips=external_ips,
        session_affinity=affinity,
        session_affinity_timeout=timeout,
        external_traffic_policy=read_choice(c, spec, "externalTrafficPolicy", "spec", ("Cluster", "Local")),
        internal_traffic_policy=read_choice(c, spec, "internalTrafficPolicy", "spec", ("Cluster", "Local")),
        load_balancer_ingress=_lb_ingress(c, raw),
        location=location,
        traffic_distribution=c.string(spec, "trafficDistribution", "spec"),
        topology_mode=_topology_mode(c, raw),
    )


def _topology_mode(c: Checker, raw: Raw) -> str | None:
    """The topology annotation kube-proxy reads when trafficDistribution is unset."""
    annotations = c.string_map(c.mapping(raw, "metadata", ""), "annotations", "metadata")
    for name in ("service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints"):
        if name in annotations:
            return annotations[name]
    return None


def _cluster_ips(c: Checker, spec: Raw, type_: ServiceType) -> tuple[tuple[IPAddress, ...], bool]:
    """The VIPs and whether the Service is headless; clusterIPs wins, clusterIP must agree with it."""
    single = c.string(spec, "clusterIP", "spec")
    listed = c.strings(spec, "clusterIPs", "spec")
    if single and listed and listed[0][1] != single:
        c.fail("spec.clusterIPs[0]", f"must be equal to spec.clusterIP ({single}), got {listed[0][1]}")
    if not listed and single:
        listed = [("spec.clusterIP", single)]
    if type_ is ServiceType.ExternalName:
        if listed:
            c.fail(listed[0][0], "may not be set when `type` is 'ExternalName'")
        return (), False
    if any(text == "None" for _, text in listed):
        if len(listed) > 1:
            c.fail("spec.clusterIPs", 'must contain only "None" for a headless Service')
        return (), True
    if len(listed) > 2:
        c.fail("spec.clusterIPs", f"may only hold up to 2 values, got {len(listed)}")
    ips: list[IPAddress] = []
    for path, text in listed:
        ip = read_ip(c, text, path)
        if ip is None:
            continue
        if any(other.version == ip.version for other in ips):
            c.fail(path, "may specify no more than one IP for each IP family")
            continue
        ips.append(ip)
    return tuple(ips), False


def _ip_families(c: Checker, spec: Raw, cluster_ips: tuple[IPAddress, ...]) -> tuple[IPFamily, ...]:
    """spec.ipFamilies, checked against the VIPs index by index; derived from the VIPs when absent."""
    families: list[IPFamily] = []
    for path, text in c.strings(spec, "ipFamilies", "spec"):
        try:
            family = IPFamily(text)
        except ValueError:
            c.fail(path, f'Unsupported value: "{text}": supported values: "IPv4", "IPv6"')
            continue
        if family in families:
            c.fail(path, f'Duplicate value: "{text}"')
            continue
        families.append(family)
    if not families:
        return tuple(IPFamily.of(ip) for ip in cluster_ips)
    for i, (family, ip) in enumerate(zip(families, cluster_ips, strict=False)):
        if IPFamily.of(ip) is not family:
            c.fail(
                f"spec.clusterIPs[{i}]",
                f"expected an {family} address to match spec.ipFamilies[{i}], got {ip}",
            )
    return tuple(families)


def _ports(c: Checker, spec: Raw, type_: ServiceType) -> tuple[ServicePort, ...]:
    entries = c.objects(spec, "ports", "spec")
    ports: list[ServicePort] = []
    names: set[str] = set()
    numbers: set[tuple[int, str]] = set()
    for path, raw in entries:
        name = c.string(raw, "name", path) or ""
        if not name and len(entries) > 1:
            c.fail(at(path, "name"), "Required value")
        elif name:
            if (reason := validation.dns1123_label(name)) is not None:
                c.fail(at(path, "name"), reason)
            elif name in names:
                c.fail(at(path, "name"), f'Duplicate value: "{name}"')
            names.add(name)
        protocol = read_protocol(c, raw, path)
        port = read_port(c, raw, "port", path, required=True)
        if port is not None:
            if (port, protocol) in numbers:
                c.fail(path, f"Duplicate value: port {port}, protocol {protocol}")
            numbers.add((port, protocol))
        target = _target_port(c, raw, path, port)
        node_port = c.integer(raw, "nodePort", path)
        if node_port:
            if type_ in (ServiceType.ClusterIP, ServiceType.ExternalName):
                c.fail(at(path, "nodePort"), f"Forbidden: may not be used when `type` is '{type_}'")
            elif (reason := validation.port_number(node_port)) is not None:
                c.fail(at(path, "nodePort"), reason)
        app_protocol = c.string(raw, "appProtocol", path)
        check_name(c, app_protocol, at(path, "appProtocol"), validation.qualified_name)
        if port is not None and target is not None:
            ports.append(ServicePort(name, protocol, port, target, node_port or None, app_protocol or None))
    return tuple(ports)


def _target_port(c: Checker, raw: Raw, path: str, port: int | None) -> int | str | None:
    """targetPort is a number or a container port name; absent (or 0) means "same as port"."""
    value = raw.get("targetPort")
    where = at(path, "targetPort")
    if value is None or value == 0 or value == "":
        return port
    if isinstance(value, bool) or not isinstance(value, int | str):
        c.fail(where, "must be an integer or a string")
        return None
    if isinstance(value, str):
        if (reason := validation.iana_svc_name(value)) is not None:
            c.fail(where, reason)
            return None
        return value
    if (reason := validation.port_number(value)) is not None:
        c.fail(where, reason)
        return None
    return value


def _affinity_timeout(c: Checker, spec: Raw, affinity: str) -> int | None:
    config = c.mapping(spec, "sessionAffinityConfig", "spec")
    client_ip = c.mapping(config, "clientIP", "spec.sessionAffinityConfig")
    path = "spec.sessionAffinityConfig.clientIP"
    timeout = c.integer(client_ip, "timeoutSeconds", path)
    if config and affinity != "ClientIP":
        c.fail("spec.sessionAffinityConfig", "must not be set when spec.sessionAffinity is None")
        return None
    if timeout is not None and not 0 < timeout <= _MAX_AFFINITY_TIMEOUT:
        c.fail(
            at(path, "timeoutSeconds"),
            f"must be greater than 0 and less than {_MAX_AFFINITY_TIMEOUT}, got {timeout}",
        )
        return None
    if affinity == "ClientIP" and timeout is None:
        return 10800
    return timeout


def _lb_ingress(c: Checker, raw: Raw) -> tuple[LoadBalancerIngress, ...]:
    status = c.mapping(raw, "status", "")
    lb = c.mapping(status, "loadBalancer", "status")
    out: list[LoadBalancerIngress] = []
    for path, entry in c.objects(lb, "ingress", "status.loadBalancer"):
        text = c.string(entry, "ip", path)
        ip = read_ip(c, text, at(path, "ip")) if text else None
        hostname = c.string(entry, "hostname", path) or None
        mode = read_choice(c, entry, "ipMode", path, ("VIP", "Proxy"))
        if mode and not text:
            c.fail(at(path, "ipMode"), "may not be specified when `ip` is not")
        out.append(LoadBalancerIngress(ip, hostname, mode))
    return tuple(out)
