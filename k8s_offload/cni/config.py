"""Parse and validate what the runtime hands the plugin: the CNI_* variables and the network config.

All validation happens here, before anything is touched, so that a bad invocation fails with the
right CNI error code and leaves the node exactly as it was. Section references are to the CNI
specification 1.1.0 (SPEC.md of containernetworking/cni).
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
    CniError,
    brief,
)
from k8s_offload.compiler.frontend import validation
from k8s_offload.ifname import valid_ifname

PLUGIN_TYPE = "offload-cni"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
# The first spec version that defines each command (§2 "CNI operations"; CHECK came with 0.4.0,
# STATUS and GC with 1.1.0). A config of an older version cannot ask for it.
COMMAND_SINCE = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
STATIC_IPAM = "static"  # handled in-process; any other ipam.type is executed from CNI_PATH
MAX_PORT = 509  # 510 is the CPU port and 511 the drop port of the v1model pipeline
MAX_CONFIG_BYTES = 1 << 20
MAX_ARGS_CHARS = 16 << 10
# The container id is recorded in the interface alias, which holds at most 255 bytes.
MAX_CONTAINER_ID = 180
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_PLUGIN_TYPE_NAME = re.compile(r"[^/\\\0]{1,255}")

IPInterface = IPv4Interface | IPv6Interface


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class PoolPort:
    """A device port interface on the host that can be handed to one pod."""

    interface: str
    port: int


@dataclass(frozen=True)
class StaticIpam:
    """Addresses decided without an IPAM plugin: runtimeConfig.ips, CNI_ARGS IP=, ipam.addresses."""

    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True)
class DelegatedIpam:
    """An IPAM plugin executable, found in CNI_PATH, that the plugin delegates to (§4)."""

    type: str


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
    ipam: StaticIpam | DelegatedIpam
    runtime_ips: tuple[IPInterface, ...]
    prev_result: Mapping[str, Any] | None
    dns: Mapping[str, Any] | None
    metrics_file: Path | None
    valid_attachments: frozenset[tuple[str, str]] | None  # GC: (containerID, ifname) still in use
    raw: bytes  # exactly what the runtime sent, handed unchanged to a delegated plugin (§4)

    def supports(self, command: str) -> bool:
        since = COMMAND_SINCE.get(command)
        return since is None or version_key(self.cni_version) >= version_key(since)


@dataclass(frozen=True)
class CniEnv:
    """The CNI_* environment variables of one invocation."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args_text: str
    path: tuple[str, ...]
    netns_handle: str = ""  # behind the CNI server (server.py): its descriptor of CNI_NETNS

    @property
    def ns(self) -> str:
        """The path the plugin opens the pod namespace by: CNI_NETNS itself, or behind the CNI
        server the shim's open descriptor of it (/proc/self/fd/N), since the path as the runtime
        wrote it names a file of the node's mount namespace, not of the server's container."""
        return self.netns_handle or self.netns

    @property
    def args(self) -> dict[str, str]:
        """CNI_ARGS, parsed on demand: DEL must not fail because of arguments it does not need."""
        return parse_cni_args(self.args_text)

    @property
    def pod(self) -> tuple[str, str]:
        """(namespace, name) of the Kubernetes pod from CNI_ARGS, validated as the API server would.

        They become keys of the node facts file, whose reader applies the same rules; a value it
        would reject must not get that far.
        """
        args = self.args
        ns, name = args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")
        if not ns or not name:
            raise CniError(INVALID_ENVIRONMENT, "CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME")
        for key, value, rule in (
            ("K8S_POD_NAMESPACE", ns, validation.dns1123_label),
            ("K8S_POD_NAME", name, validation.dns1123_subdomain),
        ):
            if rule(value) is not None:
                raise CniError(
                    INVALID_ENVIRONMENT,
                    f"CNI_ARGS {key}: not a valid Kubernetes name: {brief(value)}",
                    "a namespace must be a DNS-1123 label, a pod name a DNS-1123 subdomain",
                )
        return ns, name


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    """Read the CNI_* variables; which ones are required depends on the command (§2 "Parameters")."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            INVALID_ENVIRONMENT, f"CNI_COMMAND must be one of {', '.join(COMMANDS)}, got {brief(command)}"
        )
    args_text = environ.get("CNI_ARGS", "")
    if len(args_text) > MAX_ARGS_CHARS:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS is longer than {MAX_ARGS_CHARS} characters")
    env = CniEnv(
        command=command,
        container_id=environ.get("CNI_CONTAINERID", ""),
        netns=environ.get("CNI_NETNS", ""),
        ifname=environ.get("CNI_IFNAME", ""),
        args_text=args_text,
        path=tuple(p for p in environ.get("CNI_PATH", "").split(":") if p),
    )
    if command in ("VERSION", "STATUS", "GC"):
        return env
    required = ["CNI_CONTAINERID", "CNI_IFNAME"] + (["CNI_NETNS"] if command in ("ADD", "CHECK") else [])
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"missing environment variables: {', '.join(missing)}")
    if len(env.container_id) > MAX_CONTAINER_ID or not _CONTAINER_ID.fullmatch(env.container_id):
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID is not a valid container id: {brief(env.container_id)}",
            "an alphanumeric character, then alphanumerics, '_', '.' or '-' "
            f"(at most {MAX_CONTAINER_ID} characters)",
        )
    if not valid_ifname(env.ifname):
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_IFNAME is not a valid interface name: {brief(env.ifname)}",
            "1 to 15 bytes, not '.' or '..', without '/', ':' or whitespace",
        )
    if env.netns and ("\0" in env.netns or not env.netns.startswith("/")):
        raise CniError(INVALID_ENVIRONMENT, f"CNI_NETNS must be an absolute path, got {brief(env.netns)}")
    return env


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS is ``KEY=VALUE`` pairs separated by semicolons (§2 "Parameters")."""
    args: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS: expected KEY=VALUE, got {brief(item)}")
        args[key] = value
    return args


def peek_version(data: bytes) -> str:
    """Best-effort cniVersion of a config, for replies before it has been validated. Never raises."""
    try:
        version = json.loads(data).get("cniVersion")
    except Exception:  # anything at all: garbage, deep nesting, a non-object
        return LATEST_VERSION
    return version if version in SUPPORTED_VERSIONS else LATEST_VERSION


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {brief(key)}")
        out[key] = value
    return out


def load_json(data: bytes, what: str = "network configuration") -> Any:
    """Decode JSON from the runtime or a delegated plugin; any failure is a CNI decode error (6)."""
    if len(data) > MAX_CONFIG_BYTES:
        raise CniError(DECODE_FAILURE, f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise CniError(DECODE_FAILURE, f"{what} is nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise CniError(DECODE_FAILURE, f"{what} is not valid JSON", brief(str(exc), 200)) from None


def parse_netconf(data: bytes, command: str = "ADD") -> NetConf:
    """Validate the network configuration JSON read from stdin."""
    raw = load_json(data)
    if not isinstance(raw, dict):
        raise CniError(DECODE_FAILURE, "network configuration must be a JSON object")
    version = raw.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cniVersion {brief(version)} is not supported",
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    if raw.get("type") != PLUGIN_TYPE:
        raise CniError(INVALID_NETWORK_CONFIG, f"type must be {PLUGIN_TYPE!r}, got {brief(raw.get('type'))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NETWORK_NAME.fullmatch(name):
        raise CniError(
            INVALID_NETWORK_CONFIG,
            f"name: required, alphanumerics, '_', '.' or '-' starting alphanumeric, got {brief(name)}",
        )
    gateway = _mapping(raw, "gateway")
    gw4 = _address(gateway.get("ipv4"), 4, "gateway.ipv4")
    gw6 = _address(gateway.get("ipv6"), 6, "gateway.ipv6")
    runtime = _mapping(raw, "runtimeConfig")
    prev = raw.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(INVALID_NETWORK_CONFIG, "prevResult: must be an object")
    dns = raw.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise CniError(INVALID_NETWORK_CONFIG, "dns: must be an object")
    return NetConf(
        cni_version=version,
        name=name,
        pool=_pool(raw.get("pool")),
        node_facts=_abs_path(raw.get("nodeFacts"), "nodeFacts"),
        mtu=_mtu(raw.get("mtu")),
        gateway4=gw4 if isinstance(gw4, IPv4Address) else None,  # _address checked the family
        gateway6=gw6 if isinstance(gw6, IPv6Address) else None,
        ipam=_ipam(raw.get("ipam")),
        runtime_ips=_interfaces(runtime.get("ips", []), "runtimeConfig.ips"),
        prev_result=prev,
        dns=dns,
        metrics_file=None if raw.get("metricsFile") is None else _abs_path(raw["metricsFile"], "metricsFile"),
        valid_attachments=_valid_attachments(raw) if command == "GC" else None,
        raw=data,
    )


def _abs_path(value: object, key: str) -> Path:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value or value.endswith("/"):
        raise CniError(INVALID_NETWORK_CONFIG, f"{key}: must be an absolute file path, got {brief(value)}")
    return Path(value)


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
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: not an IP address: {brief(value)}") from None
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
        if not isinstance(interface, str) or not valid_ifname(interface):
            raise CniError(
                INVALID_NETWORK_CONFIG, f"pool[{i}].interface: not an interface name: {brief(interface)}"
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
        raise CniError(INVALID_NETWORK_CONFIG, f"mtu: must be an integer 68..65535, got {brief(value)}")
    return value


def _ipam(value: object) -> StaticIpam | DelegatedIpam:
    """``static`` (or no ipam section) is ours; any other type names a plugin to delegate to."""
    if value is None:
        return StaticIpam(())
    if not isinstance(value, dict):
        raise CniError(INVALID_NETWORK_CONFIG, "ipam: must be an object")
    kind = value.get("type")
    if not isinstance(kind, str) or not _PLUGIN_TYPE_NAME.fullmatch(kind) or kind in (".", ".."):
        raise CniError(
            INVALID_NETWORK_CONFIG, f"ipam.type: must name an IPAM plugin executable, got {brief(kind)}"
        )
    if kind != STATIC_IPAM:
        return DelegatedIpam(kind)
    entries = value.get("addresses", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CniError(INVALID_NETWORK_CONFIG, "ipam.addresses: must be a list of {address}")
    return StaticIpam(_interfaces([e.get("address") for e in entries], "ipam.addresses"))


def _valid_attachments(raw: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """GC input (§2 "GC"): the attachments the runtime still considers valid."""
    key = "cni.dev/valid-attachments"
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise CniError(INVALID_NETWORK_CONFIG, f"{key}: must be a list of {{containerID, ifname}}")
    out: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise CniError(
                INVALID_NETWORK_CONFIG, f"{key}[{i}]: must be an object with containerID and ifname"
            )
        out.add((cid, ifname))
    return frozenset(out)


def _interfaces(values: object, where: str) -> tuple[IPInterface, ...]:
    if not isinstance(values, list):
        raise CniError(INVALID_NETWORK_CONFIG, f"{where}: must be a list of CIDR addresses")
    return tuple(parse_cidr(v, where) for v in values)


def parse_cidr(value: object, where: str, code: int = INVALID_NETWORK_CONFIG) -> IPInterface:
    """An address with prefix length, e.g. 10.244.1.5/32; a bare address means a host prefix."""
    if not isinstance(value, str):
        raise CniError(code, f"{where}: not a CIDR address: {brief(value)}")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise CniError(code, f"{where}: not a CIDR address: {brief(value)}") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_loopback:
        raise CniError(code, f"{where}: not a usable unicast address: {value}")
    return iface


def one_per_family(addrs: tuple[IPInterface, ...], where: str) -> tuple[IPInterface, ...]:
    """At most one address per family, because the node facts and the datapath know one per pod.

    The address is configured as a host prefix (/32, /128): the pod reaches everything, other
    pods of its subnet included, through the gateway, which the ARP/NDP proxy answers for.
    """
    if not addrs:
        raise CniError(INVALID_NETWORK_CONFIG, f"no pod address: {where}")
    for version in (4, 6):
        if sum(1 for a in addrs if a.version == version) > 1:
            listed = ", ".join(str(a) for a in addrs)
            raise CniError(INVALID_NETWORK_CONFIG, f"more than one IPv{version} pod address: {listed}")
    return tuple(sorted((ipaddress.ip_interface(a.ip) for a in addrs), key=lambda a: a.version))


def static_addresses(conf: NetConf, env: CniEnv, ipam: StaticIpam) -> tuple[IPInterface, ...]:
    """Addresses of the static IPAM: runtimeConfig.ips, else CNI_ARGS IP=, else ipam.addresses."""
    if conf.runtime_ips:
        addrs = conf.runtime_ips
    elif env.args.get("IP"):
        text = env.args["IP"]
        addrs = tuple(parse_cidr(v.strip(), "CNI_ARGS IP", INVALID_ENVIRONMENT) for v in text.split(","))
    else:
        addrs = ipam.addresses
    return one_per_family(addrs, "set runtimeConfig.ips, CNI_ARGS IP=... or ipam.addresses")
