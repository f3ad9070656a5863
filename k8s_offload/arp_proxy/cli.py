"""Command line entry point of ``offload-arp-proxy``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from k8s_offload.arp_proxy.daemon import ArpProxyDaemon
from k8s_offload.arp_proxy.frames import normalize_mac, split_addresses
from k8s_offload.version import add_version_argument

log = logging.getLogger("arp_proxy")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="offload-arp-proxy",
        description="Answer ARP and IPv6 Neighbor Solicitations for the pod gateway addresses.",
    )
    p.add_argument("--interface", "-i", required=True, help="interface to serve (waited for if missing)")
    p.add_argument("--netns", help="network namespace name or path to run in")
    p.add_argument(
        "--gateway-ip",
        required=True,
        nargs="+",
        action="extend",
        metavar="IP",
        help="IPv4 or IPv6 gateway address to answer for (repeatable)",
    )
    p.add_argument("--mac", help="answer with this MAC instead of the interface's")
    p.add_argument("--rate", type=float, default=20.0, help="replies per second per source MAC (20)")
    p.add_argument("--burst", type=int, default=40, help="reply burst per source MAC (40)")
    p.add_argument("--stats-file", type=Path, help="write counters here as JSON, atomically")
    p.add_argument("--poll-interval", type=float, default=0.25, help="seconds between link checks")
    p.add_argument("--announce-count", type=int, default=3, help="gratuitous ARP/unsolicited NA repeats")
    p.add_argument("--no-router-flag", action="store_true", help="clear the Router flag in NAs")
    p.add_argument(
        "--no-override",
        action="store_true",
        help="clear the Override flag in NAs (proxy service where the owner may also answer)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_version_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own logger at the requested level; libraries (pyroute2 is chatty at DEBUG) stay at WARNING.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr
    )
    log.setLevel(args.log_level)
    try:
        ipv4, ipv6 = split_addresses(args.gateway_ip)
        mac = normalize_mac(args.mac) if args.mac else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.rate <= 0 or args.burst < 1 or args.poll_interval <= 0 or args.announce_count < 0:
        parser.error("--rate, --burst and --poll-interval must be positive")

    if args.netns:
        # Enter the namespace before any socket exists, so that the packet socket and the
        # netlink socket both live in it. flags=0: never create a namespace by accident.
        from pyroute2 import netns

        try:
            netns.setns(args.netns, flags=0)
        except OSError as exc:
            log.error("cannot enter network namespace %s: %s", args.netns, exc)
            return 2

    daemon = ArpProxyDaemon(
        args.interface,
        ipv4,
        ipv6,
        mac=mac,
        rate=args.rate,
        burst=args.burst,
        stats_file=args.stats_file,
        poll_interval=args.poll_interval,
        announce_count=args.announce_count,
        router=not args.no_router_flag,
        override=not args.no_override,
    )
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    signal.signal(signal.SIGUSR1, lambda *_: daemon.log_counters())
    try:
        return daemon.run()
    except Exception:
        log.exception("fatal error")
        return 1


if __name__ == "__main__":
    sys.exit(main())
