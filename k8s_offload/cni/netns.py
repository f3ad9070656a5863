"""Moving a device port interface into a pod's network namespace and back, with pyroute2.

The interface carries its own undo information in its alias (IFLA_IFALIAS), which travels with it
across namespaces: the host name, MTU and up state to restore, and the attachment (container id
and pod interface name) that owns it. The alias is set *before* anything else changes and cleared
only *after* everything is restored, so at every instant between those two steps the port is
findable by its marker wherever it is (host or pod namespace, under either name). A process
killed at any point therefore leaves a port that DEL (which searches by marker, not by name), GC
and the next ADD (which reclaim marked ports nobody owns) can return to the pool.

Renames happen inside the namespace that cannot hold a clash: the interface enters the pod under
its host name and is renamed there, and leaves the pod only after getting its host name back.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from pathlib import Path
from typing import Any

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
    ifname: str | None  # None in markers written before the pod interface name was recorded

    def encode(self) -> str:
        up = int(self.was_up)
        ifname = f" if={self.ifname}" if self.ifname else ""
        return f"{ALIAS_PREFIX} host={self.host_name} mtu={self.mtu} up={up}{ifname} cid={self.container_id}"

    def owned_by(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname in (None, ifname)

    @staticmethod
    def decode(alias: object) -> Marker | None:
        if not isinstance(alias, str) or not alias.startswith(ALIAS_PREFIX + " "):
            return None
        try:
            fields = dict(item.split("=", 1) for item in alias.split()[1:])
            return Marker(
                fields["host"], int(fields["mtu"]), fields["up"] == "1", fields["cid"], fields.get("if")
            )
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
    """What an interface in a namespace looks like, for CHECK."""

    mac: str
    mtu: int
    up: bool
    marker: Marker | None
    addresses: set[str] = field(default_factory=set)  # "10.244.1.5/32"
    routes: set[tuple[str, str | None]] = field(default_factory=set)  # (dst, gateway)


@dataclass(frozen=True)
class HostLink:
    """A link in the host namespace, as far as the pool is concerned."""

    index: int
    name: str
    marker: Marker | None


class PlumbingError(Exception):
    """Netlink refused something; the caller turns this into a CNI error."""


@contextlib.contextmanager
def _ipr(netns_path: str | None) -> Iterator[IPRoute]:
    """IPRoute in the given namespace (by path), or in the plugin's own (host) namespace."""
    try:
        ipr = IPRoute(netns=netns_path, flags=0) if netns_path else IPRoute()
    except (OSError, NetlinkError) as exc:
        raise PlumbingError(f"cannot open network namespace {netns_path}: {exc}") from exc
    with ipr:
        yield ipr


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _links(ipr: IPRoute) -> list[HostLink]:
    return [
        HostLink(int(m["index"]), str(m.get("IFLA_IFNAME")), Marker.decode(m.get("IFLA_IFALIAS")))
        for m in ipr.get_links()
    ]


def host_links() -> dict[str, HostLink]:
    """Every link of the host namespace by name (one netlink dump)."""
    with _ipr(None) as host:
        return {link.name: link for link in _links(host)}


def has_interface(netns_path: str, ifname: str) -> bool:
    """Whether the pod namespace already has ``ifname`` (ADD must then fail, §2 "ADD")."""
    if not Path(netns_path).exists():
        raise PlumbingError(f"network namespace {netns_path} does not exist")
    with _ipr(netns_path) as pod:
        return _index(pod, ifname) is not None


def plug(host_name: str, netns_path: str, container_id: str, want: PodInterface) -> str:
    """Move ``host_name`` into the pod namespace and configure it; returns its MAC.

    On any failure everything done so far is undone before the error is raised.
    """
    with _ipr(None) as host:
        idx = _index(host, host_name)
        if idx is None:
            raise PlumbingError(f"device port {host_name} is not in the host namespace")
        link = host.link("get", index=idx)[0]
        marker = Marker(
            host_name, int(link.get("IFLA_MTU")), bool(link["flags"] & IFF_UP), container_id, want.ifname
        )
        mac = str(link.get("IFLA_ADDRESS"))
        try:
            pod_fd = os.open(netns_path, os.O_RDONLY)
        except OSError as exc:
            raise PlumbingError(f"cannot open network namespace {netns_path}: {exc}") from exc
        try:
            host.link("set", index=idx, ifalias=marker.encode())  # first: from here on it is findable
            host.link("set", index=idx, state="down")
            host.link("set", index=idx, net_ns_fd=pod_fd)
        except NetlinkError as exc:
            _restore(host, idx, marker)
            raise PlumbingError(f"cannot move {host_name} into {netns_path}: {exc}") from exc
        finally:
            os.close(pod_fd)
    try:
        with _ipr(netns_path) as pod:
            _configure(pod, host_name, want)
    except (NetlinkError, PlumbingError, OSError) as exc:
        log.warning("configuring %s in %s failed, rolling back: %s", want.ifname, netns_path, exc)
        unplug(netns_path, container_id, want.ifname)
        raise PlumbingError(f"cannot configure {want.ifname} in {netns_path}: {exc}") from exc
    return mac


def _configure(pod: IPRoute, host_name: str, want: PodInterface) -> None:
    idx = _index(pod, host_name)
    if idx is None:
        raise PlumbingError(f"{host_name} did not arrive in the pod namespace")
    if host_name != want.ifname and _index(pod, want.ifname) is not None:
        raise PlumbingError(f"the pod already has an interface named {want.ifname}")
    if host_name != want.ifname:
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


def unplug(netns_path: str | None, container_id: str, ifname: str) -> list[str]:
    """Return the attachment's port(s) to the host namespace; returns their host names.

    Ports are found by their marker, under whatever name they have: in the pod namespace (if it
    still exists), then in the host namespace (a physical port falls back there when its
    namespace is destroyed, and a port of an ADD or DEL killed half-way may be there). Finding
    nothing is success: DEL must succeed when there is nothing (left) to undo.
    """
    returned: list[str] = []
    if netns_path and os.path.exists(netns_path):
        with _ipr(netns_path) as pod:
            for link in _links(pod):
                if link.marker and link.marker.owned_by(container_id, ifname):
                    _leave_pod(pod, link.index, link.marker)
                    returned.append(link.marker.host_name)
    returned += restore_marked(lambda m: m.owned_by(container_id, ifname))
    return returned


def restore_marked(select: Callable[[Marker], bool]) -> list[str]:
    """Restore every marked port in the host namespace that ``select`` picks; returns host names."""
    returned = []
    with _ipr(None) as host:
        for link in _links(host):
            if link.marker and select(link.marker):
                _restore(host, link.index, link.marker)
                returned.append(link.marker.host_name)
    return returned


def _leave_pod(pod: IPRoute, idx: int, marker: Marker) -> None:
    pod.link("set", index=idx, state="down")
    if pod.link("get", index=idx)[0].get("IFLA_IFNAME") != marker.host_name:
        pod.link("set", index=idx, ifname=marker.host_name)
    host_fd = os.open(HOST_NETNS, os.O_RDONLY)
    try:
        pod.link("set", index=idx, net_ns_fd=host_fd)
    finally:
        os.close(host_fd)
    with _ipr(None) as host:
        for link in _links(host):
            if link.marker == marker:
                _restore(host, link.index, marker)
                return
    raise PlumbingError(f"{marker.host_name} did not arrive back in the host namespace")


def _restore(host: IPRoute, idx: int, marker: Marker) -> None:
    """Put name, MTU and up state back as they were before ADD; clear the marker last."""
    link = host.link("get", index=idx)[0]
    if link.get("IFLA_IFNAME") != marker.host_name:
        host.link("set", index=idx, state="down")
        try:
            host.link("set", index=idx, ifname=marker.host_name)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            log.warning("cannot rename %s back to %s: name taken", link.get("IFLA_IFNAME"), marker.host_name)
    host.link("set", index=idx, mtu=marker.mtu)
    host.link("set", index=idx, state="up" if marker.was_up else "down")
    host.link("set", index=idx, ifalias="")


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
                seen.routes.add(_route_key(msg, family))
        return seen


def _route_key(msg: Any, family: int) -> tuple[str, str | None]:
    dst = msg.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
    gw = msg.get("RTA_GATEWAY")
    return str(ip_interface(f"{dst}/{msg['dst_len']}").network), str(gw) if gw else None
