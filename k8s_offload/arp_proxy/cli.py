"""Command line entry point of ``offload-arp-proxy``.

Every option is validated before anything starts; a bad value ends the process with exit code 2
and one line naming the option (never a traceback, never a silently disabled limit).
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from k8s_offload.arp_proxy.daemon import ArpProxyDaemon
from k8s_offload.arp_proxy.frames import normalize_mac, split_addresses
from k8s_offload.console import LOG_FORMATS, finish_cli, setup_logging
from k8s_offload.httpserve import HealthServer, parse_listen
from k8s_offload.ifname import valid_ifname

log = logging.getLogger("arp_proxy")

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _number(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (``inf`` and ``nan`` are refused)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a{'n integer' if kind is int else ' number'}: {text!r}"
            ) from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _interface(text: str) -> str:
    if not valid_ifname(text):
        raise argparse.ArgumentTypeError(
            f"not a valid interface name (1-15 bytes, no '/', ':' or spaces): {text!r}"
        )
    return text


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="offload-arp-proxy",
        description="Answer ARP and IPv6 Neighbor Solicitations for the pod gateway addresses.",
    )
    p.add_argument(
        "--interface", "-i", required=True, type=_interface, help="interface to serve (waited for if missing)"
    )
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
    p.add_argument(
        "--rate", type=_number(float, 0.001, 1e6), default=20.0, help="replies per second per source MAC"
    )
    p.add_argument("--burst", type=_number(int, 1, 1_000_000), default=40, help="reply burst per source MAC")
    p.add_argument(
        "--global-rate",
        type=_number(float, 0.001, 1e6),
        default=200.0,
        help="replies per second over all sources together",
    )
    p.add_argument(
        "--global-burst",
        type=_number(int, 1, 1_000_000),
        default=400,
        help="reply burst over all sources",
    )
    p.add_argument("--stats-file", type=Path, help="write counters here as JSON, atomically")
    p.add_argument(
        "--health-listen",
        type=_listen,
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics here (e.g. 127.0.0.1:9102 or [::1]:9102); off by default",
    )
    p.add_argument(
        "--poll-interval",
        type=_number(float, 0.01, 60),
        default=0.25,
        help="seconds between link checks",
    )
    p.add_argument(
        "--announce-count",
        type=_number(int, 0, 100),
        default=3,
        help="gratuitous ARP/unsolicited NA repeats",
    )
    p.add_argument("--no-router-flag", action="store_true", help="clear the Router flag in NAs")
    p.add_argument(
        "--no-override",
        action="store_true",
        help="clear the Override flag in NAs (proxy service where the owner may also answer)",
    )
    p.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level"
    )
    p.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="log lines: text or JSON objects"
    )
    return finish_cli(p, EXIT_CODES)


EXIT_CODES = {0: "stopped by SIGTERM or SIGINT", 1: "fatal error", 2: "bad options or network namespace"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_format, level=args.log_level, logger=log.name)
    try:
        ipv4, ipv6 = split_addresses(args.gateway_ip)
        mac = normalize_mac(args.mac) if args.mac else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.stats_file is not None and not args.stats_file.parent.is_dir():
        parser.error(f"--stats-file: {args.stats_file.parent} is not a directory")

    if args.netns:
        # Enter the namespace before any socket exists, so that the packet socket, the netlink
        # socket and the health endpoint all live in it. flags=0: never create a namespace.
        from pyroute2 import netns

        try:
            netns.setns(args.netns, flags=0)
        except (OSError, ValueError) as exc:
            parser.error(f"--netns: cannot enter network namespace {args.netns}: {exc}")

    daemon = ArpProxyDaemon(
        args.interface,
        ipv4,
        ipv6,
        mac=mac,
        rate=args.rate,
        burst=int(args.burst),
        global_rate=args.global_rate,
        global_burst=int(args.global_burst),
        stats_file=args.stats_file,
        poll_interval=args.poll_interval,
        announce_count=int(args.announce_count),
        router=not args.no_router_flag,
        override=not args.no_override,
    )
    health = None
    if args.health_listen:
        from k8s_offload.arp_proxy.metrics import registry_for

        try:
            health = HealthServer(
                args.health_listen, registry_for(daemon), {"/healthz": daemon.alive, "/readyz": daemon.ready}
            )
        except OSError as exc:
            parser.error(f"--health-listen: cannot listen on {args.health_listen}: {exc.strerror or exc}")
        health.start()
        log.info("serving /healthz, /readyz and /metrics on %s", args.health_listen)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    signal.signal(signal.SIGUSR1, lambda *_: daemon.log_counters())
    try:
        return daemon.run()
    except Exception:
        log.exception("fatal error")
        return 1
    finally:
        if health is not None:
            health.stop()


if __name__ == "__main__":
    sys.exit(main())
