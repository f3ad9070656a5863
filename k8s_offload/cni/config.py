"""Parse and validate what the runtime hands the plugin: the CNI_* variables and the network config.

All validation happens here, before anything is touched, so that a bad invocation fails with the
right CNI error code and leaves the node exactly as it was.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from k8s_offload.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    UNSUPPORTED_FIELD,
    CniError,
)

PLUGIN_TYPE = "offload-cni"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
MAX_PORT = 509  # 510 is the CPU port and 511 the drop port of the v1model pipeline
_IFNAME = re.compile(r"[^\s/:]{1,15}")
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

IPInterface = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class PoolPort:
    """A device port interface on the host that can be handed to one pod."""

    interface: str
    port: int


@dataclass(frozen=True)
class NetConf:
    """The plugin's view of the network configuration (see docs/cni.md for the fields)."""

    cni_version: str
    name: str
    pool: tuple[PoolPort, ...]
    node_facts: Path
    mtu: int | None
    gateway4: IPv4Address | None  # None: take it from the node facts file
    gateway6: IPv6Address | None
    ipam_addresses: tuple[IPInterface, ...]
    runtime_ips: tuple[IPInterface, ...]
    prev_result: Mapping[str, Any] | None


@dataclass(frozen=True)
class CniEnv:
    """The CNI_* environment variables of one invocation."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: Mapping[str, str]
    path: tuple[str, ...]

    @property
    def pod(self) -> tuple[str, str] | None:
        """(namespace, name) of the Kubernetes pod, from CNI_ARGS, if the runtime passed them."""
        ns, name = self.args.get("K8S_POD_NAMESPACE"), self.args.get("K8S_POD_NAME")
        return (ns, name) if ns and name else None


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    """Read the CNI_* variables; which ones are required depends on the command (spec §"Parameters")."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            INVALID_ENVIRONMENT, f"CNI_COMMAND must be one of {', '.join(COMMANDS)}, got {command!r}"
        )
    env = CniEnv(
        command=command,
        container_id=environ.get("CNI_CONTAINERID", ""),
        netns=environ.get("CNI_NETNS", ""),
        ifname=environ.get("CNI_IFNAME", ""),
        args=parse_cni_args(environ.get("CNI_ARGS", "")),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(":") if p),
    )
    if command == "VERSION":
        return env
    required = ["CNI_CONTAINERID", "CNI_IFNAME"] + (["CNI_NETNS"] if command in ("ADD", "CHECK") else [])
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"missing environment variables: {', '.join(missing)}")
    if not _CONTAINER_ID.fullmatch(env.container_id):
        raise CniError(
            INVALID_ENVIRONMENT, f"CNI_CONTAINERID is not a valid container id: {env.container_id!r}"
        )
    if not _IFNAME.fullmatch(env.ifname) or env.ifname in (".", ".."):
        raise CniError(INVALID_ENVIRONMENT, f"CNI_IFNAME is not a valid interface name: {env.ifname!r}")
    return env


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS is ``KEY=VALUE`` pairs separated by semicolons."""
    args: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS: expected KEY=VALUE, got {item!r}")
        args[key] = value
    return args


def peek_version(data: bytes) -> str:
    """Best-effort cniVersion of a config, for error replies before it has been validated."""
    try:
        version = json.loads(data).get("cniVersion")
    except (ValueError, AttributeError):
        return SUPPORTED_VERSIONS[-1]
    return version if isinstance(version, str) and version else SUPPORTED_VERSIONS[-1]


def parse_netconf(data: bytes) -> NetConf:
    """Validate the network configuration JSON read from stdin."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(DECODE_FAILURE, "network configuration is not valid JSON", str(exc)) from exc
    if not isinstance(raw, dict):
        raise CniError(DECODE_FAILURE, "network configuration must be a JSON object")
    version = raw.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cniVersion {version!r} is not supported",
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    if raw.get("type") != PLUGIN_TYPE:
        raise CniError(INVALID_NETWORK_CONFIG, f"type must be {PLUGIN_TYPE!r}, got {raw.get('type')!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(INVALID_NETWORK_CONFIG, "name: required, a non-empty string")
    node_facts = raw.get("nodeFacts")
    if not isinstance(node_facts, str) or not node_facts.startswith("/"):
        raise CniError(INVALID_NETWORK_CONFIG, "nodeFacts: required, an absolute path")
    gateway = _mapping(raw, "gateway")
    gw4 = _address(gateway.get("ipv4"), 4, "gateway.ipv4")
    gw6 = _address(gateway.get("ipv6"), 6, "gateway.ipv6")
    runtime = _mapping(raw, "runtimeConfig")
    prev = raw.get("prevResult")
    return NetConf(
        cni_version=version,
        name=name,
        pool=_pool(raw.get("pool")),
        node_facts=Path(node_facts),
        mtu=_mtu(raw.get("mtu")),
        gateway4=gw4 if isinstance(gw4, IPv4Address) else None,  # _address checked the family
        gateway6=gw6 if isinstance(gw6, IPv6Address) else None,
        ipam_addresses=_ipam(raw.get("ipam")),
        runtime_ips=_interfaces(runtime.get("ips", []), "runtimeConfig.ips"),
        prev_result=prev if isinstance(prev, dict) else None,
    )


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise CniError(INVALID_NETWORK_CONFIG, f"{key}: must be an object")
    return value


def _address(value: object, version: int, where: str) -> IPv4Address | IPv6Address | None:
    if value is None:
        return None
    try:
        addr = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not an IP address: {value!r}") from None
    if addr.version != version or addr.is_multicast or addr.is_unspecified:
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not a unicast IPv{version} address: {value}")
    return addr


def _pool(value: object) -> tuple[PoolPort, ...]:
    if not isinstance(value, list) or not value:
        raise CniError(INVALID_NETWORK_CONFIG, "pool: required, a non-empty list of {interface, port}")
    pool: list[PoolPort] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise CniError(INVALID_NETWORK_CONFIG, f"pool[{i}]: must be an object")
        interface, port = entry.get("interface"), entry.get("port")
        if not isinstance(interface, str) or not _IFNAME.fullmatch(interface):
            raise CniError(
                INVALID_NETWORK_CONFIG, f"pool[{i}].interface: not an interface name: {interface!r}"
            )
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= MAX_PORT:
            raise CniError(INVALID_NETWORK_CONFIG, f"pool[{i}].port: must be an integer 0..{MAX_PORT}")
        pool.append(PoolPort(interface, port))
    for attr in ("interface", "port"):
        values = [getattr(p, attr) for p in pool]
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise CniError(INVALID_NETWORK_CONFIG, f"pool: duplicate {attr}: {', '.join(dupes)}")
    return tuple(pool)


def _mtu(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        raise CniError(INVALID_NETWORK_CONFIG, f"mtu: must be an integer 68..65535, got {value!r}")
    return value


def _ipam(value: object) -> tuple[IPInterface, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise CniError(INVALID_NETWORK_CONFIG, "ipam: must be an object")
    if value.get("type") != "static":
        raise CniError(
            UNSUPPORTED_FIELD,
            f"ipam.type: {value.get('type')!r} is not supported",
            'only "static" (addresses listed in the config or passed per pod) is',
        )
    entries = value.get("addresses", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CniError(INVALID_NETWORK_CONFIG, "ipam.addresses: must be a list of {address}")
    return _interfaces([e.get("address") for e in entries], "ipam.addresses")


def _interfaces(values: object, where: str) -> tuple[IPInterface, ...]:
    if not isinstance(values, list):
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: must be a list of CIDR addresses")
    return tuple(parse_cidr(v, where) for v in values)


def parse_cidr(value: object, where: str) -> IPInterface:
    """An address with prefix length, e.g. 10.244.1.5/32; a bare address means a host prefix."""
    if not isinstance(value, str):
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not a CIDR address: {value!r}")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not a CIDR address: {value!r}") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_loopback:
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not a usable unicast address: {value}")
    return iface


def pod_addresses(conf: NetConf, env: CniEnv) -> tuple[IPInterface, ...]:
    """The pod's addresses: runtimeConfig.ips, else CNI_ARGS IP=, else ipam.addresses.

    At most one address per family, because the node facts and the datapath know one per pod.
    """
    if conf.runtime_ips:
        addrs = conf.runtime_ips
    elif env.args.get("IP"):
        addrs = tuple(parse_cidr(v.strip(), "CNI_ARGS IP") for v in env.args["IP"].split(","))
    else:
        addrs = conf.ipam_addresses
    if not addrs:
        raise CniError(
            INVALID_NETWORK_CONFIG,
            "no pod address: set runtimeConfig.ips, CNI_ARGS IP=... or ipam.addresses",
        )
    for version in (4, 6):
        if sum(1 for a in addrs if a.version == version) > 1:
            raise CniError(INVALID_NETWORK_CONFIG, f"more than one IPv{version} pod address: {addrs}")
    return tuple(sorted(addrs, key=lambda a: a.version))
