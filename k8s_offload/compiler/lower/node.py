"""Entries that follow from the node facts and local pods: port classes, neighbour steering,
forwarding and the masquerade source (nat_source)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from k8s_offload.compiler.bundle.model import Exact, Lpm, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import mapped
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.ir.model import PodEndpoint

if TYPE_CHECKING:
    from k8s_offload.compiler.passes.pipeline import Build

PORT_KIND_POD = 1
PORT_KIND_HOST = 2
PORT_KIND_UPLINK = 3
PORT_KIND_ARP_PROXY = 4

NODE_FACTS = "node facts"


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def node_entries(facts: NodeFacts, schema: Schema) -> list[TableEntry]:
    """Entries that follow from the node facts alone: special port classes, gateway steering,
    node IPs, the masquerade source by family, and the defaults (unknown neighbours are the host's
    business; everything unrouted leaves on the uplink).

    nat_source: the source a masqueraded flow leaves with, by destination, as Linux picks a
    route's source: the first node IP of the family (and the gateway towards local pods, in
    `pod_entries`). IPv4 always has its /96 entry, so the IPv6 node IP (the default action) never
    lands in an IPv4 header."""
    out: list[TableEntry] = []
    special = (
        (facts.ports.arp_proxy, PORT_KIND_ARP_PROXY),
        (facts.ports.host, PORT_KIND_HOST),
        (facts.ports.uplink, PORT_KIND_UPLINK),
    )
    for port, kind in special:
        out.append(
            schema.entry(
                "port_class",
                {"ingress_port": Exact(port)},
                "set_port_kind",
                {"kind": kind},
                origin=(NODE_FACTS,),
            )
        )
    gateways: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [facts.gateway.ipv4]
    if facts.gateway.ipv6 is not None:
        gateways.append(facts.gateway.ipv6)
    for gw in gateways:
        out.append(
            schema.entry(
                "neigh_steer",
                {"neigh_target": Exact(mapped(gw))},
                "steer_to_port",
                {"port": facts.ports.arp_proxy},
                origin=(NODE_FACTS,),
            )
        )
    for ip in facts.node_ips:
        out.append(
            schema.entry(
                "fwd",
                {"dst_addr": Lpm(mapped(ip), 128)},
                "to_port",
                {"port": facts.ports.host},
                origin=(NODE_FACTS,),
            )
        )
    v4 = [ip for ip in facts.node_ips if ip.version == 4]
    v6 = [ip for ip in facts.node_ips if ip.version == 6]
    mapped_v4 = {"dst_addr": Lpm(int(ipaddress.IPv6Network("::ffff:0:0/96").network_address), 96)}
    if v4:
        out.append(
            schema.entry(
                "nat_source", mapped_v4, "set_nat_source", {"addr": mapped(v4[0])}, origin=(NODE_FACTS,)
            )
        )
    else:
        out.append(schema.entry("nat_source", mapped_v4, "no_nat_source", origin=(NODE_FACTS,)))
    if v6:
        out.append(
            schema.default_entry(
                "nat_source", "set_nat_source", {"addr": mapped(v6[0])}, origin=(NODE_FACTS,)
            )
        )
    out.append(
        schema.default_entry("neigh_steer", "steer_to_port", {"port": facts.ports.host}, origin=(NODE_FACTS,))
    )
    out.append(schema.default_entry("fwd", "to_port", {"port": facts.ports.uplink}, origin=(NODE_FACTS,)))
    return out


def pod_entries(pod: PodEndpoint, facts: NodeFacts, schema: Schema) -> list[TableEntry]:
    """A local pod's port class, neighbour steering and forwarding entries, and the gateway as
    masquerade source towards it (so hairpin traffic never arrives from the pod's own address,
    which its kernel drops as a martian)."""
    if not pod.local or pod.port is None:
        return []
    origin = (str(pod.key),)
    gw_mac = mac_int(facts.gateway.mac)
    gateways = {4: facts.gateway.ipv4, 6: facts.gateway.ipv6}
    out = [
        schema.entry(
            "port_class",
            {"ingress_port": Exact(pod.port)},
            "set_port_kind",
            {"kind": PORT_KIND_POD},
            origin=origin,
        )
    ]
    pod_mac = mac_int(pod.mac) if pod.mac else 0
    for ip in pod.ips:
        gw = gateways[ip.version]
        if gw is not None:
            key = {"dst_addr": Lpm(mapped(ip), 128)}
            out.append(schema.entry("nat_source", key, "set_nat_source", {"addr": mapped(gw)}, origin=origin))
        out.append(
            schema.entry(
                "neigh_steer",
                {"neigh_target": Exact(mapped(ip))},
                "steer_to_port",
                {"port": pod.port},
                origin=origin,
            )
        )
        out.append(
            schema.entry(
                "fwd",
                {"dst_addr": Lpm(mapped(ip), 128)},
                "to_pod",
                {"port": pod.port, "pod_mac": pod_mac, "gateway_mac": gw_mac},
                origin=origin,
            )
        )
    return out


def declare_node(b: Build) -> None:
    """Node entries as units: one for the node facts, one per local pod (`local_pods`, also read
    by policy resolution)."""
    from k8s_offload.compiler.engine.core import Rule

    facts, schema, pods = b.facts or DEFAULT_NODE_FACTS, b.schema, b.t["local_pods"]
    b.add(
        Rule(
            b.engine,
            "node_entries",
            lambda r, _: tuple(node_entries(facts, schema)),
            over=b.one,
            out="entities",
        )
    )
    b.add(
        Rule(
            b.engine,
            "pod_entries",
            lambda r, k: tuple(pod_entries(next(iter(r(pods, k).values())), facts, schema)),
            over=pods,
            out="entities",
        )
    )
