"""Human forms of entry values: addresses, MACs and protocols instead of raw integers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import cache

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
    return value_formatter(name, width)(value)


def format_match(name: str, width: int, m: Match) -> str:
    return match_formatter(name, width)(m)


def _v4_text(value: int) -> str:
    """`str(IPv4Address(value))` without building the address (the text renderer's commonest value)."""
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def _key_address_text(value: int) -> str:
    if value >> 32 == 0xFFFF:
        return _v4_text(value & 0xFFFFFFFF)
    return str(ipaddress.IPv6Address(value))


def _mac_text(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def _protocol_text(value: int) -> str:
    return PROTOCOLS.get(value) or str(value)


def _hex_text(value: int) -> str:
    return f"0x{value:x}"


@cache
def value_formatter(name: str, width: int) -> Callable[[int], str]:
    """How a value of field or parameter `name` (`width` bits) reads: chosen once per name, since
    the text renderer formats hundreds of thousands of values of a few dozen names."""
    short = name.rsplit(".", 1)[-1]
    if width == 128 and _is_address(name):
        return _key_address_text
    if width == 32 and _is_address(name):
        return _v4_text
    if width == 48:
        return _mac_text
    if short in ("l4_proto", "protocol"):
        return _protocol_text
    if short.endswith("rules") and width == 64:
        return _hex_text
    return str


@cache
def match_formatter(name: str, width: int) -> Callable[[Match], str]:
    """How a match on field `name` reads (`value_formatter` for its numbers)."""
    text = value_formatter(name, width)
    mapped_key = width == 128 and _is_address(name)

    def fmt(m: Match) -> str:
        kind = type(m)
        if kind is Exact or kind is Optional:
            return text(m.value)  # type: ignore[union-attr]
        if kind is Lpm:
            shown = m.prefix_len  # type: ignore[union-attr]
            if mapped_key and m.value >> 32 == 0xFFFF and shown >= 96:  # type: ignore[union-attr]
                shown -= 96
            return f"{text(m.value)}/{shown}"  # type: ignore[union-attr]
        if kind is Ternary:
            return f"0x{m.value:x}&&&0x{m.mask:x}"  # type: ignore[union-attr]
        if kind is Range:
            return f"{text(m.low)}..{text(m.high)}"  # type: ignore[union-attr]
        raise TypeError(m)

    return fmt


def json_value(name: str, width: int, value: int) -> str | int:
    """JSON keeps addresses and MACs readable and everything else numeric."""
    if (width in (32, 128) and _is_address(name)) or width == 48:
        return format_value(name, width, value)
    return value
