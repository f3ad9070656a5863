"""Delegation to an IPAM plugin (CNI spec 1.1.0, Section 4 "Plugin Delegation").

The plugin named by ``ipam.type`` is looked up in the directories of ``CNI_PATH`` and executed
with the same environment (``CNI_COMMAND`` replaced where we run a different command, as for the
DEL that undoes a failed ADD) and the complete network configuration exactly as we received it
on stdin. Its stderr is ours; its stdout is a result or an error document. An error document is
passed through to the runtime unchanged (code, msg, details), because §4 says the upper plugin
returns the delegated plugin's error.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_offload.cni.config import (
    DelegatedIpam,
    IPInterface,
    NetConf,
    load_json,
    one_per_family,
    parse_cidr,
)
from k8s_offload.cni.errors import DECODE_FAILURE, IPAM_FAILED, CniError, brief

log = logging.getLogger("cni_plugin")

TIMEOUT = 60.0  # seconds; a runtime gives up on the whole operation well before a hung plugin would
MAX_OUTPUT = 1 << 20


@dataclass(frozen=True)
class IpamResult:
    """What the plugin takes from an IPAM ADD result: addresses, and DNS to pass on."""

    addresses: tuple[IPInterface, ...]
    dns: Mapping[str, Any] | None


def not_found(kind: str, cni_path: tuple[str, ...]) -> CniError:
    where = ":".join(cni_path) if cni_path else "(CNI_PATH is empty)"
    return CniError(IPAM_FAILED, f"IPAM plugin {brief(kind)} not found in CNI_PATH", where)


def timed_out(kind: str, command: str) -> CniError:
    return CniError(IPAM_FAILED, f"IPAM plugin {kind} {command} did not finish in {TIMEOUT:g} s")


def cannot_execute(binary: str, reason: str) -> CniError:
    return CniError(IPAM_FAILED, f"cannot execute IPAM plugin {binary}: {reason}")


def find_plugin(kind: str, cni_path: tuple[str, ...]) -> Path:
    """The first executable file named ``kind`` in the CNI_PATH directories."""
    for directory in cni_path:
        candidate = Path(directory) / kind
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise not_found(kind, cni_path)


def run_here(kind: str, cni_path: tuple[str, ...], env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes]:
    """Find and run a plugin in this process's file system: (exit status, stdout)."""
    binary = find_plugin(kind, cni_path)
    try:
        proc = subprocess.run(
            [str(binary)],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=None,  # §4: the delegated plugin's stderr goes to ours
            env=dict(env),
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise timed_out(kind, env.get("CNI_COMMAND", "")) from None
    except OSError as exc:
        raise cannot_execute(str(binary), str(exc)) from None
    return proc.returncode, proc.stdout


Runner = Callable[[str, tuple[str, ...], Mapping[str, str], bytes], tuple[int, bytes]]
RUNNER: Runner = run_here
"""How delegates run: here, or behind the CNI server on the node through the shim that called it
(server.py sets this in the process serving one invocation)."""


def execute(
    ipam: DelegatedIpam,
    command: str,
    conf: NetConf,
    environ: Mapping[str, str],
    cni_path: tuple[str, ...],
) -> dict[str, Any] | None:
    """Run the IPAM plugin with ``command``; returns its parsed stdout (None when empty)."""
    returncode, stdout = RUNNER(ipam.type, cni_path, {**environ, "CNI_COMMAND": command}, conf.raw)
    out = stdout[:MAX_OUTPUT]
    doc: Any = None
    if out.strip():
        try:
            doc = load_json(out, f"output of IPAM plugin {ipam.type}")
        except CniError:
            if returncode == 0:
                raise
    if returncode != 0:
        raise _error_from(ipam.type, command, returncode, doc)
    if doc is not None and not isinstance(doc, dict):
        raise CniError(DECODE_FAILURE, f"IPAM plugin {ipam.type} {command} printed a non-object result")
    log.debug("IPAM %s %s: %s", ipam.type, command, json.dumps(doc) if doc else "ok")
    return doc


def _error_from(kind: str, command: str, returncode: int, doc: object) -> CniError:
    if isinstance(doc, dict) and isinstance(doc.get("code"), int) and not isinstance(doc["code"], bool):
        msg, details = doc.get("msg"), doc.get("details")
        return CniError(
            doc["code"],
            msg if isinstance(msg, str) and msg else f"IPAM plugin {kind} {command} failed",
            details if isinstance(details, str) else "",
        )
    return CniError(IPAM_FAILED, f"IPAM plugin {kind} {command} failed with exit code {returncode}")


def parse_add_result(kind: str, doc: Mapping[str, Any] | None) -> IpamResult:
    """The addresses of an abbreviated IPAM Success result (§5 "Delegated plugins (IPAM)").

    The IPAM plugin's gateways and routes are not applied: every pod routes through the node's
    gateway, which the datapath owns (see docs/cni.md, "IPAM").
    """
    where = f"result of IPAM plugin {kind}"
    ips = (doc or {}).get("ips")
    if not isinstance(ips, list):
        raise CniError(DECODE_FAILURE, f"{where}: ips must be a list")
    addrs = tuple(
        parse_cidr(
            ip.get("address") if isinstance(ip, dict) else ip, f"{where}: ips[{i}].address", DECODE_FAILURE
        )
        for i, ip in enumerate(ips)
    )
    dns = (doc or {}).get("dns")
    return IpamResult(
        one_per_family(addrs, f"{where} has no address"), dns if isinstance(dns, dict) else None
    )
