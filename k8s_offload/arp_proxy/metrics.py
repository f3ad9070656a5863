"""The proxy's counters as Prometheus metrics (served on --health-listen's /metrics).

The daemon keeps one set of counters (also written to --stats-file); this collector renders them
under Prometheus names, every series present from the start at 0, plus the process and Python
runtime metrics prometheus_client provides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from k8s_offload.arp_proxy.frames import Outcome

if TYPE_CHECKING:
    from k8s_offload.arp_proxy.daemon import ArpProxyDaemon

PREFIX = "offload_arp_proxy"
# Outcomes that end without a reply, by the reason label they get.
IGNORED = {
    Outcome.ARP_NOT_OURS: "arp_not_ours",
    Outcome.NS_NOT_OURS: "ns_not_ours",
    Outcome.NS_INVALID: "ns_invalid",
    Outcome.CONFLICT: "conflict",
    Outcome.MALFORMED: "malformed",
    Outcome.VLAN_TAGGED: "vlan_tagged",
    Outcome.IGNORED: "other",
}
PLAIN = (
    ("frames_received", "rx", "Frames received on the interface (our own transmissions excluded)."),
    ("transmit_errors", "tx_errors", "Replies and announcements the socket refused to send."),
    ("announcements_sent", "announcements", "Gratuitous ARPs and unsolicited NAs sent."),
    ("attachments", "attachments", "Times the proxy attached to its interface."),
    ("detachments", "detachments", "Times the proxy detached (interface gone, re-created, or stopping)."),
    ("mac_changes", "mac_changes", "Changes of the answering MAC."),
    ("socket_errors", "socket_errors", "Receive errors on the packet socket."),
    ("handler_errors", "handler_errors", "Frames whose handling raised (a bug; logged, rate-limited)."),
)


class ProxyCollector:
    def __init__(self, daemon: ArpProxyDaemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        c = dict(self.daemon.counters)  # every key exists from the start, so no resize races
        answered = CounterMetricFamily(
            f"{PREFIX}_requests_answered", "Requests answered with the gateway MAC.", labels=["protocol"]
        )
        answered.add_metric(["arp"], c["answered_arp"])
        answered.add_metric(["ndp"], c["answered_ndp"])
        yield answered
        ignored = CounterMetricFamily(
            f"{PREFIX}_frames_ignored", "Frames not answered, by reason.", labels=["reason"]
        )
        for outcome, reason in IGNORED.items():
            ignored.add_metric([reason], c[outcome.value])
        yield ignored
        limited = CounterMetricFamily(
            f"{PREFIX}_replies_rate_limited",
            "Replies not sent because a rate limit refused them: per source MAC or over all sources.",
            labels=["scope"],
        )
        limited.add_metric(["source"], c["rate_limited"])
        limited.add_metric(["global"], c["rate_limited_global"])
        yield limited
        for name, key, text in PLAIN:
            yield CounterMetricFamily(f"{PREFIX}_{name}", text, value=c[key])
        ready, _ = self.daemon.ready()
        yield GaugeMetricFamily(
            f"{PREFIX}_ready", "1 while attached, link up and answering.", value=int(ready)
        )


def registry_for(daemon: ArpProxyDaemon) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ProxyCollector(daemon))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
