"""Address-set arithmetic for ipBlock peers: subtraction of `except`s and aggregation."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from compiler.frontend.model import IPAddress, IPNetwork, net_sort_key
from compiler.ir.rules import AddressSet


def host_network(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(address)


def subtract(cidr: IPNetwork, excepts: Iterable[IPNetwork]) -> list[IPNetwork]:
    """cidr minus every except, as disjoint networks (excepts lie inside cidr: validated earlier)."""
    parts: list[IPNetwork] = [cidr]
    for ex in excepts:
        nxt: list[IPNetwork] = []
        for part in parts:
            if part.version != ex.version or not part.overlaps(ex):
                nxt.append(part)
            elif ex.supernet_of(part):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(part.address_exclude(ex))  # type: ignore[arg-type]
        parts = nxt
    return parts


IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
"""Where the pipeline keeps IPv4 addresses (p4src/README.md): an IPv6 peer must never cover it,
or an IPv6 ipBlock such as ::/0 would also match every IPv4 address."""


def address_set(networks: Iterable[IPNetwork]) -> AddressSet:
    """The canonical form: per family collapsed (merging adjacent and nested), sorted; IPv6
    networks exclude the IPv4-mapped range."""
    nets = list(networks)
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [
        n
        for n in subtract_all([n for n in nets if n.version == 6], IPV4_MAPPED)
        if isinstance(n, ipaddress.IPv6Network)
    ]
    out: list[IPNetwork] = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return AddressSet(tuple(sorted(out, key=net_sort_key)))


def subtract_all(networks: list[IPNetwork], hole: IPNetwork) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for net in networks:
        out.extend(subtract(net, [hole]) if net.overlaps(hole) else [net])
    return out


def union(sets: Iterable[AddressSet]) -> AddressSet:
    return address_set(n for s in sets for n in s.networks)


def contains(aset: AddressSet, address: IPAddress) -> bool:
    return any(address.version == n.version and address in n for n in aset.networks)
