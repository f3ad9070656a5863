"""Typed, validated Kubernetes objects: the front end's output and the IR builder's input.

Only the fields the compiler reads are kept. Defaults the API server would apply (protocol TCP,
targetPort = port, absent `ready` = true, ...) are applied here so later stages never see `None` for a
defaulted field. `location` is for error messages only and takes no part in equality.
"""

from __future__ import annotations

import ipaddress
import operator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.records import fast_init

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Labels = tuple[tuple[str, str], ...]
"""Labels as sorted (key, value) pairs: hashable, and deterministic to print."""


class IPFamily(StrEnum):
    IPv4 = "IPv4"
    IPv6 = "IPv6"

    @staticmethod
    def of(address: IPAddress | IPNetwork) -> IPFamily:
        return IPFamily.IPv4 if address.version == 4 else IPFamily.IPv6


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class ServiceType(StrEnum):
    ClusterIP = "ClusterIP"
    NodePort = "NodePort"
    LoadBalancer = "LoadBalancer"
    ExternalName = "ExternalName"


def ip_sort_key(address: IPAddress) -> tuple[int, int]:
    """IPv4 and IPv6 addresses do not compare with each other; this orders IPv4 first, then by value."""
    return (address.version, int(address))


def net_sort_key(network: IPNetwork) -> tuple[int, int, int]:
    return (network.version, int(network.network_address), network.prefixlen)


class ObjectKey(NamedTuple):
    """Identity of a Kubernetes object; every IR node says which objects it was derived from.

    A named tuple rather than a frozen dataclass: keys are hashed and compared millions of times
    per compile (every table of the engine is keyed by them), and a tuple does both in C, where
    the dataclass ran generated Python (`__hash__` alone was about 5 % of a size-M compile)."""

    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


by_key = operator.attrgetter("key")
"""Sort key for objects and nodes (by their `ObjectKey`, which compares in C)."""


@dataclass(frozen=True, slots=True)
class Namespace:
    key: ObjectKey
    labels: Labels
    location: Location = field(compare=False, repr=False)


@fast_init
@dataclass(frozen=True, slots=True, order=True)
class ContainerPort:
    name: str
    port: int
    protocol: Protocol


@fast_init
@dataclass(frozen=True, slots=True)
class Pod:
    key: ObjectKey
    labels: Labels
    node_name: str
    ips: tuple[IPAddress, ...]
    """status.podIPs in API order (primary first); at most one per family."""
    host_network: bool
    phase: str
    ports: tuple[ContainerPort, ...]
    location: Location = field(compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        """Succeeded/Failed pods keep their IP in status but no longer own it."""
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    protocol: Protocol
    port: int
    target_port: int | str
    node_port: int | None
    app_protocol: str | None


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    ip: IPAddress | None
    hostname: str | None
    ip_mode: str | None


@dataclass(frozen=True, slots=True)
class Service:
    key: ObjectKey
    labels: Labels
    type: ServiceType
    cluster_ips: tuple[IPAddress, ...]
    """Allocated VIPs, primary first; empty when headless, ExternalName or not yet allocated."""
    headless: bool
    ip_families: tuple[IPFamily, ...]
    ip_family_policy: str | None
    ports: tuple[ServicePort, ...]
    selector: Labels
    """Empty means "no selector": endpoints are managed by hand (an empty map selects nothing too)."""
    external_name: str | None
    external_ips: tuple[IPAddress, ...]
    session_affinity: str
    session_affinity_timeout: int | None
    external_traffic_policy: str | None
    internal_traffic_policy: str | None
    load_balancer_ingress: tuple[LoadBalancerIngress, ...]
    location: Location = field(compare=False, repr=False)
    traffic_distribution: str | None = None
    topology_mode: str | None = None
    """Annotation service.kubernetes.io/topology-mode (or the older topology-aware-hints)."""


@fast_init
@dataclass(frozen=True, slots=True)
class TargetRef:
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True, order=True)
class EndpointConditions:
    """Resolved conditions: ready defaults to true, serving to ready, terminating to false."""

    ready: bool
    serving: bool
    terminating: bool


@fast_init
@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[IPAddress, ...]
    """Empty for FQDN slices, which the compiler does not use."""
    conditions: EndpointConditions
    node_name: str | None
    zone: str | None
    hint_zones: tuple[str, ...]
    target_ref: TargetRef | None


@fast_init
@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    port: int | None
    """None means "all ports" in the API; there is nothing to translate to, so such ports are unused."""
    protocol: Protocol
    app_protocol: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class EndpointSlice:
    key: ObjectKey
    labels: Labels
    service_name: str | None
    """From the label kubernetes.io/service-name: the only link between a slice and its Service."""
    address_type: str
    endpoints: tuple[Endpoint, ...]
    ports: tuple[EndpointPort, ...]
    location: Location = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    ip: IPAddress
    ready: bool
    """False for entries of notReadyAddresses."""
    node_name: str | None
    target_ref: TargetRef | None


@dataclass(frozen=True, slots=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...]
    ports: tuple[EndpointPort, ...]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Legacy core/v1 Endpoints; used only for Services that have no EndpointSlice at all."""

    key: ObjectKey
    labels: Labels
    subsets: tuple[EndpointSubset, ...]
    location: Location = field(compare=False, repr=False)
