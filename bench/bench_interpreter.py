"""Packets per second of the interpreter on a realistic bundle, with a parser-only baseline.

1,000 Service frontends over 10,000 backends (10 per group), 10,000 pod routes, 200 egress-isolated
pods with peer classes and port ranges. Prints figures only; nothing here asserts on time.
Run: .venv/bin/python -m bench.bench_interpreter
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from k8s_offload.p4 import build_p4info, load_program
from k8s_offload.p4rt.proto import p4runtime
from k8s_offload.target.interpreter import Interpreter

FRONTENDS, PER_GROUP, ISOLATED = 1_000, 10, 200


class _Writer:
    def __init__(self, sim: Interpreter) -> None:
        self.sim, self.index = sim, sim.state.index

    def action(self, out: Any, name: str, params: dict[str, int]) -> None:
        out.action_id = aid = self.index.id_of(name)
        for pid, (pname, width) in self.index.actions[aid].params.items():
            out.params.add(param_id=pid, value=params[pname].to_bytes((width + 7) // 8, "big"))

    def entry(
        self, table: str, keys: list[int | tuple[int, int]], action: str = "", prio: int = 0, **p: int
    ) -> Any:
        tid = self.index.id_of(table)
        te = p4runtime.TableEntry(table_id=tid, priority=prio)
        for kf, value in zip(self.index.tables[tid].keys, keys, strict=True):
            n = (kf.bitwidth + 7) // 8
            fm = te.match.add(field_id=kf.id)
            if kf.kind == "exact":
                assert isinstance(value, int)
                fm.exact.value = value.to_bytes(n, "big")
            elif kf.kind == "lpm":
                assert isinstance(value, tuple)
                fm.lpm.value, fm.lpm.prefix_len = value[0].to_bytes(n, "big"), value[1]
            else:
                assert isinstance(value, tuple)
                fm.range.low, fm.range.high = (v.to_bytes(n, "big") for v in value)
        if action:
            self.action(te.action.action, action, p)
        return te

    def write(self, **entity: Any) -> None:
        self.sim.state.apply(
            p4runtime.Update(type=p4runtime.Update.INSERT, entity=p4runtime.Entity(**entity))
        )


def _mapped(addr: int) -> int:
    return 0xFFFF << 32 | addr


def build() -> tuple[Interpreter, list[bytes], list[bytes]]:
    program = load_program()
    sim = Interpreter(program, build_p4info(program))
    w = _Writer(sim)
    gw = 0x020000000001
    for port in range(1, 65):
        w.write(table_entry=w.entry("port_class", [port], "set_port_kind", kind=1))
    pod_base = int(ipaddress.IPv4Address("10.1.0.0"))
    vip_base = int(ipaddress.IPv4Address("10.96.0.0"))
    for i in range(FRONTENDS * PER_GROUP):
        addr = pod_base + i + 1
        port = 1 + i % 64
        route = w.entry(
            "fwd", [(_mapped(addr), 128)], "to_pod", port=port, pod_mac=0x02AA00000000 + i, gateway_mac=gw
        )
        w.write(table_entry=route)
        m = p4runtime.ActionProfileMember(action_profile_id=w.index.id_of("svc_selector"), member_id=i + 1)
        w.action(m.action, "set_backend4", {"addr": addr, "port": 8080})
        w.write(action_profile_member=m)
    for fe in range(1, FRONTENDS + 1):
        vip = vip_base + fe
        g = p4runtime.ActionProfileGroup(
            action_profile_id=w.index.id_of("svc_selector"), group_id=fe, max_size=512
        )
        for k in range(PER_GROUP):
            g.members.add(member_id=(fe - 1) * PER_GROUP + k + 1, weight=1)
        w.write(action_profile_group=g)
        te = w.entry("svc_frontend", [_mapped(vip), 6, 80, 0, 0])
        te.action.action_profile_group_id = fe
        w.write(table_entry=te)
    for i in range(ISOLATED):
        src = _mapped(pod_base + i + 1)
        w.write(
            table_entry=w.entry(
                "eg_pod", [src], "eg_isolate", set_id=i + 1, any_peer_rules=0, any_port_rules=0
            )
        )
        w.write(table_entry=w.entry("eg_peer_rules", [i + 1, 1], "eg_set_peer_rules", rules=1))
        w.write(
            table_entry=w.entry("eg_port_rules", [i + 1, 6, (8000, 8100)], "eg_set_port_rules", 1, rules=1)
        )
    w.write(
        table_entry=w.entry("eg_peer_class", [(_mapped(pod_base), 112)], "eg_set_peer_class", peer_class=1)
    )
    rng = random.Random(1)
    new_flows, repeats = [], []
    for n in range(5_000):
        client = pod_base + 1 + rng.randrange(FRONTENDS * PER_GROUP)
        vip = vip_base + 1 + rng.randrange(FRONTENDS)
        pkt = Ether(dst="02:00:00:00:00:01", src="02:aa:00:00:00:01") / IP(
            src=str(ipaddress.IPv4Address(client)), dst=str(ipaddress.IPv4Address(vip))
        )
        new_flows.append(bytes(pkt / TCP(sport=10_000 + n, dport=80, flags="S") / (b"x" * 64)))
        repeats.append(bytes(pkt / TCP(sport=10_000 + n, dport=80, flags="A") / (b"x" * 64)))
    return sim, new_flows, repeats


def _rate(run: Callable[[bytes], object], packets: list[bytes]) -> float:
    start = time.perf_counter()
    for data in packets:
        run(data)
    return len(packets) / (time.perf_counter() - start)


def main() -> None:
    t0 = time.perf_counter()
    sim, new_flows, repeats = build()
    print(
        f"setup: {time.perf_counter() - t0:.1f} s ({FRONTENDS} frontends, {FRONTENDS * PER_GROUP} backends)"
    )
    ts = 10_000_000_000
    print(f"parser only (baseline):  {_rate(lambda d: sim.parse_only(1, d), new_flows):>9,.0f} pkt/s")
    print(f"new flows (SYN to VIP):  {_rate(lambda d: sim.process(1, d, ts), new_flows):>9,.0f} pkt/s")
    print(f"established flows:       {_rate(lambda d: sim.process(1, d, ts + 1), repeats):>9,.0f} pkt/s")


if __name__ == "__main__":
    main()
