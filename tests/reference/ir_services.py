"""Services: frontends (per Service), backend sets (per Service and its endpoint objects), warnings.

Each function depends only on its arguments, so a changed Service recomputes its frontends, and a
changed EndpointSlice recomputes only the backend sets of the Service named by its label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from k8s_offload.compiler.frontend.model import (
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    IPAddress,
    IPFamily,
    ObjectKey,
    Protocol,
    Service,
    ServiceType,
)
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    Diagnostic,
    FrontendKind,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)

_NODE_PORT_TYPES = (ServiceType.NodePort, ServiceType.LoadBalancer)


def uses_topology(svc: Service) -> bool:
    """kube-proxy's canUseTopology, Service side: trafficDistribution PreferClose, or, when that is
    unset, the topology-mode annotation Auto."""
    if svc.traffic_distribution is not None:
        return svc.traffic_distribution == "PreferClose"
    return svc.topology_mode in ("Auto", "auto")


def service_info(svc: Service) -> ServiceInfo:
    return ServiceInfo(
        svc.key,
        svc.type,
        svc.cluster_ips,
        svc.headless,
        svc.external_name,
        external_local=svc.external_traffic_policy == "Local" and _externally_accessible(svc),
        internal_local=svc.internal_traffic_policy == "Local",
        affinity_timeout=svc.session_affinity_timeout if svc.session_affinity == "ClientIP" else None,
        topology=uses_topology(svc),
    )


def _externally_accessible(svc: Service) -> bool:
    return svc.type in _NODE_PORT_TYPES or bool(svc.external_ips)


def _external_vips(svc: Service, node: NodeFacts | None) -> list[tuple[FrontendKind, IPAddress, bool]]:
    """(kind, address, uses the node port) of every external destination, in any family."""
    out: list[tuple[FrontendKind, IPAddress, bool]] = []
    if svc.type in _NODE_PORT_TYPES and node is not None:
        out.extend((FrontendKind.NodePort, ip, True) for ip in node.node_ips)
    out.extend((FrontendKind.ExternalIP, ip, False) for ip in svc.external_ips)
    if svc.type is ServiceType.LoadBalancer:
        # ipMode Proxy: the load balancer proxies to the node, so the node must not capture the IP.
        out.extend(
            (FrontendKind.LoadBalancer, i.ip, False)
            for i in svc.load_balancer_ingress
            if i.ip is not None and i.ip_mode != "Proxy"
        )
    return out


def service_frontends(svc: Service, node: NodeFacts | None = None) -> tuple[ServiceFrontend, ...]:
    """One frontend per (VIP, protocol, port): cluster IPs on the service port, node IPs on the node
    port, external and load-balancer IPs on the service port. Only families the Service has (its
    cluster IPs) get frontends: there are no endpoints of another family."""
    out = [
        ServiceFrontend(svc.key, vip, IPFamily.of(vip), port.protocol, port.port, port.name)
        for vip in svc.cluster_ips
        for port in svc.ports
    ]
    families = {IPFamily.of(vip) for vip in svc.cluster_ips}
    for kind, ip, on_node_port in _external_vips(svc, node):
        if IPFamily.of(ip) not in families:
            continue
        for port in svc.ports:
            number = port.node_port if on_node_port else port.port
            if number is not None:
                out.append(
                    ServiceFrontend(svc.key, ip, IPFamily.of(ip), port.protocol, number, port.name, kind)
                )
    return tuple(out)


def service_warnings(svc: Service, node: NodeFacts | None = None) -> tuple[Diagnostic, ...]:
    """One warning per Service and feature that cannot be offloaded, so nothing degrades silently."""
    found: list[str] = []
    node_ports = svc.type in _NODE_PORT_TYPES and any(p.node_port for p in svc.ports) and not svc.headless
    if node_ports and (node is None or not node.node_ips):
        found.append(f"type {svc.type}: node facts give no nodeIPs, so node ports are not offloaded")
    families = {IPFamily.of(vip) for vip in svc.cluster_ips}
    other = sorted(
        {
            str(ip)
            for kind, ip, _ in _external_vips(svc, node)
            if kind is not FrontendKind.NodePort and IPFamily.of(ip) not in families
        }
        if families  # node IPs of another family are simply unused by a single-stack Service
        else ()
    )
    if other:
        found.append(f"addresses {', '.join(other)} are of an IP family the Service does not have; ignored")
    if not svc.cluster_ips and not svc.headless and svc.type is not ServiceType.ExternalName:
        found.append("spec.clusterIP: no cluster IP allocated; there is nothing to offload")
    return tuple(Diagnostic(svc.key, message) for message in found)


def _rank(conditions: EndpointConditions) -> tuple[bool, bool, bool]:
    """Which copy of a duplicated endpoint wins: ready, then serving, then not terminating."""
    return (conditions.ready, conditions.serving, not conditions.terminating)


class _Collector:
    """Backends of one backend set, deduplicated by (address, port).

    Keyed by the address as an integer, which hashes in C (an address object hashes in Python);
    all addresses of one collector are of its family, so integers do not mix families and sort
    like the addresses."""

    __slots__ = ("by_target", "pods_by_ip", "version")

    def __init__(self, family: IPFamily, pods_by_ip: Mapping[IPAddress, PodEndpoint]) -> None:
        self.version = 4 if family is IPFamily.IPv4 else 6
        self.pods_by_ip = pods_by_ip
        self.by_target: dict[tuple[int, int], Backend] = {}

    def add(
        self,
        address: IPAddress,
        port: int,
        conditions: EndpointConditions,
        node_name: str | None,
        source: ObjectKey,
        hint_zones: tuple[str, ...] = (),
    ) -> None:
        if address.version != self.version:
            return
        target = (int(address), port)
        current = self.by_target.get(target)
        if current is not None and _rank(conditions) <= _rank(current.conditions):
            return
        pod = self.pods_by_ip.get(address)
        self.by_target[target] = Backend(
            address=address,
            port=port,
            conditions=conditions,
            local=pod is not None and pod.local,
            pod=pod.key if pod else None,
            node_name=node_name,
            hint_zones=hint_zones,
            source=source,
        )

    def backends(self) -> tuple[Backend, ...]:
        """Sorted by (address, port), as `Backend.sort_key` orders them within one family."""
        return tuple(b for _, b in sorted(self.by_target.items()))


def _port_number(ports: Iterable[EndpointPort], name: str, protocol: Protocol) -> int | None:
    """The target port of a Service port in one endpoint object: the port with the same name and protocol."""
    for port in ports:
        if port.name == name and port.protocol is protocol:
            return port.port
    return None


def backend_sets(
    svc: Service,
    slices: Sequence[EndpointSlice],
    endpoints: Endpoints | None,
    pods_by_ip: Mapping[IPAddress, PodEndpoint],
) -> tuple[BackendSet, ...]:
    """Backend sets of one Service; legacy Endpoints count only when the Service has no slice at all.

    `slices` must be sorted by key so that deduplication ties resolve the same way on every run.
    """
    families = sorted({IPFamily.of(vip) for vip in svc.cluster_ips})
    use_legacy = not slices and endpoints is not None
    sources = [svc.key, *(s.key for s in slices)]
    if use_legacy and endpoints is not None:
        sources.append(endpoints.key)
    out: list[BackendSet] = []
    for family in families:
        for port in svc.ports:
            collector = _Collector(family, pods_by_ip)
            for eps in slices:
                if eps.address_type != family.value:
                    continue
                number = _port_number(eps.ports, port.name, port.protocol)
                if number is None:
                    continue
                for ep in eps.endpoints:
                    for address in ep.addresses:
                        collector.add(address, number, ep.conditions, ep.node_name, eps.key, ep.hint_zones)
            if use_legacy and endpoints is not None:
                for subset in endpoints.subsets:
                    number = _port_number(subset.ports, port.name, port.protocol)
                    if number is None:
                        continue
                    for a in subset.addresses:
                        conditions = EndpointConditions(ready=a.ready, serving=a.ready, terminating=False)
                        collector.add(a.ip, number, conditions, a.node_name, endpoints.key)
            key = BackendSetKey(svc.key, port.name, family)
            out.append(BackendSet(key, port.protocol, collector.backends(), tuple(sorted(sources))))
    return tuple(out)


def endpoint_warnings(
    slices: Iterable[EndpointSlice], endpoints: Iterable[Endpoints], services: Mapping[ObjectKey, Service]
) -> list[Diagnostic]:
    """Endpoint objects that cannot contribute anything, which usually means a typo in a label or name."""
    found: list[Diagnostic] = []
    for eps in slices:
        if eps.service_name is None:
            found.append(Diagnostic(eps.key, "no label kubernetes.io/service-name; ignored"))
        elif ObjectKey("Service", eps.key.namespace, eps.service_name) not in services:
            name = eps.service_name
            message = f"label kubernetes.io/service-name names Service {name!r}, which is absent; ignored"
            found.append(Diagnostic(eps.key, message))
        if eps.address_type == "FQDN":
            found.append(Diagnostic(eps.key, "addressType FQDN is not offloaded; ignored"))
        for port in eps.ports:
            if port.port is None:
                name = port.name or "(unnamed)"
                found.append(Diagnostic(eps.key, f"port {name} has no number (all ports); ignored"))
    for ep in endpoints:
        if ObjectKey("Service", ep.key.namespace, ep.key.name) not in services:
            found.append(Diagnostic(ep.key, "no Service of the same name; ignored"))
    return found
