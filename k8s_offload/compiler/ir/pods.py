"""Pods and namespaces: which pods sit on this device and on which port.

Placement is the only whole-set computation here: without node facts, ports follow the sorted pod
order. With node facts (the production case) each pod's placement depends on that pod alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from k8s_offload.compiler.errors import ManifestError
from k8s_offload.compiler.frontend.model import Namespace, ObjectKey, Pod
from k8s_offload.compiler.frontend.nodefacts import CPU_PORT, NodeFacts, PodAttachment
from k8s_offload.compiler.ir.model import NAMESPACE_NAME_LABEL, Diagnostic, NamespaceInfo, PodEndpoint

FIRST_DEFAULT_POD_PORT = 16
"""Without node facts pods get ports 16, 17, ... in (namespace, name) order; 0-15 stay for special ports."""


@dataclass(frozen=True, slots=True)
class Placement:
    port: int
    mac: str


def default_mac(port: int) -> str:
    """Locally administered MAC derived from the port, so default placements need no extra state."""
    return f"02:00:00:00:{port >> 8:02x}:{port & 0xFF:02x}"


def attachable(pod: Pod) -> bool:
    """Pods that own their IPs: host-network pods use the node's, terminal pods released theirs."""
    return not pod.host_network and not pod.terminal


def gateway_conflict(
    pod: Pod,
    ips: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address],
    facts: NodeFacts,
    errors: list[ManifestError],
) -> None:
    """A live pod holding the gateway's address (node facts, or the default 169.254.1.1 and fe80::1)
    is an input error: local pods send to the gateway, and the pipeline would deliver to that pod."""
    gateway = {facts.gateway.ipv4: "gateway.ipv4", facts.gateway.ipv6: "gateway.ipv6"}
    for ip in ips:
        field = gateway.get(ip)
        if field is not None:
            where = "node facts" if facts.node_name is not None else "the default node facts"
            reason = f"IP {ip} is the gateway address ({where} {field}); a pod must not hold it"
            errors.append(ManifestError(pod.location, str(pod.key), "status.podIPs", reason))


def place_pod(
    pod: Pod, facts: NodeFacts, attachment: PodAttachment | None
) -> tuple[Placement | None, Diagnostic | None]:
    """With node facts, one pod's placement depends on that pod and its attachment alone: its
    device port and MAC when it runs here and the facts attach it, else None and maybe a note
    saying why the two disagree."""
    here = pod.node_name == facts.node_name and attachable(pod)
    if here and attachment is not None:
        return Placement(attachment.port, attachment.mac), None
    if here:
        message = f"runs on {facts.node_name} but node facts give it no device port; treated as remote"
        return None, Diagnostic(pod.key, message)
    if attachment is not None:
        where = (
            f"spec.nodeName is {pod.node_name!r}" if pod.node_name != facts.node_name else "it is not running"
        )
        message = f"node facts attach it to port {attachment.port} but {where}; treated as remote"
        return None, Diagnostic(pod.key, message)
    return None, None


def unused_attachment(attachment: PodAttachment) -> Diagnostic:
    """A pod the node facts list but the manifests lack."""
    message = f"listed in node facts (port {attachment.port}) but not in the manifests; the port is unused"
    return Diagnostic(ObjectKey("Pod", attachment.namespace, attachment.name), message)


def default_placement(pods: Sequence[Pod], errors: list[ManifestError]) -> dict[ObjectKey, Placement]:
    """Without node facts: every pod with an IP is local, on ports in (namespace, name) order;
    `pods` must be sorted by key."""
    local = [pod for pod in pods if pod.ips and attachable(pod)]
    capacity = CPU_PORT - FIRST_DEFAULT_POD_PORT
    if len(local) > capacity:
        first = local[capacity]
        reason = (
            f"no device port left: without node facts every pod with an IP is local and gets a port in "
            f"{FIRST_DEFAULT_POD_PORT}..{CPU_PORT - 1} ({capacity} pods), but {len(local)} pods have IPs; "
            "pass node facts"
        )
        errors.append(ManifestError(first.location, str(first.key), "status.podIPs", reason))
        local = local[:capacity]
    return {
        pod.key: Placement(port, default_mac(port))
        for port, pod in enumerate(local, start=FIRST_DEFAULT_POD_PORT)
    }


def pod_endpoint(pod: Pod, placement: Placement | None) -> PodEndpoint:
    """The IR view of one pod; depends on the Pod and its placement only."""
    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None
    for ip in pod.ips:  # the first of each family
        if isinstance(ip, ipaddress.IPv4Address):
            ipv4 = ipv4 or ip
        elif isinstance(ip, ipaddress.IPv6Address):
            ipv6 = ipv6 or ip
    return PodEndpoint(
        key=pod.key,
        labels=pod.labels,
        ipv4=ipv4,
        ipv6=ipv6,
        node_name=pod.node_name,
        local=placement is not None,
        port=placement.port if placement else None,
        mac=placement.mac if placement else None,
        container_ports=pod.ports,
    )


def namespace_info(name: str, declared: Namespace | None) -> NamespaceInfo:
    """The API server always sets kubernetes.io/metadata.name to the namespace's name."""
    labels = dict(declared.labels) if declared else {}
    labels[NAMESPACE_NAME_LABEL] = name
    return NamespaceInfo(
        ObjectKey("Namespace", "", name), tuple(sorted(labels.items())), declared is not None
    )
