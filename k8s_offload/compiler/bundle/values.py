"""Human forms of entry values: addresses, MACs and protocols instead of raw integers."""

from __future__ import annotations

import ipaddress

from k8s_offload.compiler.bundle.model import Exact, Lpm, Match, Optional, Range, Ternary

MAPPED_PREFIX = 0xFFFF << 32
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
PROTOCOL_NUMBERS = {name: num for num, name in PROTOCOLS.items()}


def mapped(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """An address as the pipeline keys it: IPv6 as is, IPv4 as ::ffff:a.b.c.d."""
    if isinstance(addr, ipaddress.IPv4Address):
        return MAPPED_PREFIX | int(addr)
    return int(addr)


def unmapped(value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a 128-bit key value stands for (`mapped`'s inverse)."""
    if value >> 32 == 0xFFFF:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return ipaddress.IPv6Address(value)


def mapped_prefix_len(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix_len: int) -> int:
    return prefix_len + 96 if isinstance(addr, ipaddress.IPv4Address) else prefix_len


def _is_address(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    return short.endswith(("addr", "vip", "target"))


def format_value(name: str, width: int, value: int) -> str:
    short = name.rsplit(".", 1)[-1]
    if width == 128 and _is_address(name):
        return str(unmapped(value))
    if width == 32 and _is_address(name):
        return str(ipaddress.IPv4Address(value))
    if width == 48:
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    if short in ("l4_proto", "protocol") and value in PROTOCOLS:
        return PROTOCOLS[value]
    if short.endswith("rules") and width == 64:
        return f"0x{value:x}"
    return str(value)


def format_match(name: str, width: int, m: Match) -> str:
    if isinstance(m, Exact | Optional):
        return format_value(name, width, m.value)
    if isinstance(m, Lpm):
        shown = m.prefix_len
        if width == 128 and _is_address(name) and m.value >> 32 == 0xFFFF and m.prefix_len >= 96:
            shown = m.prefix_len - 96
        return f"{format_value(name, width, m.value)}/{shown}"
    if isinstance(m, Ternary):
        return f"0x{m.value:x}&&&0x{m.mask:x}"
    if isinstance(m, Range):
        return f"{format_value(name, width, m.low)}..{format_value(name, width, m.high)}"
    raise TypeError(m)


def json_value(name: str, width: int, value: int) -> str | int:
    """JSON keeps addresses and MACs readable and everything else numeric."""
    if (width in (32, 128) and _is_address(name)) or width == 48:
        return format_value(name, width, value)
    return value
