"""Each node's own pod address range in the conflist, from its Node object (`spec.podCIDRs`).

One ConfigMap serves every node, but host-local must allocate from a range no other node uses, or
two pods on two nodes get the same address. The range Kubernetes gives each node is its Node's
`spec.podCIDRs` (one per family; `spec.podCIDR` is the first of them), set by the node IPAM
controller (kube-controller-manager `--allocate-node-cidrs`) or by the cluster's provisioner. So
the conflist names it with a placeholder, the one Calico uses for the same purpose, and
`offload-cni install --node-name NODE` reads the Node through the API server and fills it in:

    "ipam": {"type": "host-local",
             "ranges": [[{"subnet": "usePodCidr"}], [{"subnet": "usePodCidrIPv6"}]]}

Every range whose ``subnet`` is ``usePodCidr`` gets the node's IPv4 pod CIDR (and
``usePodCidrIPv6`` the IPv6 one); a range set for a family the node has no CIDR of is dropped,
so one conflist serves single-stack and dual-stack clusters. The one API call is a `get` of that
Node (RBAC: `get` on `nodes`, see `RBAC`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from typing import Any

from k8s_offload.cni.config import PLUGIN_TYPE

PLACEHOLDERS = {"usePodCidr": 4, "usePodCidrIPv6": 6}
RBAC = (("", "nodes", "get"),)
"""What reading the Node takes: (API group, resource, verb); deploy/rbac.yaml grants it."""
API_TIMEOUT = 10.0


class PodCidrError(Exception):
    """The conflist cannot be completed for this node."""


def uses_placeholders(conflist: dict[str, Any]) -> bool:
    return any(True for _ in _placeholder_ranges(conflist))


def _placeholder_ranges(
    conflist: dict[str, Any],
) -> Iterator[tuple[dict[str, Any], list[Any], dict[str, Any]]]:
    """(ipam, range set, range) for each placeholder range of an offload-cni entry."""
    for plugin in conflist.get("plugins") or []:
        ipam = plugin.get("ipam") if isinstance(plugin, dict) else None
        if not (isinstance(plugin, dict) and plugin.get("type") == PLUGIN_TYPE and isinstance(ipam, dict)):
            continue
        for range_set in ipam.get("ranges") or []:
            for rng in range_set if isinstance(range_set, list) else []:
                if isinstance(rng, dict) and rng.get("subnet") in PLACEHOLDERS:
                    yield ipam, range_set, rng


def node_pod_cidrs(node: dict[str, Any], name: str) -> dict[int, str]:
    """The node's pod CIDR per IP version, from `spec.podCIDRs` (else `spec.podCIDR`)."""
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    out: dict[int, str] = {}
    for i, text in enumerate(cidrs):
        try:
            net = ipaddress.ip_network(str(text), strict=True)
        except ValueError as exc:
            raise PodCidrError(f"node {name}: spec.podCIDRs[{i}]: {exc}") from None
        if net.version in out:
            raise PodCidrError(f"node {name}: spec.podCIDRs has two IPv{net.version} ranges")
        out[net.version] = str(net)
    return out


def fill(conflist: dict[str, Any], cidrs: dict[int, str], name: str) -> tuple[dict[str, Any], list[str]]:
    """The conflist with every placeholder replaced, and notes on what was dropped."""
    notes: list[str] = []
    for ipam, range_set, rng in list(_placeholder_ranges(conflist)):
        version = PLACEHOLDERS[rng["subnet"]]
        if version in cidrs:
            rng["subnet"] = cidrs[version]
        else:
            notes.append(f"node {name} has no IPv{version} pod CIDR: dropping the {rng['subnet']} range")
            ipam["ranges"] = [s for s in ipam["ranges"] if s is not range_set]
    for plugin in conflist.get("plugins") or []:
        if isinstance(plugin, dict) and plugin.get("type") == PLUGIN_TYPE:
            section = plugin.get("ipam")
            if isinstance(section, dict) and "ranges" in section and not section["ranges"]:
                have = ", ".join(cidrs.values()) or "none"
                raise PodCidrError(
                    f"node {name}: no pod CIDR for any range of the conflist (spec.podCIDRs: {have}); "
                    "is the node IPAM controller (--allocate-node-cidrs) assigning them?"
                )
    return conflist, notes


def read_node(name: str, client_factory: Callable[[], Any]) -> dict[str, Any]:
    """GET /api/v1/nodes/NAME with the given API client; PodCidrError saying what went wrong."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api = client_factory()
        resp: Any = k8s.CoreV1Api(api).read_node(name, _preload_content=False, _request_timeout=API_TIMEOUT)
        doc: dict[str, Any] = json.loads(resp.data)
        return doc
    except ApiException as exc:
        hint = {
            401: "the service account token was refused",
            403: "the ClusterRole must grant get on nodes",
            404: "no such node",
        }.get(exc.status or 0, exc.reason or "")
        raise PodCidrError(f"cannot read node {name}: HTTP {exc.status} ({hint})") from None
    except (HTTPError, OSError, ValueError) as exc:
        raise PodCidrError(f"cannot read node {name}: {exc}") from None


def for_node(
    conflist: dict[str, Any], name: str | None, client_factory: Callable[[], Any]
) -> tuple[dict[str, Any], list[str]]:
    """Fill the placeholders of `conflist` from node `name` (unchanged when it has none)."""
    if not uses_placeholders(conflist):
        return conflist, []
    if not name:
        raise ValueError("the conflist asks for the node's pod CIDR (usePodCidr): give --node-name")
    cidrs = node_pod_cidrs(read_node(name, client_factory), name)
    return fill(conflist, cidrs, name)
