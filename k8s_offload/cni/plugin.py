"""The CNI commands: ADD, DEL, CHECK and VERSION, on top of config, node facts and netns plumbing."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any

from k8s_offload.cni import netns, nodefacts
from k8s_offload.cni.config import SUPPORTED_VERSIONS, CniEnv, IPInterface, NetConf, PoolPort, pod_addresses
from k8s_offload.cni.errors import (
    CHECK_FAILED,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    PLUMBING_FAILED,
    POOL_EXHAUSTED,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    CniError,
)
from k8s_offload.cni.netns import Observed, PlumbingError, PodInterface

log = logging.getLogger("cni_plugin")


def version_info() -> dict[str, Any]:
    return {"cniVersion": SUPPORTED_VERSIONS[-1], "supportedVersions": list(SUPPORTED_VERSIONS)}


def _pod_identity(env: CniEnv) -> tuple[str, str]:
    pod = env.pod
    if pod is None:
        raise CniError(INVALID_ENVIRONMENT, "CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME")
    return pod


def _gateways(conf: NetConf, facts: nodefacts.NodeFacts) -> tuple[IPv4Address | None, IPv6Address | None]:
    """Gateways from the network config, falling back to the node facts' ``gateway`` section."""
    f4, f6 = facts.gateway()
    return conf.gateway4 or f4, conf.gateway6 or f6


def _desired(conf: NetConf, env: CniEnv, facts: nodefacts.NodeFacts) -> PodInterface:
    addrs = pod_addresses(conf, env)
    gw4, gw6 = _gateways(conf, facts)
    for addr in addrs:
        if (gw4 if addr.version == 4 else gw6) is None:
            raise CniError(
                INVALID_NETWORK_CONFIG,
                f"pod address {addr} needs an IPv{addr.version} gateway (gateway.ipv{addr.version} "
                "in the network config or the node facts)",
            )
    return PodInterface(env.ifname, addrs, gw4, gw6, conf.mtu)


def build_result(conf: NetConf, env: CniEnv, want: PodInterface, mac: str) -> dict[str, Any]:
    """The ADD result in the config's cniVersion (0.4.0 additionally tags each IP with its version)."""
    ips: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for addr in want.addresses:
        gw = want.gateway4 if addr.version == 4 else want.gateway6
        entry: dict[str, Any] = {"address": str(addr), "gateway": str(gw), "interface": 0}
        if conf.cni_version == "0.4.0":
            entry = {"version": str(addr.version), **entry}
        ips.append(entry)
        routes.append({"dst": "0.0.0.0/0" if addr.version == 4 else "::/0", "gw": str(gw)})
    return {
        "cniVersion": conf.cni_version,
        "interfaces": [{"name": want.ifname, "mac": mac, "sandbox": env.netns}],
        "ips": ips,
        "routes": routes,
        "dns": {},
    }


def _check_pool(conf: NetConf, facts: nodefacts.NodeFacts) -> None:
    special = facts.special_ports()
    for p in conf.pool:
        if p.port in special:
            raise CniError(
                INVALID_NETWORK_CONFIG,
                f"pool port {p.port} ({p.interface}) is {special[p.port]} in the node facts",
            )


def _free_port(conf: NetConf, facts: nodefacts.NodeFacts) -> PoolPort:
    used_ports, used_ifaces = facts.used_ports(), facts.used_host_interfaces()
    for p in conf.pool:
        if p.port in used_ports or p.interface in used_ifaces:
            continue
        state = netns.host_port_state(p.interface)
        if state is False:
            log.warning("pool interface %s is not in the host namespace; skipping it", p.interface)
            continue
        if state is not None:
            log.warning("pool interface %s is still marked by %s; skipping it", p.interface, state)
            continue
        return p
    raise CniError(
        POOL_EXHAUSTED,
        "device port pool exhausted",
        f"all {len(conf.pool)} pool interfaces are assigned or missing from the host namespace",
    )


def cmd_add(conf: NetConf, env: CniEnv) -> dict[str, Any]:
    namespace, name = _pod_identity(env)
    with nodefacts.locked(conf.node_facts) as facts:
        _check_pool(conf, facts)
        want = _desired(conf, env, facts)
        existing = facts.find_container(env.container_id, env.ifname)
        if existing is not None:
            seen = netns.observe(env.netns, env.ifname)
            if seen and seen.marker and seen.marker.container_id == env.container_id:
                log.info("ADD for %s/%s repeated; interface already in place", namespace, name)
                return build_result(conf, env, want, seen.mac)
            log.warning("dropping stale node facts entry for container %s", env.container_id)
            facts.remove(existing)
        other = facts.find_pod(namespace, name)
        if other is not None:
            raise CniError(
                TRY_AGAIN_LATER,
                f"pod {namespace}/{name} still has port {other.get('port')} from container "
                f"{other.get('containerId')}; waiting for its DEL",
            )
        port = _free_port(conf, facts)
        try:
            mac = netns.plug(port.interface, env.netns, env.container_id, want)
        except PlumbingError as exc:
            raise CniError(PLUMBING_FAILED, f"cannot plug {port.interface} into the pod", str(exc)) from exc
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
            netns.unplug(env.netns, env.container_id, names=(env.ifname,))
            raise
    log.info("plugged %s (port %d) into %s/%s as %s", port.interface, port.port, namespace, name, env.ifname)
    return build_result(conf, env, want, mac)


def cmd_del(conf: NetConf, env: CniEnv) -> None:
    """Undo ADD; succeeds when there is nothing (left) to undo, as the spec requires."""
    with nodefacts.locked(conf.node_facts) as facts:
        entry = facts.find_container(env.container_id, env.ifname)
        names = (env.ifname,) + ((entry["hostInterface"],) if entry and entry.get("hostInterface") else ())
        try:
            returned = netns.unplug(env.netns or None, env.container_id, names=names)
        except (PlumbingError, OSError) as exc:
            raise CniError(PLUMBING_FAILED, "cannot return the interface to the host", str(exc)) from exc
        if entry is not None:
            facts.remove(entry)
            facts.save()
    log.info("DEL %s: returned %s, record %s", env.container_id, returned, "removed" if entry else "absent")


def cmd_check(conf: NetConf, env: CniEnv) -> None:
    """Verify the interface, addresses and routes ADD set up are still there."""
    with nodefacts.locked(conf.node_facts) as facts:
        want = _desired(conf, env, facts)
        entry = facts.find_container(env.container_id, env.ifname)
    if entry is None:
        raise CniError(UNKNOWN_CONTAINER, f"no node facts record for container {env.container_id}")
    seen = netns.observe(env.netns, env.ifname)
    if seen is None:
        raise CniError(CHECK_FAILED, f"{env.ifname} is missing from {env.netns}")
    problems = _differences(want, seen, env.container_id, entry)
    problems += _prev_result_differences(conf, seen)
    if problems:
        raise CniError(CHECK_FAILED, f"{env.ifname} differs from what ADD set up", "; ".join(problems))


def _differences(want: PodInterface, seen: Observed, container_id: str, entry: dict[str, Any]) -> list[str]:
    problems = []
    if seen.marker is None or seen.marker.container_id != container_id:
        problems.append("interface is not marked as plugged for this container")
    if not seen.up:
        problems.append("interface is down")
    if want.mtu and seen.mtu != want.mtu:
        problems.append(f"MTU {seen.mtu}, want {want.mtu}")
    if entry.get("mac") and str(entry["mac"]).lower() != seen.mac.lower():
        problems.append(f"MAC {seen.mac}, node facts say {entry['mac']}")
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


def _prev_result_differences(conf: NetConf, seen: Observed) -> list[str]:
    """CHECK also gets the ADD result as prevResult; its addresses must still be configured."""
    if not conf.prev_result:
        return []
    problems = []
    for ip in conf.prev_result.get("ips", []) or []:
        address = ip.get("address") if isinstance(ip, dict) else None
        if isinstance(address, str) and _normalize(address) not in seen.addresses:
            problems.append(f"prevResult address {address} missing")
    return problems


def _normalize(cidr: str) -> str:
    try:
        iface: IPInterface = ip_interface(cidr)
    except ValueError:
        return cidr
    return str(iface)
