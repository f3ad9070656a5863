"""Read-modify-write of the node facts file (docs/node-facts.md) under an exclusive lock.

Several ADD/DEL invocations may run at once, so every change happens while holding an flock on a
sidecar ``<file>.lock`` (the facts file itself is replaced on write, so it cannot carry the lock),
and the new content is written to a temporary file and renamed over the old one: readers such as
the compiler see either the old or the new file, never a partial one. The plugin only edits the
``pods`` list; every other key is written back as it was read (YAML comments are not preserved).
The same lock also serialises the choice of a free device port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import yaml

from k8s_offload.cni.errors import IO_FAILURE, NODE_FACTS_INVALID, TRY_AGAIN_LATER, CniError
from k8s_offload.compiler.frontend.syntax import Problem, SyntaxFailure, load_yaml
from k8s_offload.safefile import atomic_write

API_VERSION = "offload.k8s-offload.dev/v1alpha1"
KIND = "NodeFacts"
LOCK_TIMEOUT = 10.0
MAX_BYTES = 16 << 20


class NodeFacts:
    """The parsed document plus helpers for the ``pods`` list."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @property
    def pods(self) -> list[dict[str, Any]]:
        pods = self.data.setdefault("pods", [])
        if pods is None:
            pods = self.data["pods"] = []
        if not isinstance(pods, list) or not all(isinstance(p, dict) for p in pods):
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: pods must be a list of objects")
        return pods

    def find_container(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        for pod in self.pods:
            if pod.get("containerId") == container_id and pod.get("interface", ifname) == ifname:
                return pod
        return None

    def find_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        for pod in self.pods:
            if pod.get("namespace") == namespace and pod.get("name") == name:
                return pod
        return None

    def remove(self, entry: dict[str, Any]) -> None:
        self.pods.remove(entry)

    def used_ports(self) -> set[int]:
        return {p["port"] for p in self.pods if isinstance(p.get("port"), int)}

    def used_host_interfaces(self) -> set[str]:
        return {p["hostInterface"] for p in self.pods if isinstance(p.get("hostInterface"), str)}

    def special_ports(self) -> dict[int, str]:
        ports = self.data.get("ports") or {}
        if not isinstance(ports, dict):
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: ports must be an object")
        return {v: f"ports.{k}" for k, v in ports.items() if isinstance(v, int)}

    def gateway(self) -> tuple[IPv4Address | None, IPv6Address | None]:
        gw = self.data.get("gateway") or {}
        if not isinstance(gw, dict):
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: gateway must be an object")
        try:
            v4 = ip_address(gw["ipv4"]) if gw.get("ipv4") else None
            v6 = ip_address(gw["ipv6"]) if gw.get("ipv6") else None
        except ValueError as exc:
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: gateway: {exc}") from None
        if (v4 is not None and not isinstance(v4, IPv4Address)) or (
            v6 is not None and not isinstance(v6, IPv6Address)
        ):
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: gateway addresses of the wrong family")
        return v4, v6

    def save(self) -> None:
        """Atomically replace the file with the current document.

        A symlinked path is written through: the link stays and the file it points to is
        replaced, so an operator can keep the real file elsewhere.
        """
        try:
            text = yaml.safe_dump(self.data, sort_keys=False, default_flow_style=False)
            atomic_write(self.path, text.encode("utf-8"), follow_symlinks=True)
        except RecursionError:
            raise CniError(NODE_FACTS_INVALID, f"{self.path}: nested too deeply to write back") from None
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot write {self.path}: {exc}") from exc


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        # The operator has not written it yet: start a document the compiler can complete.
        return {"apiVersion": API_VERSION, "kind": KIND, "pods": []}
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot read {path}: {exc}") from exc
    if len(raw) > MAX_BYTES:
        raise CniError(NODE_FACTS_INVALID, f"{path}: larger than {MAX_BYTES} bytes")
    try:
        # The compiler's own reader (same bounds: depth, aliases, integers, duplicate keys), so
        # the plugin never accepts and rewrites a file the compiler would refuse to read.
        documents = list(load_yaml(raw.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise CniError(NODE_FACTS_INVALID, f"{path}: not UTF-8 text", str(exc)) from None
    except SyntaxFailure as exc:
        problem = exc.problem
        raise CniError(NODE_FACTS_INVALID, f"{path}: invalid YAML", _where(problem)) from None
    if len(documents) > 1:
        raise CniError(NODE_FACTS_INVALID, f"{path}: must hold one YAML document, got {len(documents)}")
    if documents and documents[0].problems:
        raise CniError(NODE_FACTS_INVALID, f"{path}: invalid YAML", _where(documents[0].problems[0]))
    data = documents[0].value if documents else None
    if data is None:
        data = {"apiVersion": API_VERSION, "kind": KIND}
    if not isinstance(data, dict):
        raise CniError(NODE_FACTS_INVALID, f"{path}: must be a YAML mapping")
    return data


def _where(problem: Problem) -> str:
    where = problem.with_position()
    return f"{problem.field_path}: {where}" if problem.field_path else where


def read(path: Path) -> NodeFacts:
    """The current document, without the lock (the file is only ever replaced atomically)."""
    return NodeFacts(path, _load(path))


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[NodeFacts]:
    """Hold the node facts lock and yield the current document; call ``save()`` to commit changes."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot open lock file {lock_path}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise CniError(IO_FAILURE, f"cannot lock {lock_path}: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise CniError(
                        TRY_AGAIN_LATER, f"node facts file {path} is locked by another invocation"
                    ) from exc
                time.sleep(0.02)
        yield NodeFacts(path, _load(path))
    finally:
        os.close(lock_fd)  # also releases the lock
