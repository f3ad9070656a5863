"""The CNI commands (ADD, DEL, CHECK, STATUS, GC, VERSION) on top of config, IPAM, node facts and netns.

Section references (§) are to the CNI specification 1.1.0, SPEC.md of containernetworking/cni.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from k8s_offload.cni import ipam, netns, nodefacts
from k8s_offload.cni.config import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    CniEnv,
    DelegatedIpam,
    IPInterface,
    NetConf,
    PoolPort,
    static_addresses,
    version_key,
)
from k8s_offload.cni.errors import (
    CHECK_FAILED,
    INCOMPATIBLE_VERSION,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    NOT_AVAILABLE,
    PLUMBING_FAILED,
    POOL_EXHAUSTED,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    CniError,
)
from k8s_offload.cni.netns import HostLink, Marker, Observed, PlumbingError, PodInterface

log = logging.getLogger("cni_plugin")

NETLINK_ERRORS = (PlumbingError, NetlinkError, OSError)


def version_info(input_version: str | None) -> dict[str, Any]:
    """§2 "VERSION": echo the input's cniVersion and list every version we speak."""
    version = input_version if input_version in SUPPORTED_VERSIONS else LATEST_VERSION
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def require_version(conf: NetConf, command: str) -> None:
    """A command newer than the config's cniVersion is an incompatible-version error (code 1)."""
    if not conf.supports(command):
        raise CniError(INCOMPATIBLE_VERSION, f"config version {conf.cni_version} does not allow {command}")


# -- shared pieces --------------------------------------------------------------------------------


def _gateways(conf: NetConf, facts: nodefacts.NodeFacts) -> tuple[IPv4Address | None, IPv6Address | None]:
    """Gateways from the network config, falling back to the node facts' ``gateway`` section."""
    f4, f6 = facts.gateway()
    return conf.gateway4 or f4, conf.gateway6 or f6


def _desired(
    conf: NetConf, env: CniEnv, facts: nodefacts.NodeFacts, addrs: tuple[IPInterface, ...]
) -> PodInterface:
    gw4, gw6 = _gateways(conf, facts)
    for addr in addrs:
        if (gw4 if addr.version == 4 else gw6) is None:
            raise CniError(
                INVALID_NETWORK_CONFIG,
                f"pod address {addr} needs an IPv{addr.version} gateway (gateway.ipv{addr.version} "
                "in the network config or the node facts)",
            )
    return PodInterface(env.ifname, addrs, gw4, gw6, conf.mtu)


def _check_pool(conf: NetConf, facts: nodefacts.NodeFacts) -> None:
    special = facts.special_ports()
    for p in conf.pool:
        if p.port in special:
            raise CniError(
                INVALID_NETWORK_CONFIG,
                f"pool port {p.port} ({p.interface}) is {special[p.port]} in the node facts",
            )


def _recorded(facts: nodefacts.NodeFacts, marker: Marker) -> bool:
    """Whether the attachment a marker names has a node facts record (ADD completed, no DEL yet)."""
    return any(
        p.get("containerId") == marker.container_id and marker.ifname in (None, p.get("interface"))
        for p in facts.pods
    )


@dataclass(frozen=True)
class PoolSummary:
    """How many pool ports are assigned to pods, free to hand out, or neither (missing, stranded)."""

    assigned: int
    available: int
    unavailable: int


def pool_summary(conf: NetConf, facts: nodefacts.NodeFacts, links: Mapping[str, HostLink]) -> PoolSummary:
    used_ports, used_ifaces = facts.used_ports(), facts.used_host_interfaces()
    assigned = available = 0
    for p in conf.pool:
        link = links.get(p.interface)
        if p.port in used_ports or p.interface in used_ifaces:
            assigned += 1
        elif link is not None and (link.marker is None or not _recorded(facts, link.marker)):
            available += 1  # a marked port nobody owns is reclaimed by the next ADD
    return PoolSummary(assigned, available, len(conf.pool) - assigned - available)


def _free_port(conf: NetConf, facts: nodefacts.NodeFacts) -> PoolPort:
    """The first pool port that no record uses and that sits unmarked in the host namespace.

    Under the node facts lock no other ADD or DEL is running, so a marked pool port in the host
    namespace whose attachment has no record was left by an ADD or DEL that was killed half-way:
    restore it first, which returns it to the pool.
    """
    pool_names = {p.interface for p in conf.pool}
    stale = netns.restore_marked(lambda m: m.host_name in pool_names and not _recorded(facts, m))
    for name in stale:
        log.warning("reclaimed pool interface %s left behind by an interrupted ADD or DEL", name)
    links = netns.host_links()
    used_ports, used_ifaces = facts.used_ports(), facts.used_host_interfaces()
    for p in conf.pool:
        if p.port in used_ports or p.interface in used_ifaces:
            continue
        link = links.get(p.interface)
        if link is None:
            log.warning("pool interface %s is not in the host namespace; skipping it", p.interface)
            continue
        if link.marker is not None:
            log.warning("pool interface %s is still marked by %s; skipping it", p.interface, link.marker)
            continue
        return p
    raise CniError(
        POOL_EXHAUSTED,
        "device port pool exhausted",
        f"all {len(conf.pool)} pool interfaces are assigned or missing from the host namespace",
    )


def build_result(
    conf: NetConf, env: CniEnv, want: PodInterface, mac: str, dns: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ADD result in the config's cniVersion (§5 "ADD Success").

    Versions before 1.0.0 tag each IP with its version; 1.1.0 adds the interface MTU. A
    ``prevResult`` (we are not first in the chain) is passed on with our interface appended.
    """
    prev = conf.prev_result or {}
    interfaces = [i for i in prev.get("interfaces", []) if isinstance(i, dict)]
    ips = [i for i in prev.get("ips", []) if isinstance(i, dict)]
    routes = [r for r in prev.get("routes", []) if isinstance(r, dict)]
    index = len(interfaces)
    iface: dict[str, Any] = {"name": want.ifname, "mac": mac, "sandbox": env.netns}
    if version_key(conf.cni_version) >= (1, 1, 0) and want.mtu:
        iface["mtu"] = want.mtu
    interfaces.append(iface)
    for addr in want.addresses:
        gw = want.gateway4 if addr.version == 4 else want.gateway6
        entry: dict[str, Any] = {"address": str(addr), "gateway": str(gw), "interface": index}
        if version_key(conf.cni_version) < (1, 0, 0):
            entry = {"version": str(addr.version), **entry}
        ips.append(entry)
        routes.append({"dst": "0.0.0.0/0" if addr.version == 4 else "::/0", "gw": str(gw)})
    return {
        "cniVersion": conf.cni_version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
        "dns": dict(conf.dns or dns or prev.get("dns") or {}),
    }


# -- ADD ------------------------------------------------------------------------------------------


def cmd_add(conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> dict[str, Any]:
    namespace, name = env.pod
    with nodefacts.locked(conf.node_facts) as facts:
        _check_pool(conf, facts)
        _gateways(conf, facts)  # a broken gateway section fails before any allocation
        _refuse_existing(conf, env, facts, namespace, name)
    if isinstance(conf.ipam, DelegatedIpam):
        delegated = conf.ipam
        result = ipam.parse_add_result(
            delegated.type, ipam.execute(delegated, "ADD", conf, environ, env.path)
        )
        addrs, dns = result.addresses, result.dns
    else:
        delegated, dns = None, None
        addrs = static_addresses(conf, env, conf.ipam)
    try:
        with nodefacts.locked(conf.node_facts) as facts:
            _refuse_existing(conf, env, facts, namespace, name)
            want = _desired(conf, env, facts, addrs)
            port = _free_port(conf, facts)
            try:
                mac = netns.plug(port.interface, env.ns, env.container_id, want)
            except NETLINK_ERRORS as exc:
                raise CniError(
                    PLUMBING_FAILED, f"cannot plug {port.interface} into the pod", str(exc)
                ) from exc
            try:
                facts.pods.append(
                    {
                        "namespace": namespace,
                        "name": name,
                        "port": port.port,
                        "mac": mac,
                        "interface": env.ifname,
                        "hostInterface": port.interface,
                        "containerId": env.container_id,
                    }
                )
                facts.save()
            except BaseException:
                netns.unplug(env.ns, env.container_id, env.ifname)
                raise
    except BaseException:
        if delegated is not None:
            _release(delegated, conf, env, environ)  # §4: a failed ADD runs the delegate's DEL
        raise
    log.info("plugged %s (port %d) into %s/%s as %s", port.interface, port.port, namespace, name, env.ifname)
    return build_result(conf, env, want, mac, dns)


def _refuse_existing(
    conf: NetConf, env: CniEnv, facts: nodefacts.NodeFacts, namespace: str, name: str
) -> None:
    """§2 "ADD": an existing interface of that name is an error; a stale record is dropped."""
    try:
        exists = netns.has_interface(env.ns, env.ifname)
    except NETLINK_ERRORS as exc:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_NETNS {env.netns} cannot be used", str(exc)) from exc
    if exists:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_IFNAME: {env.netns} already has an interface {env.ifname}")
    stale = facts.find_container(env.container_id, env.ifname)
    if stale is not None:
        log.warning("dropping stale node facts entry for container %s", env.container_id)
        try:
            netns.unplug(None, env.container_id, env.ifname)
        except NETLINK_ERRORS as exc:
            raise CniError(PLUMBING_FAILED, "cannot return the port of a stale record", str(exc)) from exc
        facts.remove(stale)
        facts.save()
    other = facts.find_pod(namespace, name)
    if other is not None:
        raise CniError(
            TRY_AGAIN_LATER,
            f"pod {namespace}/{name} still has port {other.get('port')} from container "
            f"{other.get('containerId')}; waiting for its DEL",
        )


def _release(delegated: DelegatedIpam, conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> None:
    try:
        ipam.execute(delegated, "DEL", conf, environ, env.path)
    except CniError as exc:
        log.error("IPAM %s DEL after a failed ADD failed: %s %s", delegated.type, exc.msg, exc.details)


# -- DEL ------------------------------------------------------------------------------------------


def cmd_del(conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> None:
    """Undo ADD; succeeds when there is nothing (left) to undo (§2 "DEL")."""
    with nodefacts.locked(conf.node_facts) as facts:
        entry = facts.find_container(env.container_id, env.ifname)
        try:
            returned = netns.unplug(env.ns or None, env.container_id, env.ifname)
        except NETLINK_ERRORS as exc:
            raise CniError(PLUMBING_FAILED, "cannot return the interface to the host", str(exc)) from exc
        if entry is not None:
            facts.remove(entry)
            facts.save()
    log.info(
        "DEL %s: returned %s, record %s",
        env.container_id,
        ", ".join(returned) or "nothing",
        "removed" if entry else "absent",
    )
    # §4: DEL is also run on the delegated plugin, after our own cleanup, so that an address is
    # released only once no interface carries it any more.
    if isinstance(conf.ipam, DelegatedIpam):
        ipam.execute(conf.ipam, "DEL", conf, environ, env.path)


# -- CHECK ----------------------------------------------------------------------------------------


def cmd_check(conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> None:
    """§2 "CHECK": what ``prevResult`` lists for our interface is still in place, and the datapath's
    view (node facts record, port marker) still matches it; then CHECK the IPAM plugin."""
    require_version(conf, "CHECK")
    prev = conf.prev_result
    if not prev:
        raise CniError(INVALID_NETWORK_CONFIG, "prevResult: required for CHECK (the result of ADD)")
    index, expected = _prev_interface(prev, env)
    addrs = _prev_addresses(prev, index)
    with nodefacts.locked(conf.node_facts) as facts:
        entry = facts.find_container(env.container_id, env.ifname)
        want = _desired(conf, env, facts, addrs)
    if entry is None:
        raise CniError(UNKNOWN_CONTAINER, f"no node facts record for container {env.container_id}")
    try:
        seen = netns.observe(env.ns, env.ifname)
    except NETLINK_ERRORS as exc:
        raise CniError(CHECK_FAILED, f"cannot inspect {env.netns}", str(exc)) from exc
    if seen is None:
        raise CniError(CHECK_FAILED, f"{env.ifname} is missing from {env.netns}")
    problems = _differences(want, seen, env.container_id, entry)
    if isinstance(expected.get("mac"), str) and expected["mac"].lower() != seen.mac.lower():
        problems.append(f"MAC {seen.mac}, prevResult says {expected['mac']}")
    problems += _prev_route_differences(prev, want, seen)
    if problems:
        raise CniError(CHECK_FAILED, f"{env.ifname} differs from what ADD set up", "; ".join(problems))
    if isinstance(conf.ipam, DelegatedIpam):
        ipam.execute(conf.ipam, "CHECK", conf, environ, env.path)  # §2 "CHECK": pass its errors on


def _prev_interface(prev: Mapping[str, Any], env: CniEnv) -> tuple[int, Mapping[str, Any]]:
    interfaces = prev.get("interfaces")
    for i, iface in enumerate(interfaces if isinstance(interfaces, list) else []):
        if isinstance(iface, dict) and iface.get("name") == env.ifname and iface.get("sandbox") == env.netns:
            return i, iface
    raise CniError(CHECK_FAILED, f"prevResult lists no interface {env.ifname} in {env.netns}")


def _prev_addresses(prev: Mapping[str, Any], index: int) -> tuple[IPInterface, ...]:
    out: list[IPInterface] = []
    ips = prev.get("ips")
    for i, ip in enumerate(ips if isinstance(ips, list) else []):
        if not isinstance(ip, dict) or ip.get("interface") != index:
            continue
        try:
            out.append(ip_interface(str(ip.get("address"))))
        except ValueError:
            raise CniError(
                INVALID_NETWORK_CONFIG, f"prevResult.ips[{i}].address: not a CIDR address"
            ) from None
    return tuple(out)


def _differences(want: PodInterface, seen: Observed, container_id: str, entry: dict[str, Any]) -> list[str]:
    problems = []
    if seen.marker is None or not seen.marker.owned_by(container_id, want.ifname):
        problems.append("interface is not marked as plugged for this container")
    if not seen.up:
        problems.append("interface is down")
    if want.mtu and seen.mtu != want.mtu:
        problems.append(f"MTU {seen.mtu}, want {want.mtu}")
    if entry.get("mac") and str(entry["mac"]).lower() != seen.mac.lower():
        problems.append(f"MAC {seen.mac}, node facts say {entry['mac']} (the datapath uses that one)")
    for addr in want.addresses:
        if str(addr) not in seen.addresses:
            problems.append(f"address {addr} missing")
    for route in _expected_routes(want):
        if route not in seen.routes:
            problems.append(f"route {route[0]}" + (f" via {route[1]}" if route[1] else "") + " missing")
    return problems


def _expected_routes(want: PodInterface) -> list[tuple[str, str | None]]:
    routes: list[tuple[str, str | None]] = []
    versions = {a.version for a in want.addresses}
    if want.gateway4 and 4 in versions:
        routes += [(f"{want.gateway4}/32", None), ("0.0.0.0/0", str(want.gateway4))]
    if want.gateway6 and 6 in versions:
        if not want.gateway6.is_link_local:
            routes.append((f"{want.gateway6}/128", None))
        routes.append(("::/0", str(want.gateway6)))
    return routes


def _prev_route_differences(prev: Mapping[str, Any], want: PodInterface, seen: Observed) -> list[str]:
    """Routes in prevResult through our gateways must exist; others belong to later plugins."""
    ours = {str(g) for g in (want.gateway4, want.gateway6) if g is not None}
    problems = []
    routes = prev.get("routes")
    for route in routes if isinstance(routes, list) else []:
        if not isinstance(route, dict) or route.get("gw") not in ours:
            continue
        try:
            key = (str(ip_interface(str(route.get("dst"))).network), str(ip_interface(route["gw"]).ip))
        except ValueError:
            problems.append(f"prevResult route {route.get('dst')!r} is not a CIDR")
            continue
        if key not in seen.routes:
            problems.append(f"prevResult route {key[0]} via {key[1]} missing")
    return problems


# -- STATUS and GC --------------------------------------------------------------------------------


def cmd_status(conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> None:
    """§2 "STATUS": ready for ADD means readable node facts, a free pool port, a ready IPAM plugin."""
    require_version(conf, "STATUS")
    try:
        with nodefacts.locked(conf.node_facts) as facts:
            _check_pool(conf, facts)
            _gateways(conf, facts)
            summary = pool_summary(conf, facts, netns.host_links())
    except CniError as exc:
        raise CniError(NOT_AVAILABLE, f"cannot serve ADD: {exc.msg}", exc.details) from exc
    if summary.available == 0:
        raise CniError(
            NOT_AVAILABLE,
            "device port pool exhausted",
            f"{summary.assigned} assigned, {summary.unavailable} missing or stranded of {len(conf.pool)}",
        )
    if isinstance(conf.ipam, DelegatedIpam):
        try:
            ipam.execute(conf.ipam, "STATUS", conf, environ, env.path)
        except CniError as exc:
            raise CniError(
                NOT_AVAILABLE, f"IPAM plugin {conf.ipam.type} is not available: {exc.msg}", exc.details
            ) from exc


def cmd_gc(conf: NetConf, env: CniEnv, environ: Mapping[str, str]) -> None:
    """§2 "GC": release every port and record of an attachment the runtime no longer lists.

    Continues past errors, then reports them all; the IPAM plugin's GC runs in any case.
    """
    require_version(conf, "GC")
    valid = conf.valid_attachments or frozenset()
    errors: list[CniError] = []

    def stale(marker: Marker) -> bool:
        if marker.ifname is None:
            return not any(cid == marker.container_id for cid, _ in valid)
        return (marker.container_id, marker.ifname) not in valid

    pool_names = {p.interface for p in conf.pool}
    try:
        with nodefacts.locked(conf.node_facts) as facts:
            gone = [p for p in facts.pods if (p.get("containerId"), p.get("interface")) not in valid]
            for entry in gone:
                facts.remove(entry)
            try:
                returned = netns.restore_marked(lambda m: m.host_name in pool_names and stale(m))
            except NETLINK_ERRORS as exc:
                returned = []
                errors.append(CniError(PLUMBING_FAILED, "GC: cannot restore marked ports", str(exc)))
            if gone:
                facts.save()
        log.info(
            "GC: removed %d stale records, returned %s",
            len(gone),
            ", ".join(returned) or "no ports",
        )
    except CniError as exc:
        errors.append(exc)
    if isinstance(conf.ipam, DelegatedIpam):
        try:
            ipam.execute(conf.ipam, "GC", conf, environ, env.path)
        except CniError as exc:
            errors.append(exc)
    if errors:
        first = errors[0]
        details = "; ".join(f"{e.msg}{f' ({e.details})' if e.details else ''}" for e in errors)
        raise CniError(first.code, f"GC incomplete: {first.msg}", details)
