"""Helpers for tests that build small topologies out of network namespaces and veth pairs.

Every namespace a test creates carries a unique prefix and is deleted by the fixture that made
it, and all traffic the tests generate stays inside those namespaces.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` (iproute2) and fail loudly with its stderr."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def ns_exec(ns: str, *cmd: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command inside network namespace ``ns``."""
    proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ns_python(ns: str, code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a snippet of Python inside ``ns`` (with this interpreter, so the venv is available)."""
    return ns_exec(ns, sys.executable, "-c", code, *args, check=check, timeout=30)


def wait_for(probe: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.05) -> T | None:
    """Poll ``probe`` until it returns something truthy or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Namespaces:
    """Creates uniquely named namespaces and deletes all of them in :meth:`cleanup`."""

    def __init__(self) -> None:
        # Interface names are limited to 15 characters; namespace names are not, but short
        # prefixes keep `ip netns` output readable when something is left behind.
        self.prefix = f"t8{secrets.token_hex(3)}"
        self.created: list[str] = []

    def add(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        ip("netns", "add", name)
        self.created.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        # No DAD: addresses are usable at once, which keeps the IPv6 tests fast and deterministic.
        for key in ("all", "default"):
            ns_exec(name, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.created):
            ip("netns", "del", name, check=False)
        self.created.clear()


def veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mac_a: str | None = None) -> None:
    """Create a veth pair with one end in each namespace."""
    args = ["link", "add", if_a, "netns", ns_a]
    if mac_a:
        args += ["address", mac_a]
    ip(*args, "type", "veth", "peer", "name", if_b, "netns", ns_b)


def neighbour(ns: str, dev: str, addr: str) -> dict[str, Any] | None:
    """The neighbour table entry for ``addr`` on ``dev`` in ``ns`` (as `ip -j neigh` shows it)."""
    out = ip("-j", "-n", ns, "neigh", "show", "dev", dev, "to", addr).stdout
    entries = json.loads(out or "[]")
    return entries[0] if entries else None


def links(ns: str | None = None) -> dict[str, dict[str, Any]]:
    """Links of a namespace by name, with addresses (`ip -j addr`)."""
    cmd = ["-j", "addr", "show"] if ns is None else ["-j", "-n", ns, "addr", "show"]
    return {link["ifname"]: link for link in json.loads(ip(*cmd).stdout)}


def routes(ns: str, family: str = "-4") -> list[dict[str, Any]]:
    return json.loads(ip("-j", family, "-n", ns, "route", "show").stdout)


def send_udp(ns: str, addr: str, port: int = 9, ifname: str | None = None) -> None:
    """Send one datagram from ``ns`` so the kernel resolves ``addr``'s link-layer address."""
    target = repr((addr, port, 0, 0) if ":" in addr else (addr, port))
    family = "AF_INET6" if ":" in addr else "AF_INET"
    code = (
        "import socket\n"
        f"s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n"
        + (
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, {ifname!r}.encode())\n"
            if ifname
            else ""
        )
        + f"t = {target}\n"
        + (f"t = (t[0], t[1], 0, socket.if_nametoindex({ifname!r}))\n" if ifname and ":" in addr else "")
        + "s.sendto(b'x', t)\n"
    )
    ns_python(ns, code)


def send_frames(ns: str, dev: str, frames: list[bytes]) -> None:
    """Inject raw Ethernet frames on ``dev`` inside ``ns``."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
        "s.bind((sys.argv[1], 0))\n"
        "for h in sys.argv[2:]:\n"
        "    s.send(bytes.fromhex(h))\n"
    )
    ns_python(ns, code, dev, *(f.hex() for f in frames))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
