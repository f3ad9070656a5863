"""IR invariants, checked between passes so a bug shows up where it is made, not as a wrong entry."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, TypeVar

from k8s_offload import gcpause
from k8s_offload.compiler.errors import IRVerificationError
from k8s_offload.compiler.frontend.model import IPAddress, IPFamily, ObjectKey
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)

T = TypeVar("T")


def check_ir(ir: ClusterIR) -> None:
    """Raise IRVerificationError naming every broken invariant; return None when the IR is sound.

    The cyclic GC is paused as in building (k8s_offload/gcpause.py): the checks make hundreds of
    thousands of short-lived keys while the whole IR is alive, and its rescans cost more than them."""
    with gcpause.paused():
        _check(ir)


def _check(ir: ClusterIR) -> None:
    problems: list[str] = []
    _sorted_unique(problems, "namespaces", ir.namespaces, lambda n: n.key)
    _sorted_unique(problems, "pods", ir.pods, lambda p: p.key)
    _sorted_unique(problems, "services", ir.services, lambda s: s.key)
    _sorted_unique(problems, "frontends", ir.frontends, lambda f: f.sort_key, what=_frontend_text)
    _sorted_unique(problems, "backend_sets", ir.backend_sets, lambda b: b.key)
    _sorted_unique(problems, "network_policies", ir.network_policies, lambda p: p.key)
    _sorted_unique(problems, "diagnostics", ir.diagnostics, lambda d: d)
    _sorted_unique(problems, "cluster_policies", ir.cluster_policies, lambda p: p.key)
    _sorted_unique(problems, "nodes", ir.nodes, lambda n: n.key)
    _sorted_unique(problems, "host_network_pods", ir.host_network_pods, lambda k: k)

    namespaces = {ns.key.name for ns in ir.namespaces}
    pods = {pod.key: pod for pod in ir.pods}
    services = {svc.key: svc for svc in ir.services}
    sets = {bs.key: bs for bs in ir.backend_sets}

    for i, ns in enumerate(ir.namespaces):
        _labels_sorted(problems, f"namespaces[{i}] ({ns.key})", ns.labels)
    local_ports: dict[int, ObjectKey] = {}
    sound_labels: dict[int, Sequence[tuple[str, str]]] = {}
    """Label tuples found sorted, by identity: the front end shares one tuple among the pods
    with equal labels, so most pods need no look at theirs."""
    for i, pod in enumerate(ir.pods):
        # The location text is built only for a problem (see the frontends below).
        labels = pod.labels
        if sound_labels.get(id(labels)) is not labels:
            if _labels_ok(labels):
                sound_labels[id(labels)] = labels
            else:
                _labels_sorted(problems, f"pods[{i}] ({pod.key})", labels)
        ipv4, ipv6, port = pod.ipv4, pod.ipv6, pod.port
        if (
            pod.key.namespace not in namespaces
            or (ipv4 is not None and ipv4.version != 4)
            or (ipv6 is not None and ipv6.version != 6)
            or pod.local != (port is not None)
            or pod.local != (pod.mac is not None)
        ):
            _check_pod(problems, f"pods[{i}] ({pod.key})", pod, namespaces)
        if port is not None:
            other = local_ports.setdefault(port, pod.key)
            if other != pod.key:
                problems.append(f"pods[{i}] ({pod.key}): device port {port} is also the port of {other}")

    for i, svc in enumerate(ir.services):
        where = f"services[{i}] ({svc.key})"
        if svc.key.namespace not in namespaces:
            problems.append(f"{where}: dangling reference to Namespace {svc.key.namespace}")
        if svc.headless and svc.vips:
            problems.append(f"{where}: headless but has VIPs")

    referenced: set[BackendSetKey] = set()
    for i, fe in enumerate(ir.frontends):
        # Location texts are built only for a problem: formatting every VIP cost seconds at size M.
        owner = services.get(fe.service)
        backend_set = sets.get(fe.backend_set)
        if (
            IPFamily.of(fe.vip) is not fe.family
            or not 1 <= fe.port <= 65535
            or owner is None
            or (not fe.external and fe.vip not in owner.vips)
            or backend_set is None
            or backend_set.protocol is not fe.protocol
        ):
            _check_frontend(problems, f"frontends[{i}] ({_frontend_text(fe)})", fe, owner, backend_set)
        referenced.add(fe.backend_set)

    for i, bs in enumerate(ir.backend_sets):
        _check_backend_set(problems, f"backend_sets[{i}] ({bs.key})", bs, pods, services)
        if bs.key not in referenced:
            problems.append(f"backend_sets[{i}] ({bs.key}): no frontend refers to it")

    for i, policy in enumerate(ir.network_policies):
        if policy.key.namespace not in namespaces:
            problems.append(
                f"network_policies[{i}] ({policy.key}): dangling reference to Namespace "
                f"{policy.key.namespace}"
            )

    for i, key in enumerate(ir.host_network_pods):
        attached = pods.get(key)
        if attached is not None and attached.local:
            problems.append(f"host_network_pods[{i}] ({key}): a host-network pod is never attached to a port")

    if problems:
        raise IRVerificationError(
            "IR verification failed:\n" + "\n".join(f"  {p}" for p in problems), problems
        )


def _check_pod(problems: list[str], where: str, pod: PodEndpoint, namespaces: set[str]) -> None:
    if pod.key.namespace not in namespaces:
        problems.append(f"{where}: dangling reference to Namespace {pod.key.namespace}")
    if pod.ipv4 is not None and pod.ipv4.version != 4:
        problems.append(f"{where}: ipv4 holds an IPv6 address {pod.ipv4}")
    if pod.ipv6 is not None and pod.ipv6.version != 6:
        problems.append(f"{where}: ipv6 holds an IPv4 address {pod.ipv6}")
    if pod.local != (pod.port is not None) or pod.local != (pod.mac is not None):
        problems.append(f"{where}: local={pod.local} but port={pod.port} mac={pod.mac}")


def _check_frontend(
    problems: list[str],
    where: str,
    fe: ServiceFrontend,
    owner: ServiceInfo | None,
    backend_set: BackendSet | None,
) -> None:
    if IPFamily.of(fe.vip) is not fe.family:
        problems.append(f"{where}: VIP {fe.vip} is not {fe.family}")
    if not 1 <= fe.port <= 65535:
        problems.append(f"{where}: port {fe.port} out of range")
    if owner is None:
        problems.append(f"{where}: dangling reference to {fe.service}")
    elif not fe.external and fe.vip not in owner.vips:
        problems.append(f"{where}: VIP {fe.vip} is not a VIP of {fe.service}")
    if backend_set is None:
        problems.append(f"{where}: dangling reference to backend set {fe.backend_set}")
    elif backend_set.protocol is not fe.protocol:
        problems.append(f"{where}: protocol {fe.protocol} but backend set has {backend_set.protocol}")


def _check_backend_set(
    problems: list[str],
    where: str,
    bs: BackendSet,
    pods: dict[ObjectKey, PodEndpoint],
    services: dict[ObjectKey, ServiceInfo],
) -> None:
    if bs.key.service not in services:
        problems.append(f"{where}: dangling reference to {bs.key.service}")
    if bs.key.service not in bs.sources or list(bs.sources) != sorted(set(bs.sources)):
        problems.append(f"{where}: sources must be sorted, unique and include {bs.key.service}")
    _sorted_unique(problems, f"{where}.backends", bs.backends, lambda b: b.sort_key, what=_backend_text)
    family = bs.key.family
    for j, backend in enumerate(bs.backends):
        pod = pods.get(backend.pod) if backend.pod is not None else None
        if (
            IPFamily.of(backend.address) is not family
            or not 1 <= backend.port <= 65535
            or (backend.pod is None and backend.local)
            or (
                backend.pod is not None
                and (pod is None or not _owns(pod, backend.address) or backend.local != pod.local)
            )
        ):
            _check_backend(problems, f"{where}.backends[{j}] ({_backend_text(backend)})", bs, backend, pod)


def _owns(pod: PodEndpoint, address: IPAddress) -> bool:
    """`address in pod.ips` without building the tuple; the front end shares address objects, so
    identity usually answers."""
    return address is pod.ipv4 or address is pod.ipv6 or address == pod.ipv4 or address == pod.ipv6


def _check_backend(
    problems: list[str], bwhere: str, bs: BackendSet, backend: Backend, pod: PodEndpoint | None
) -> None:
    if IPFamily.of(backend.address) is not bs.key.family:
        problems.append(f"{bwhere}: address is not {bs.key.family}")
    if not 1 <= backend.port <= 65535:
        problems.append(f"{bwhere}: port {backend.port} out of range")
    if backend.pod is not None:
        if pod is None:
            problems.append(f"{bwhere}: dangling reference to {backend.pod}")
        elif backend.address not in pod.ips:
            problems.append(f"{bwhere}: {backend.pod} does not have address {backend.address}")
        elif backend.local != pod.local:
            problems.append(f"{bwhere}: local={backend.local} but {backend.pod} has local={pod.local}")
    elif backend.local:
        problems.append(f"{bwhere}: local backend without a pod")


def _sorted_unique(
    problems: list[str],
    name: str,
    items: Sequence[T],
    key: Callable[[T], Any],
    what: Callable[[T], str] | None = None,
) -> None:
    def text(item: T) -> str:
        return what(item) if what else str(key(item))

    keys = list(map(key, items))
    if all(map(operator.lt, keys, islice(keys, 1, None))):  # strictly increasing: sorted and unique
        return
    for i in range(1, len(keys)):
        before, current = keys[i - 1], keys[i]
        if current == before:
            problems.append(f"{name}[{i}]: duplicate {text(items[i])}")
        elif current < before:
            problems.append(f"{name}[{i}]: not sorted: {text(items[i])} comes after {text(items[i - 1])}")


def _labels_sorted(problems: list[str], where: str, labels: Sequence[tuple[str, str]]) -> None:
    if not _labels_ok(labels):
        problems.append(f"{where}: labels must be sorted by key and unique")


def _labels_ok(labels: Sequence[tuple[str, str]]) -> bool:
    keys = [k for k, _ in labels]
    return keys == sorted(set(keys))


def _frontend_text(fe: ServiceFrontend) -> str:
    return f"frontend {fe.vip} {fe.protocol} {fe.port} of {fe.service}"


def _backend_text(b: Backend) -> str:
    return f"backend {b.address}:{b.port}"
