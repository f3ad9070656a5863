"""Counterexamples replayed in the interpreter: a BDD difference becomes a real frame, run
through an interpreter holding each bundle, and is confirmed when the packet-visible result differs.

A frontend's tables are keyed by the packet's (destination, protocol, port) and two fields the
pipeline derives from it: fe_internal (from the port the packet comes in on) and fe_bucket (from a
hash of the client), so their frames come from every port kind and many client ports. Keys no
packet field reaches directly (aff_backend's remembered backend) are not replayed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet

from k8s_offload.analysis.verify.policy import Direction, address_text, is_mapped
from k8s_offload.analysis.verify.tables import entries_by_table
from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.target.context import TableEvent
from k8s_offload.target.install import interpreter_with
from k8s_offload.target.interpreter import Interpreter, PacketResult

CLIENT_PORT = 40000
SPORT_TRIES = 48
DROP_REASON_COUNTER = "drop_reasons"
PORT_KINDS = {1: "pod", 2: "host", 3: "uplink", 4: "arp-proxy"}
FILLER_V4 = 0xFFFF_C000_0201  # 192.0.2.1 (TEST-NET-1), mapped
FILLER_V6 = int(ipaddress.IPv6Address("2001:db8::1"))


@dataclass(frozen=True, slots=True)
class Replay:
    confirmed: bool
    text: str


def frame(src: int, dst: int, proto: int, sport: int, dport: int) -> bytes:
    """An Ethernet frame with these addresses (mapped -> IPv4), protocol and ports."""
    l4: Packet
    if proto == 6:
        l4 = TCP(sport=sport, dport=dport, flags="S")
    elif proto == 17:
        l4 = UDP(sport=sport, dport=dport)
    elif proto == 132:
        l4 = SCTP(sport=sport, dport=dport)
    elif proto == 1 and is_mapped(dst):
        l4 = ICMP()
    else:
        l4 = Packet()
    if is_mapped(dst):
        ip: Packet = IP(src=address_text(src), dst=address_text(dst), proto=proto)
    else:
        ip = IPv6(src=address_text(src), dst=address_text(dst), nh=proto)
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4)


def neigh_frame(target: int) -> bytes:
    if is_mapped(target):
        return bytes(
            Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")
            / ARP(op=1, psrc="192.0.2.1", pdst=address_text(target), hwsrc="02:00:00:00:00:01")
        )
    return bytes(
        Ether(dst="33:33:ff:00:00:01", src="02:00:00:00:00:01")
        / IPv6(src="2001:db8::1", dst="ff02::1:ff00:1")
        / ICMPv6ND_NS(tgt=address_text(target))
    )


def event_text(ev: TableEvent | None) -> str:
    if ev is None:
        return "not applied"
    return f"{'hit' if ev.hit else 'miss'} {ev.action.rsplit('.', 1)[-1]}{ev.args}"


def _event(result: PacketResult, table: str) -> tuple[bool, str, tuple[int, ...]] | None:
    ev = result.trace.table(table)
    return None if ev is None else (ev.hit, ev.action.rsplit(".", 1)[-1], ev.args)


def drop_reason(result: PacketResult) -> int:
    for name, index in result.trace.counters:
        if name.rsplit(".", 1)[-1] == DROP_REASON_COUNTER:
            return index
    return 0


class Replayer:
    """Interpreters for one or two bundles, made on first use; a fresh pair per counterexample so
    the flow cache of one replay cannot answer the next."""

    def __init__(self, schema: Schema, a: Bundle, b: Bundle | None = None) -> None:
        self.schema = schema
        self.bundles = (a,) if b is None else (a, b)
        self.ports: dict[str, list[int]] = {}
        for bundle in self.bundles:
            for e in entries_by_table(bundle).get(schema.table("port_class").name, []):
                if e.action is None or e.is_default:
                    continue
                kind = PORT_KINDS.get(dict(e.action.params).get("kind", 0), "other")
                (_, m), *_ = e.match
                value = getattr(m, "value", 0)
                if value not in self.ports.setdefault(kind, []):
                    self.ports[kind].append(value)

    def _sims(self) -> list[Interpreter]:
        return [interpreter_with(self.schema, b) for b in self.bundles]

    def _port(self, *kinds: str) -> int | None:
        for k in kinds:
            if self.ports.get(k):
                return self.ports[k][0]
        return None

    # -- policy verdicts ---------------------------------------------------------------------
    def policy_verdicts(self, d: Direction, values: Mapping[str, int]) -> tuple[list[bool], str]:
        """Whether each bundle's pipeline lets the packet past direction `d`'s policy."""
        src, dst = values["src_addr"], values["dst_addr"]
        proto, dport = values["l4_proto"], values["dport"]
        port = self._port("pod", "uplink") if d.name == "ingress" else self._port("pod", "uplink", "host")
        if port is None:
            return [], "no pod or uplink port to send from"
        data = frame(src, dst, proto, CLIENT_PORT, dport)
        verdicts = []
        notes = []
        for sim in self._sims():
            r = sim.process(port, data)
            reason = drop_reason(r)
            denied = reason in (d.drop_reason, d.tier_drop_reason)
            verdicts.append(not denied)
            notes.append("dropped by " + d.name + " policy" if denied else _fate(r))
        what = f"{address_text(src)} -> {address_text(dst)} proto {proto} dport {dport} on port {port}"
        return verdicts, f"{what}: " + " | ".join(notes)

    # -- one table ---------------------------------------------------------------------------
    def table(self, table: str, key: Mapping[str, int]) -> Replay:
        """Run frames that apply `table` with this key until the two bundles' events differ."""
        tried = 0
        for port, data, label in self._frames(table, key):
            sims = self._sims()
            results = [s.process(port, data) for s in sims]
            events = [_event(r, table) for r in results]
            tried += 1
            if None in events:
                continue
            if events[0] != events[1]:
                shown = " | ".join(event_text(r.trace.table(table)) for r in results)
                return Replay(True, f"{label} on port {port}: {table} {shown}")
        if tried == 0:
            return Replay(False, "not replayed: no frame reaches this key from a packet")
        return Replay(False, f"not confirmed by {tried} frames (the key is reached, outcomes chosen equal)")

    def _frames(self, table: str, key: Mapping[str, int]) -> Iterator[tuple[int, bytes, str]]:
        info = self.schema.table(table)
        fields = {f.name.rsplit(".", 1)[-1] for f in info.fields}
        ports = [p for k in ("pod", "host", "uplink", "arp-proxy") for p in self.ports.get(k, [])[:1]]
        if fields == {"ingress_port"}:
            yield key["ingress_port"], frame(FILLER_V4, FILLER_V4 + 1, 17, CLIENT_PORT, 9), "UDP frame"
            return
        if fields == {"neigh_target"}:
            target = key["neigh_target"]
            for port in ports:
                yield port, neigh_frame(target), f"neighbour query for {address_text(target)}"
            return
        frontend = fields - {"fe_internal", "fe_bucket"}
        if frontend <= {"dst_addr", "l4_proto", "dport"}:
            dst = key["dst_addr"]
            proto = key.get("l4_proto", 17)
            dport = key.get("dport", 9)
            src = FILLER_V4 if is_mapped(dst) else FILLER_V6
            tries = SPORT_TRIES if frontend != fields else 1
            for port in ports:
                for i in range(tries):
                    sport = CLIENT_PORT + i
                    label = f"{address_text(src)}:{sport} -> {address_text(dst)} {proto}/{dport}"
                    yield port, frame(src, dst, proto, sport, dport), label


def _fate(r: PacketResult) -> str:
    if r.dropped:
        reason = drop_reason(r)
        return f"dropped (reason {reason})" if reason else "dropped"
    return f"passed, out port {r.egress_port}"
