"""The ARP/NDP proxy as a real process, answering a pod namespace across a veth pair.

Topology per test: namespace ``px`` holds the proxy's interface ``pp0``; namespace ``pod`` holds
``eth0`` with 10.0.0.2/24. The gateways 10.0.0.1 and fe80::1 exist nowhere, so only the proxy can
fill the pod's neighbour table for them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from tests.netns_util import (
    REPO,
    Namespaces,
    ip,
    neighbour,
    ns_python,
    read_json,
    send_frames,
    send_udp,
    veth,
    wait_for,
)

pytestmark = pytest.mark.root

GW4, GW6 = "10.0.0.1", "fe80::1"
POD4, OTHER4 = "10.0.0.2", "10.0.0.5"
PROXY_MAC = "02:00:00:00:00:01"
POD_MAC = "02:00:00:00:00:02"


@dataclass
class Topo:
    pod: str
    px: str
    ns: Namespaces

    def plumb(self, proxy_mac: str = PROXY_MAC) -> None:
        """(Re-)create the veth pair between proxy and pod and configure the pod side."""
        veth(self.px, "pp0", self.pod, "eth0", mac_a=proxy_mac)
        ip("-n", self.pod, "link", "set", "eth0", "address", POD_MAC)
        ip("-n", self.pod, "addr", "add", f"{POD4}/24", "dev", "eth0")
        ip("-n", self.px, "link", "set", "pp0", "up")
        ip("-n", self.pod, "link", "set", "eth0", "up")
        # Carrier changes reach IPv6 addrconf through linkwatch, which may delay them by up to a
        # second after a flap; wait for the link-local route so fe80::1 is reachable.
        routes = lambda: ip("-6", "-n", self.pod, "route", "show", "dev", "eth0").stdout  # noqa: E731
        assert wait_for(lambda: "fe80::/64" in routes())


class Proxy:
    """One ``offload-arp-proxy`` process and its stats file."""

    def __init__(self, topo: Topo, workdir: Path, extra: list[str]) -> None:
        self.stats_path = workdir / "stats.json"
        self.log_path = workdir / "proxy.log"
        cmd = [sys.executable, "-m", "k8s_offload.arp_proxy", "--netns", topo.px, "--interface", "pp0"]
        cmd += ["--gateway-ip", GW4, GW6, "--stats-file", str(self.stats_path)]
        cmd += ["--poll-interval", "0.1", "--log-level", "DEBUG", *extra]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def stats(self) -> dict[str, Any]:
        return read_json(self.stats_path) or {}

    def counter(self, name: str) -> int:
        return int(self.stats().get("counters", {}).get(name, 0))

    def wait_counter(self, name: str, at_least: int = 1, timeout: float = 5.0) -> int:
        wait_for(lambda: self.counter(name) >= at_least, timeout)
        return self.counter(name)

    def wait_attached(self, attached: bool = True, timeout: float = 10.0) -> bool:
        return bool(wait_for(lambda: self.stats().get("attached") is attached, timeout))

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def topo() -> Iterator[Topo]:
    ns = Namespaces()
    try:
        yield Topo(pod=ns.add("pod"), px=ns.add("px"), ns=ns)
    finally:
        ns.cleanup()


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    procs: list[Proxy] = []

    def start(topo: Topo, *extra: str) -> Proxy:
        proxy = Proxy(topo, tmp_path, list(extra))
        procs.append(proxy)
        return proxy

    yield start
    for proxy in procs:
        if proxy.proc.poll() is None:
            proxy.proc.terminate()
            try:
                proxy.proc.wait(5)
            except subprocess.TimeoutExpired:
                proxy.proc.kill()
                proxy.proc.wait()


@pytest.fixture
def running(topo: Topo, start_proxy: Callable[..., Proxy]) -> tuple[Topo, Proxy]:
    topo.plumb()
    proxy = start_proxy(topo)
    assert proxy.wait_attached(), proxy.log()
    return topo, proxy


def lladdr(topo: Topo, addr: str) -> str | None:
    entry = neighbour(topo.pod, "eth0", addr)
    return entry.get("lladdr") if entry else None


def resolve(topo: Topo, addr: str, timeout: float = 3.0) -> str | None:
    """Make the pod resolve ``addr`` and return the MAC its neighbour table learns."""
    send_udp(topo.pod, addr, ifname="eth0")
    return wait_for(lambda: lladdr(topo, addr), timeout)


def test_arp_for_gateway_fills_pod_neighbour_table(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    assert resolve(topo, GW4) == PROXY_MAC
    assert neighbour(topo.pod, "eth0", GW4)["state"][0] in {"REACHABLE", "STALE", "DELAY"}
    assert proxy.wait_counter("arp_reply") == 1


def test_arp_for_other_address_gets_no_reply(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    send_udp(topo.pod, OTHER4)
    assert proxy.wait_counter("arp_not_ours") >= 1  # the request did reach the proxy...
    time.sleep(0.3)
    assert lladdr(topo, OTHER4) is None  # ...and nobody answered it
    assert proxy.counter("arp_reply") == 0 and proxy.counter("tx_replies") == 0


def test_ipv6_ns_for_gateway_fills_pod_neighbour_table(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    assert resolve(topo, GW6) == PROXY_MAC
    assert "router" in neighbour(topo.pod, "eth0", GW6)  # the NA carried the Router flag
    assert proxy.wait_counter("na_reply") >= 1
    send_udp(topo.pod, "fe80::99", ifname="eth0")
    assert proxy.wait_counter("ns_not_ours") >= 1
    assert lladdr(topo, "fe80::99") is None


def _malformed_frames() -> tuple[list[bytes], list[bytes]]:
    """Frames the proxy must count as malformed, and NSs it must discard as invalid."""
    eth_arp = Ether(src=POD_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806)
    eth_v6 = Ether(src=POD_MAC, dst="33:33:ff:00:00:01", type=0x86DD)
    good_arp = bytes(eth_arp / ARP(hwsrc=POD_MAC, psrc=POD4, pdst=GW4))
    good_ns = eth_v6 / IPv6(src="fe80::2", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=GW6)
    good_ns = good_ns / ICMPv6NDOptSrcLLAddr(lladdr=POD_MAC)
    malformed = [
        good_arp[:20],  # ARP header cut short
        good_arp[: 14 + 20],  # addresses cut short
        bytes(eth_v6 / Raw(b"\x60\0\0\0")),  # IPv6 header cut short
        bytes(good_ns)[:-6],  # payload shorter than the IPv6 length field
        bytes(eth_v6 / Raw(b"\x45" + bytes(60))),  # an IPv4 packet in an IPv6 frame
    ]
    ns = good_ns.copy()
    ns[IPv6].hlim = 64
    bad_cksum = good_ns.copy()
    bad_cksum[ICMPv6ND_NS].cksum = 0x1234
    invalid = [bytes(ns), bytes(bad_cksum)]
    return malformed, invalid


def test_malformed_frames_are_counted_and_survived(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    malformed, invalid = _malformed_frames()
    send_frames(topo.pod, "eth0", malformed + invalid)
    assert proxy.wait_counter("malformed", len(malformed)) == len(malformed)
    assert proxy.wait_counter("ns_invalid", len(invalid)) == len(invalid)
    assert proxy.counter("tx_replies") == 0
    assert proxy.proc.poll() is None
    assert resolve(topo, GW4) == PROXY_MAC  # still answering


def test_rate_limit_per_source(topo: Topo, start_proxy: Callable[..., Proxy]) -> None:
    topo.plumb()
    proxy = start_proxy(topo, "--rate", "0.1", "--burst", "2")
    assert proxy.wait_attached(), proxy.log()
    request = bytes(Ether(src=POD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=POD_MAC, psrc=POD4, pdst=GW4))
    other = bytes(
        Ether(src="02:00:00:00:00:09", dst="ff:ff:ff:ff:ff:ff")
        / ARP(hwsrc="02:00:00:00:00:09", psrc="10.0.0.9", pdst=GW4)
    )
    send_frames(topo.pod, "eth0", [request] * 6 + [other])
    assert proxy.wait_counter("arp_reply", 7) == 7
    assert proxy.wait_counter("rate_limited", 4) == 4
    assert proxy.counter("tx_replies") == 3  # a burst of 2 for the first source, 1 for the other


def test_waits_for_missing_interface(topo: Topo, start_proxy: Callable[..., Proxy]) -> None:
    proxy = start_proxy(topo)
    assert wait_for(lambda: "waiting for interface pp0" in proxy.log(), 10), proxy.log()
    assert proxy.wait_attached(False)
    topo.plumb()
    assert proxy.wait_attached(), proxy.log()
    assert resolve(topo, GW4) == PROXY_MAC


def test_reattaches_after_interface_is_recreated(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    assert resolve(topo, GW4) == PROXY_MAC
    first_index = proxy.stats()["ifindex"]
    ip("-n", topo.px, "link", "del", "pp0")  # takes the pod's eth0 with it
    assert proxy.wait_attached(False), proxy.log()
    new_mac = "02:00:00:00:00:0b"
    topo.plumb(proxy_mac=new_mac)
    assert proxy.wait_attached(), proxy.log()
    assert proxy.stats()["ifindex"] != first_index
    assert resolve(topo, GW4) == new_mac
    assert resolve(topo, GW6) == new_mac
    assert proxy.counter("attachments") == 2
    assert proxy.proc.poll() is None


def test_mac_change_is_announced(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    assert resolve(topo, GW4) == PROXY_MAC
    assert resolve(topo, GW6) == PROXY_MAC
    # Linux ignores a gratuitous ARP for an entry updated less than locktime (1 s) ago.
    time.sleep(1.1)
    new_mac = "02:00:00:00:00:0c"
    ip("-n", topo.px, "link", "set", "pp0", "address", new_mac)
    # No traffic from the pod: only the gratuitous ARP and the unsolicited NA (Override flag
    # set) can move its cached entries to the new MAC.
    assert wait_for(lambda: lladdr(topo, GW4) == new_mac, 5), neighbour(topo.pod, "eth0", GW4)
    assert wait_for(lambda: lladdr(topo, GW6) == new_mac, 5), neighbour(topo.pod, "eth0", GW6)
    assert proxy.counter("mac_changes") == 1


def test_sigterm_exits_cleanly(running: tuple[Topo, Proxy]) -> None:
    _, proxy = running
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(5) == 0
    final = proxy.stats()
    assert final["attached"] is False
    assert "Traceback" not in proxy.log()
    assert "counters:" in proxy.log()


# -- hardening (issue 17) and health/metrics -------------------------------------------------------


def spoofed_announcement(i: int) -> bytes:
    mac = f"02:00:00:aa:{i // 256:02x}:{i % 256:02x}"
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=mac, psrc=GW4, pdst=GW4))


def test_stats_file_never_follows_a_planted_symlink(
    topo: Topo, start_proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "stats.json").symlink_to(victim)
    topo.plumb()
    proxy = start_proxy(topo)
    assert proxy.wait_attached(), proxy.log()
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "stats.json").is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rotating_source_macs_are_capped_globally(topo: Topo, start_proxy: Callable[..., Proxy]) -> None:
    topo.plumb()
    proxy = start_proxy(topo, "--global-rate", "0.01", "--global-burst", "5")
    assert proxy.wait_attached(), proxy.log()
    frames = []
    for i in range(30):
        mac = f"02:00:00:01:00:{i:02x}"
        frames.append(
            bytes(
                Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=mac, psrc=f"10.0.0.{100 + i}", pdst=GW4)
            )
        )
    send_frames(topo.pod, "eth0", frames)
    assert proxy.wait_counter("arp_reply", 30) == 30
    assert proxy.wait_counter("rate_limited_global", 25) == 25
    assert proxy.counter("tx_replies") == 5 and proxy.counter("rate_limited") == 0


def test_spoofed_announcements_are_counted_but_logged_once(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    send_frames(topo.pod, "eth0", [spoofed_announcement(i) for i in range(200)])
    assert proxy.wait_counter("conflict", 200) == 200
    warnings = [line for line in proxy.log().splitlines() if "announces gateway address" in line]
    assert len(warnings) == 1, warnings
    assert proxy.counter("tx_replies") == 0


def test_vlan_tagged_request_is_not_answered(running: tuple[Topo, Proxy]) -> None:
    topo, proxy = running
    untagged = bytes(Ether(src=POD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=POD_MAC, psrc=POD4, pdst=GW4))
    tagged = untagged[:12] + bytes.fromhex("81000005") + untagged[12:]
    send_frames(topo.pod, "eth0", [tagged, tagged])
    assert proxy.wait_counter("vlan_tagged", 2) == 2
    assert proxy.counter("tx_replies") == 0 and proxy.counter("arp_reply") == 0
    send_frames(topo.pod, "eth0", [untagged])
    assert proxy.wait_counter("tx_replies") == 1  # the same request without a tag is answered


def http_in(ns: str, url: str, method: str = "GET") -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request(sys.argv[1], method=sys.argv[2])\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=5)\n"
        "    print(r.status); sys.stdout.write(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); sys.stdout.write(e.read().decode())\n"
    )
    out = ns_python(ns, code, url, method).stdout
    status, _, body = out.partition("\n")
    return int(status), body


@pytest.mark.parametrize("listen", ["127.0.0.1:9102", "[::1]:9102"], ids=["ipv4", "ipv6"])
def test_health_and_metrics_endpoint(topo: Topo, start_proxy: Callable[..., Proxy], listen: str) -> None:
    base = f"http://{listen}"
    proxy = start_proxy(topo, "--health-listen", listen)  # the interface does not exist yet
    assert wait_for(lambda: "waiting for interface" in proxy.log(), 10), proxy.log()
    assert http_in(topo.px, f"{base}/healthz") == (200, "ok\n")
    assert http_in(topo.px, f"{base}/readyz") == (503, "not attached to pp0\n")
    status, text = http_in(topo.px, f"{base}/metrics")
    assert status == 200
    # Every series is there from the start, at 0, under Prometheus naming conventions.
    for sample in (
        'offload_arp_proxy_requests_answered_total{protocol="arp"} 0.0',
        'offload_arp_proxy_requests_answered_total{protocol="ndp"} 0.0',
        'offload_arp_proxy_frames_ignored_total{reason="vlan_tagged"} 0.0',
        'offload_arp_proxy_replies_rate_limited_total{scope="global"} 0.0',
        "offload_arp_proxy_ready 0.0",
        "process_resident_memory_bytes",
    ):
        assert sample in text, sample
    topo.plumb()
    assert proxy.wait_attached(), proxy.log()
    assert wait_for(lambda: http_in(topo.px, f"{base}/readyz")[0] == 200, 5)
    assert http_in(topo.px, f"{base}/readyz", "HEAD") == (200, "")
    assert resolve(topo, GW4) == PROXY_MAC
    text = http_in(topo.px, f"{base}/metrics")[1]
    assert 'offload_arp_proxy_requests_answered_total{protocol="arp"} 1.0' in text
    assert "offload_arp_proxy_ready 1.0" in text
    ip("-n", topo.px, "link", "del", "pp0")
    assert wait_for(lambda: http_in(topo.px, f"{base}/readyz")[0] == 503, 5)
