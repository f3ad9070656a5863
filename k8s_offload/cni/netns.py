"""Moving a device port interface into a pod's network namespace and back, with pyroute2.

The interface carries its own undo information in its alias (IFLA_IFALIAS), which travels with it
across namespaces: the host name, MTU and up state to restore on DEL, and the container id that
owns it. That way DEL needs nothing but the interface, and a port that is already marked is never
handed out twice.

Renames happen inside the namespace that cannot hold a clash: the interface enters the pod under
its host name and is renamed there, and leaves the pod only after getting its host name back.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("cni_plugin")

ALIAS_PREFIX = "offload-cni"
IFA_F_NODAD = 0x02
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
IFF_UP = 0x1
HOST_NETNS = "/proc/self/ns/net"


@dataclass(frozen=True)
class Marker:
    """What the alias of a plugged interface records."""

    host_name: str
    mtu: int
    was_up: bool
    container_id: str

    def encode(self) -> str:
        up = int(self.was_up)
        return f"{ALIAS_PREFIX} host={self.host_name} mtu={self.mtu} up={up} cid={self.container_id}"

    @staticmethod
    def decode(alias: str | None) -> Marker | None:
        if not alias or not alias.startswith(ALIAS_PREFIX + " "):
            return None
        try:
            fields = dict(item.split("=", 1) for item in alias.split()[1:])
            return Marker(fields["host"], int(fields["mtu"]), fields["up"] == "1", fields["cid"])
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class PodInterface:
    """Desired configuration of the pod side."""

    ifname: str
    addresses: tuple[IPv4Interface | IPv6Interface, ...]
    gateway4: IPv4Address | None
    gateway6: IPv6Address | None
    mtu: int | None


@dataclass
class Observed:
    """What an interface in a namespace looks like, for CHECK and idempotent ADD."""

    mac: str
    mtu: int
    up: bool
    marker: Marker | None
    addresses: set[str] = field(default_factory=set)  # "10.244.1.5/32"
    routes: set[tuple[str, str | None]] = field(default_factory=set)  # (dst, gateway)


class PlumbingError(Exception):
    """Netlink refused something; the caller turns this into a CNI error."""


@contextlib.contextmanager
def _ipr(netns_path: str | None) -> Iterator[IPRoute]:
    """IPRoute in the given namespace (by path), or in the plugin's own (host) namespace."""
    try:
        ipr = IPRoute(netns=netns_path, flags=0) if netns_path else IPRoute()
    except OSError as exc:
        raise PlumbingError(f"cannot open network namespace {netns_path}: {exc}") from exc
    with ipr:
        yield ipr


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def host_port_state(host_name: str) -> Marker | bool | None:
    """False if ``host_name`` is not in the host namespace, its Marker if it is plugged, else None."""
    with _ipr(None) as ipr:
        idx = _index(ipr, host_name)
        if idx is None:
            return False
        return Marker.decode(ipr.link("get", index=idx)[0].get("IFLA_IFALIAS"))


def plug(host_name: str, netns_path: str, container_id: str, want: PodInterface) -> str:
    """Move ``host_name`` into the pod namespace and configure it; returns its MAC.

    On any failure everything done so far is undone before the error is raised.
    """
    with _ipr(None) as host:
        idx = _index(host, host_name)
        if idx is None:
            raise PlumbingError(f"device port {host_name} is not in the host namespace")
        link = host.link("get", index=idx)[0]
        marker = Marker(host_name, int(link.get("IFLA_MTU")), bool(link["flags"] & IFF_UP), container_id)
        mac = str(link.get("IFLA_ADDRESS"))
        try:
            pod_fd = os.open(netns_path, os.O_RDONLY)
        except OSError as exc:
            raise PlumbingError(f"cannot open network namespace {netns_path}: {exc}") from exc
        try:
            host.link("set", index=idx, state="down")
            host.link("set", index=idx, ifalias=marker.encode())
            host.link("set", index=idx, net_ns_fd=pod_fd)
        except NetlinkError as exc:
            _restore_in_host(host, idx, marker)
            raise PlumbingError(f"cannot move {host_name} into {netns_path}: {exc}") from exc
        finally:
            os.close(pod_fd)
    try:
        with _ipr(netns_path) as pod:
            _configure(pod, host_name, want)
    except (NetlinkError, PlumbingError, OSError) as exc:
        log.warning("configuring %s in %s failed, rolling back: %s", want.ifname, netns_path, exc)
        unplug(netns_path, container_id, names=(want.ifname, host_name))
        raise PlumbingError(f"cannot configure {want.ifname} in {netns_path}: {exc}") from exc
    return mac


def _configure(pod: IPRoute, host_name: str, want: PodInterface) -> None:
    idx = _index(pod, host_name)
    if idx is None:
        raise PlumbingError(f"{host_name} did not arrive in the pod namespace")
    if _index(pod, want.ifname) is not None:
        raise PlumbingError(f"the pod already has an interface named {want.ifname}")
    pod.link("set", index=idx, ifname=want.ifname)
    if want.mtu:
        pod.link("set", index=idx, mtu=want.mtu)
    for addr in want.addresses:
        # No DAD: the only other station on this link is the datapath, which owns no pod address.
        flags = IFA_F_NODAD if addr.version == 6 else 0
        pod.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen, flags=flags)
    pod.link("set", index=idx, state="up")
    if want.gateway4 and any(a.version == 4 for a in want.addresses):
        pod.route("add", dst=f"{want.gateway4}/32", oif=idx, scope=RT_SCOPE_LINK)
        pod.route("add", dst="0.0.0.0/0", gateway=str(want.gateway4), oif=idx)
    if want.gateway6 and any(a.version == 6 for a in want.addresses):
        if not want.gateway6.is_link_local:
            pod.route("add", dst=f"{want.gateway6}/128", oif=idx, family=socket.AF_INET6)
        pod.route("add", dst="::/0", gateway=str(want.gateway6), oif=idx, family=socket.AF_INET6)


def unplug(netns_path: str | None, container_id: str, names: tuple[str, ...]) -> str | None:
    """Return this container's interface (looked up by ``names``) to the host namespace.

    Tolerates everything being gone already (DEL must succeed then). Returns the host name of the
    interface it returned, or None if there was nothing to do.
    """
    if netns_path and os.path.exists(netns_path):
        with _ipr(netns_path) as pod:
            for name in names:
                idx = _index(pod, name)
                if idx is None:
                    continue
                marker = Marker.decode(pod.link("get", index=idx)[0].get("IFLA_IFALIAS"))
                if marker is None or marker.container_id != container_id:
                    continue
                _leave_pod(pod, idx, marker)
                return marker.host_name
    # The namespace is gone (or never got the interface): a physical port falls back to the
    # initial namespace under some name, so look for our marker there.
    with _ipr(None) as host:
        for link in host.get_links():
            marker = Marker.decode(link.get("IFLA_IFALIAS"))
            if marker and marker.container_id == container_id:
                _restore_in_host(host, int(link["index"]), marker)
                return marker.host_name
    return None


def _leave_pod(pod: IPRoute, idx: int, marker: Marker) -> None:
    pod.link("set", index=idx, state="down")
    if pod.link("get", index=idx)[0].get("ifname") != marker.host_name:
        pod.link("set", index=idx, ifname=marker.host_name)
    host_fd = os.open(HOST_NETNS, os.O_RDONLY)
    try:
        pod.link("set", index=idx, net_ns_fd=host_fd)
    finally:
        os.close(host_fd)
    with _ipr(None) as host:
        host_idx = _index(host, marker.host_name)
        if host_idx is None:
            raise PlumbingError(f"{marker.host_name} did not arrive back in the host namespace")
        _restore_in_host(host, host_idx, marker)


def _restore_in_host(host: IPRoute, idx: int, marker: Marker) -> None:
    """Put name, MTU, alias and up state back as they were before ADD."""
    link = host.link("get", index=idx)[0]
    if link.get("ifname") != marker.host_name:
        host.link("set", index=idx, state="down")
        try:
            host.link("set", index=idx, ifname=marker.host_name)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            log.warning("cannot rename %s back to %s: name taken", link.get("ifname"), marker.host_name)
    host.link("set", index=idx, mtu=marker.mtu, ifalias="")
    if marker.was_up:
        host.link("set", index=idx, state="up")


def observe(netns_path: str, ifname: str) -> Observed | None:
    """Current state of ``ifname`` in a namespace, or None if it is not there."""
    if not Path(netns_path).exists():
        return None
    with _ipr(netns_path) as pod:
        idx = _index(pod, ifname)
        if idx is None:
            return None
        link = pod.link("get", index=idx)[0]
        seen = Observed(
            mac=str(link.get("IFLA_ADDRESS")),
            mtu=int(link.get("IFLA_MTU")),
            up=bool(link["flags"] & IFF_UP),
            marker=Marker.decode(link.get("IFLA_IFALIAS")),
        )
        for msg in pod.get_addr(index=idx):
            seen.addresses.add(str(ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")))
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in pod.get_routes(oif=idx, family=family, table=RT_TABLE_MAIN):
                dst = msg.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
                gw = msg.get("RTA_GATEWAY")
                seen.routes.add((f"{dst}/{msg['dst_len']}", str(gw) if gw else None))
        return seen
