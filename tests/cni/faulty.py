"""Run offload-cni with a kill -9 injected before its N-th state-changing step (fault injection).

Usage (as a runtime's plugin launcher): ``python faulty.py PLUGIN`` with ``FAULT_STEP=N`` and
``FAULT_LOG=FILE`` in the environment. Steps are every netlink request that changes something
(link set, address and route add), every node facts write, every IPAM plugin execution, and the
building of the ADD result (so "everything done, but the runtime never heard"). Each step is
appended to FAULT_LOG before it runs; at step N the process kills itself with SIGKILL, exactly
as an OOM kill or a node reboot would, leaving whatever state the earlier steps made.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any

import pyroute2

from k8s_offload.cni import cli, ipam, netns, nodefacts, plugin

STEP = int(os.environ.get("FAULT_STEP", "0"))
LOG = os.environ.get("FAULT_LOG")
_count = 0


def _step(name: str) -> None:
    global _count
    _count += 1
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{_count} {name}\n")
    if _count == STEP:
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        detail = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        _step(f"{name} {detail}".strip())
        return original(*args, **kwargs)

    setattr(owner, attr, wrapper)


class FaultyIPRoute(pyroute2.IPRoute):  # type: ignore[misc]
    """pyroute2 resolves its request methods dynamically (``__getattr__``), so wrap them here."""

    def _request(self, kind: str, command: str, *args: Any, **kwargs: Any) -> Any:
        if command in ("set", "add", "del", "replace"):
            _step(f"{kind} {command} {sorted(kwargs)}")
        return self.__getattr__(kind)(command, *args, **kwargs)

    def link(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return self._request("link", command, *args, **kwargs)

    def addr(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return self._request("addr", command, *args, **kwargs)

    def route(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return self._request("route", command, *args, **kwargs)


netns.IPRoute = FaultyIPRoute
_wrap(nodefacts, "atomic_write", "write node facts")
_wrap(ipam, "execute", "ipam")
_wrap(plugin, "build_result", "result")

if __name__ == "__main__":
    sys.argv = [sys.argv[1] if len(sys.argv) > 1 else "offload-cni"]
    sys.exit(cli.main([]))
