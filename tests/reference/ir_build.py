"""`build_ir`: index the objects once, then apply the per-object functions of pods.py and services.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from k8s_offload import gcpause
from k8s_offload.compiler.errors import ManifestError, ManifestErrors
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import (
    Endpoints,
    EndpointSlice,
    IPAddress,
    Namespace,
    ObjectKey,
    Pod,
    Service,
    by_key,
)
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.frontend.policy import NetworkPolicy
from k8s_offload.compiler.ir.model import (
    BackendSet,
    ClusterIR,
    Diagnostic,
    FrontendKind,
    PodEndpoint,
    ServiceFrontend,
)
from tests.reference.ir_pods import (
    attachable,
    gateway_conflict,
    namespace_infos,
    place_pods,
    pod_endpoint,
)
from tests.reference.ir_services import (
    backend_sets,
    endpoint_warnings,
    service_frontends,
    service_info,
    service_warnings,
)

K = TypeVar("K", Namespace, Pod, Service, EndpointSlice, Endpoints, NetworkPolicy)


def build_ir(objects: Iterable[KubeObject], node_facts: NodeFacts | None = None) -> ClusterIR:
    """The cluster IR; raises ManifestErrors for conflicts no single object shows (shared IPs, VIPs).

    Input order does not matter: every collection is sorted by key before use.
    """
    with gcpause.paused():
        return _build(objects, node_facts)


def _build(objects: Iterable[KubeObject], node_facts: NodeFacts | None) -> ClusterIR:
    all_objects = list(objects)
    namespaces = _of(all_objects, Namespace)
    pods = _of(all_objects, Pod)
    services = _of(all_objects, Service)
    slices = _of(all_objects, EndpointSlice)
    legacy = _of(all_objects, Endpoints)
    policies = _of(all_objects, NetworkPolicy)

    errors: list[ManifestError] = []
    diagnostics: list[Diagnostic] = []
    placements, placement_notes = place_pods(pods, node_facts, errors)
    diagnostics.extend(placement_notes)
    pod_nodes = tuple(pod_endpoint(pod, placements.get(pod.key)) for pod in pods)
    pods_by_ip = _index_pod_ips(pods, pod_nodes, node_facts or DEFAULT_NODE_FACTS, errors)

    services_by_key = {svc.key: svc for svc in services}
    slices_by_service: dict[ObjectKey, list[EndpointSlice]] = defaultdict(list)
    for eps in slices:
        if eps.service_name is not None:
            slices_by_service[ObjectKey("Service", eps.key.namespace, eps.service_name)].append(eps)
    legacy_by_service = {ObjectKey("Service", ep.key.namespace, ep.key.name): ep for ep in legacy}

    frontends: list[ServiceFrontend] = []
    sets: list[BackendSet] = []
    for svc in services:
        frontends.extend(service_frontends(svc, node_facts))
        diagnostics.extend(service_warnings(svc, node_facts))
        sets.extend(
            backend_sets(svc, slices_by_service.get(svc.key, []), legacy_by_service.get(svc.key), pods_by_ip)
        )
    diagnostics.extend(endpoint_warnings(slices, legacy, services_by_key))
    _check_vips(services, errors)
    if errors:
        raise ManifestErrors(errors)

    unique_frontends = _unique_frontends(frontends, diagnostics)
    used = {obj.key.namespace for group in (pods, services, slices, legacy, policies) for obj in group}
    return ClusterIR(
        node=node_facts or DEFAULT_NODE_FACTS,
        namespaces=namespace_infos(namespaces, used),
        pods=pod_nodes,
        services=tuple(service_info(svc) for svc in services),
        frontends=unique_frontends,
        backend_sets=tuple(sorted(sets, key=lambda s: s.key)),
        network_policies=tuple(policies),
        diagnostics=tuple(sorted(set(diagnostics))),
    )


def _unique_frontends(
    frontends: list[ServiceFrontend], diagnostics: list[Diagnostic]
) -> tuple[ServiceFrontend, ...]:
    """One frontend per (address, protocol, port). Cluster IPs are unique (checked as errors); an
    external or load-balancer IP, or a node IP, may still collide by hand: the first by (kind, Service)
    order wins, cluster IPs first, and the others are reported."""
    kinds = list(FrontendKind)
    chosen: dict[tuple[tuple[int, int], str, int], ServiceFrontend] = {}
    for fe in sorted(frontends, key=lambda f: (kinds.index(f.kind), f.service)):
        first = chosen.setdefault(fe.sort_key, fe)
        if first is not fe:
            message = (
                f"{fe.kind} {fe.vip} {fe.protocol}/{fe.port} is also a {first.kind} frontend of "
                f"{first.service}; ignored here"
            )
            diagnostics.append(Diagnostic(fe.service, message))
    return tuple(sorted(chosen.values(), key=lambda f: f.sort_key))


def _of(objects: list[KubeObject], cls: type[K]) -> list[K]:
    return sorted((o for o in objects if isinstance(o, cls)), key=by_key)


def _index_pod_ips(
    pods: list[Pod], nodes: tuple[PodEndpoint, ...], facts: NodeFacts, errors: list[ManifestError]
) -> dict[IPAddress, PodEndpoint]:
    """Owner of each pod IP, used to tell local backends; two live pods must not share an IP, and
    none may hold the gateway's (pods route through it: its traffic would go to the pod)."""
    index: dict[IPAddress, PodEndpoint] = {}
    for pod, node in zip(pods, nodes, strict=True):
        if not attachable(pod):
            continue
        gateway_conflict(pod, node.ips, facts, errors)
        for ip in node.ips:
            owner = index.setdefault(ip, node)
            if owner is not node:
                reason = f"IP {ip} is also the IP of {owner.key}"
                errors.append(ManifestError(pod.location, str(pod.key), "status.podIPs", reason))
    return index


def _check_vips(services: list[Service], errors: list[ManifestError]) -> None:
    """A VIP belongs to one Service; the API server's allocator guarantees it, hand-written input may not."""
    owners: dict[IPAddress, ObjectKey] = {}
    for svc in services:
        for index, vip in enumerate(svc.cluster_ips):
            owner = owners.setdefault(vip, svc.key)
            if owner != svc.key:
                reason = f"{vip} is also the cluster IP of {owner}"
                errors.append(ManifestError(svc.location, str(svc.key), f"spec.clusterIPs[{index}]", reason))
