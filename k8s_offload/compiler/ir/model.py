"""IR node types: what the lowering needs to know, keyed by the Kubernetes objects it comes from.

Every collection in `ClusterIR` is a tuple sorted by the node's key, so iteration order never depends
on input order. Nodes hold IP objects rather than strings so passes can do arithmetic and family checks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from k8s_offload.compiler.frontend.model import (
    ContainerPort,
    EndpointConditions,
    IPAddress,
    IPFamily,
    Labels,
    ObjectKey,
    Protocol,
    ServiceType,
    ip_sort_key,
)
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.frontend.policy import NetworkPolicy
from k8s_offload.compiler.frontend.tiers import ClusterPolicy, Node
from k8s_offload.compiler.records import fast_init

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace; NetworkPolicy namespaceSelectors rely on it."""


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """A finding the user must see (unsupported feature, inconsistent input) that does not stop the run."""

    subject: ObjectKey
    message: str
    severity: str = "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.subject}: {self.message}"


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    key: ObjectKey
    labels: Labels
    """Includes kubernetes.io/metadata.name, as the API server guarantees."""
    declared: bool
    """False when no Namespace object was given and the node only exists because objects live in it."""


@fast_init
@dataclass(frozen=True, slots=True)
class PodEndpoint:
    key: ObjectKey
    labels: Labels
    ipv4: ipaddress.IPv4Address | None
    ipv6: ipaddress.IPv6Address | None
    node_name: str
    local: bool
    """Attached to this device: traffic to it leaves on `port`."""
    port: int | None
    mac: str | None
    container_ports: tuple[ContainerPort, ...]
    ips: tuple[IPAddress, ...] = field(init=False, repr=False, compare=False)
    """`ipv4` and `ipv6` that are set, IPv4 first: computed once (policy resolution asks for it
    about ten times per pod and rule)."""

    def __post_init__(self) -> None:
        v4, v6 = self.ipv4, self.ipv6
        ips: tuple[IPAddress, ...] = (
            (v4, v6)
            if v4 is not None and v6 is not None
            else (v4,)
            if v4 is not None
            else (v6,)
            if v6 is not None
            else ()
        )
        object.__setattr__(self, "ips", ips)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    key: ObjectKey
    type: ServiceType
    vips: tuple[IPAddress, ...]
    """Primary first, as in spec.clusterIPs."""
    headless: bool
    external_name: str | None
    external_local: bool = False
    """externalTrafficPolicy Local: external frontends use local endpoints and keep the client IP."""
    internal_local: bool = False
    """internalTrafficPolicy Local: cluster IPs use local endpoints only."""
    affinity_timeout: int | None = None
    """sessionAffinity ClientIP: seconds a client sticks to its backend; None without affinity."""
    topology: bool = False
    """trafficDistribution PreferClose or topology-mode Auto: zone hints may filter endpoints."""


class FrontendKind(StrEnum):
    """Where a frontend's address comes from; all but ClusterIP are external destinations to kube-proxy."""

    ClusterIP = "ClusterIP"
    NodePort = "NodePort"
    ExternalIP = "ExternalIP"
    LoadBalancer = "LoadBalancer"


@fast_init
@dataclass(frozen=True, slots=True, order=True)
class BackendSetKey:
    """A Service port in one address family: the unit kube-proxy load-balances over."""

    service: ObjectKey
    port_name: str
    family: IPFamily

    def __str__(self) -> str:
        return f"{self.service.ref}:{self.port_name or '-'}/{self.family}"


@fast_init
@dataclass(frozen=True, slots=True)
class ServiceFrontend:
    """One (VIP, protocol, port) the data plane must catch and translate."""

    service: ObjectKey
    vip: IPAddress
    family: IPFamily
    protocol: Protocol
    port: int
    port_name: str
    kind: FrontendKind = FrontendKind.ClusterIP

    @property
    def external(self) -> bool:
        """Node ports, external IPs and load-balancer IPs follow externalTrafficPolicy."""
        return self.kind is not FrontendKind.ClusterIP

    @property
    def backend_set(self) -> BackendSetKey:
        return BackendSetKey(self.service, self.port_name, self.family)

    @property
    def sort_key(self) -> tuple[tuple[int, int], str, int]:
        return (ip_sort_key(self.vip), self.protocol.value, self.port)


@fast_init
@dataclass(frozen=True, slots=True)
class Backend:
    address: IPAddress
    port: int
    conditions: EndpointConditions
    local: bool
    """The address belongs to a pod attached to this device."""
    pod: ObjectKey | None
    """The Pod owning the address, when the manifests include it."""
    node_name: str | None
    hint_zones: tuple[str, ...] = ()
    """EndpointSlice hints.forZones, sorted."""
    source: ObjectKey | None = None
    """The EndpointSlice (or Endpoints) whose copy of the endpoint this is, so a trace can name
    the object behind a chosen backend; None only for hand-built IR."""

    @property
    def sort_key(self) -> tuple[tuple[int, int], int]:
        return (ip_sort_key(self.address), self.port)


@fast_init
@dataclass(frozen=True, slots=True)
class BackendSet:
    key: BackendSetKey
    protocol: Protocol
    backends: tuple[Backend, ...]
    """Sorted by (address, port), unique; includes not-ready ones so existing flows can drain."""
    sources: tuple[ObjectKey, ...]
    """The Service and the EndpointSlices (or Endpoints) this set was computed from, sorted."""

    @property
    def ready(self) -> tuple[Backend, ...]:
        """Backends that take new connections."""
        return tuple(b for b in self.backends if b.conditions.ready)

    @property
    def reject(self) -> bool:
        """No backend takes new connections, not even by the serving-and-terminating fallback
        (KEP-1669): kube-proxy then REJECTs them (ICMP port unreachable)."""
        return not any(
            b.conditions.ready or (b.conditions.serving and b.conditions.terminating) for b in self.backends
        )


@dataclass(frozen=True, slots=True)
class ClusterIR:
    node: NodeFacts
    """The node facts in effect (the documented defaults when none were given)."""
    namespaces: tuple[NamespaceInfo, ...]
    pods: tuple[PodEndpoint, ...]
    services: tuple[ServiceInfo, ...]
    frontends: tuple[ServiceFrontend, ...]
    """Sorted by (VIP, protocol, port): the lookup key of the data plane."""
    backend_sets: tuple[BackendSet, ...]
    network_policies: tuple[NetworkPolicy, ...]
    diagnostics: tuple[Diagnostic, ...]
    cluster_policies: tuple[ClusterPolicy, ...] = ()
    """AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy objects, by key."""
    nodes: tuple[Node, ...] = ()
    """Node objects (labels, addresses): what `nodes` peers select."""
    host_network_pods: tuple[ObjectKey, ...] = ()
    """Pods with hostNetwork, by key: never subjects or namespaces/pods peers of a tier."""
