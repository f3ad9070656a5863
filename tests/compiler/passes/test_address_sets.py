"""Address sets as integer intervals (compiler/ir/rules.py, compiler/passes/cidr.py) against an
`ipaddress` reference: the networks, their order, membership, subset and union."""

from __future__ import annotations

import ipaddress
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.frontend.model import IPNetwork, net_sort_key
from k8s_offload.compiler.ir.rules import AddressSet
from k8s_offload.compiler.passes.cidr import IPV4_MAPPED, address_set, union

_V4_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
_V6_BASES = (0, int(IPV4_MAPPED.network_address) - 64, int(ipaddress.IPv6Address("fd00::")))


@st.composite
def v4_networks(draw: st.DrawFn) -> IPNetwork:
    plen = draw(st.integers(24, 32))
    base = draw(st.integers(0, 255)) & ~((1 << (32 - plen)) - 1)
    return ipaddress.IPv4Network((_V4_BASE + base, plen))


@st.composite
def v6_networks(draw: st.DrawFn) -> IPNetwork:
    plen = draw(st.sampled_from((0, 96, 120, 121, 125, 127, 128)))
    base = draw(st.sampled_from(_V6_BASES)) + draw(st.integers(0, 255))
    return ipaddress.IPv6Network((base >> (128 - plen) << (128 - plen) if plen else 0, plen))


networks = st.lists(st.one_of(v4_networks(), v6_networks()), max_size=6)
hosts = st.lists(
    st.one_of(
        st.integers(0, 255).map(lambda i: ipaddress.IPv4Address(_V4_BASE + i)),
        st.integers(0, 255).map(lambda i: ipaddress.IPv6Address(_V6_BASES[2] + i)),
    ),
    max_size=12,
)


def _reference(
    nets: list[IPNetwork], addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[IPNetwork]:
    """What the set must list: collapsed networks per family, IPv4 first, IPv6 minus ::ffff:0:0/96."""
    all_nets = [*nets, *(ipaddress.ip_network(a) for a in addrs)]
    v4 = list(ipaddress.collapse_addresses(n for n in all_nets if n.version == 4))
    v6: list[ipaddress.IPv6Network] = []
    for n in ipaddress.collapse_addresses(n for n in all_nets if n.version == 6):
        assert isinstance(n, ipaddress.IPv6Network)
        if n.subnet_of(IPV4_MAPPED):
            continue
        v6.extend(n.address_exclude(IPV4_MAPPED) if IPV4_MAPPED.subnet_of(n) else (n,))
    return [*sorted(v4, key=net_sort_key), *sorted(v6, key=net_sort_key)]


@settings(max_examples=300)
@given(networks, hosts)
def test_networks_match_the_ipaddress_reference(
    nets: list[IPNetwork], addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> None:
    aset = address_set(nets, addrs)
    ref = _reference(nets, addrs)
    assert list(aset.networks) == ref
    assert [(n.version, int(n.network_address), n.prefixlen) for n in ref] == list(aset.prefixes())
    assert str(aset) == (",".join(str(n) for n in ref) or "-")
    assert AddressSet(ref) == aset and hash(AddressSet(ref)) == hash(aset)
    for a in [*addrs, ipaddress.IPv4Address(_V4_BASE + 7), ipaddress.IPv6Address(_V6_BASES[2] + 7)]:
        assert (a in aset) == any(a.version == n.version and a in n for n in ref)


@settings(max_examples=300)
@given(st.lists(st.tuples(networks, hosts), min_size=2, max_size=4))
def test_order_subset_and_union(
    parts: list[tuple[list[IPNetwork], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]],
) -> None:
    sets = [address_set(n, h) for n, h in parts]
    by_key = sorted(sets, key=lambda s: s.sort_key)
    by_ref = sorted(sets, key=lambda s: tuple(net_sort_key(n) for n in s.networks))
    assert [s.networks for s in by_key] == [s.networks for s in by_ref]
    for a, b in pairwise(sets):
        ref_a = tuple(net_sort_key(n) for n in a.networks)
        ref_b = tuple(net_sort_key(n) for n in b.networks)
        assert (a.sort_key < b.sort_key) == (ref_a < ref_b)
        assert (a.sort_key > b.sort_key) == (ref_a > ref_b)
        assert (a.sort_key == b.sort_key) == (ref_a == ref_b)
        inside = all(any(n.version == o.version and n.subnet_of(o) for o in b.networks) for n in a.networks)  # type: ignore[arg-type]
        assert a.within(b) == inside
    merged = union(sets)
    assert list(merged.networks) == _reference([n for s in sets for n in s.networks], [])
