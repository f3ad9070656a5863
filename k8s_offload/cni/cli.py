"""Command line entry point of ``offload-cni``: the CNI calling convention around plugin.py.

The runtime passes parameters in CNI_* environment variables and the network configuration on
stdin, and reads a result or an error as JSON on stdout; the exit code is 0 only on success.
Diagnostics go to stderr (and to $OFFLOAD_CNI_LOG if set), never to stdout. Every failure,
including a bug, ends as the spec's error document, never as a bare traceback on stdout.

``offload-cni install ...`` and ``offload-cni serve ...`` are the exceptions: ordinary command
lines (install.py, server.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import IO, Any

from k8s_offload.cni import install, metrics, netns, nodefacts, plugin
from k8s_offload.cni.config import NetConf, parse_env, parse_netconf, peek_version
from k8s_offload.cni.errors import DECODE_FAILURE, INTERNAL_ERROR, IO_FAILURE, CniError, brief
from k8s_offload.version import version as package_version

log = logging.getLogger("cni_plugin")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s offload-cni %(levelname)s %(message)s"  # what the runtime's log shows
MAX_STDIN = 1 << 20


def run(
    environ: Mapping[str, str], stdin: bytes, netns_handle: str = ""
) -> tuple[int, dict[str, Any] | None]:
    """Execute one invocation; returns the exit code and the JSON document to print, if any.
    ``netns_handle``: where to open CNI_NETNS instead of its path (the CNI server's descriptor)."""
    version = peek_version(stdin)
    started, t0 = time.time(), time.monotonic()
    conf: NetConf | None = None
    command = str(environ.get("CNI_COMMAND", ""))
    code, doc = 0, None
    try:
        env = replace(parse_env(environ), netns_handle=netns_handle)
        if env.command == "VERSION":
            return 0, plugin.version_info(version)
        conf = parse_netconf(stdin, env.command)
        version = conf.cni_version
        handler = {
            "ADD": plugin.cmd_add,
            "DEL": plugin.cmd_del,
            "CHECK": plugin.cmd_check,
            "STATUS": plugin.cmd_status,
            "GC": plugin.cmd_gc,
        }[env.command]
        doc = handler(conf, env, environ)
    except CniError as exc:
        log.error("%s failed: %s%s", command[:20], exc.msg, f" ({exc.details})" if exc.details else "")
        code, doc = exc.code, exc.to_json(version)
    except Exception as exc:  # a bug: report it as a CNI error rather than a bare traceback
        log.exception("unexpected failure")
        code, doc = (
            INTERNAL_ERROR,
            CniError(INTERNAL_ERROR, f"internal error: {brief(str(exc), 200)}").to_json(version),
        )
    if conf is not None and conf.metrics_file is not None:
        op = metrics.Operation(command, code, started, time.monotonic() - t0, _pool(conf))
        metrics.record(conf.metrics_file, op)
    return (0 if code == 0 else 1), doc


def _pool(conf: NetConf) -> dict[str, int] | None:
    """Pool state for the metrics file, read without the lock (the facts file is replaced atomically)."""
    try:
        facts = nodefacts.read(conf.node_facts)
        summary = plugin.pool_summary(conf, facts, netns.host_links())
    except Exception as exc:
        log.debug("no pool state for metrics: %s", exc)
        return None
    return {"assigned": summary.assigned, "available": summary.available, "unavailable": summary.unavailable}


def _setup_logging(environ: Mapping[str, str]) -> None:
    """stderr, plus $OFFLOAD_CNI_LOG; a bad log file or level is reported and otherwise ignored."""
    logging.basicConfig(
        level=logging.WARNING,
        format=LOG_FORMAT,
        stream=sys.stderr,
        force=True,
    )
    level = environ.get("OFFLOAD_CNI_LOG_LEVEL", "INFO").upper()
    if level not in LEVELS:
        log.warning(
            "OFFLOAD_CNI_LOG_LEVEL %s is not one of %s; using INFO", brief(level, 40), ", ".join(LEVELS)
        )
        level = "INFO"
    log.setLevel(level)
    if path := environ.get("OFFLOAD_CNI_LOG"):
        try:
            handler = logging.FileHandler(path)
        except (OSError, ValueError) as exc:
            log.warning("cannot open OFFLOAD_CNI_LOG %s: %s", brief(path, 200), exc)
            return
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)


def invoke(environ: Mapping[str, str], data: bytes, netns_handle: str = "") -> tuple[int, str]:
    """One invocation from its raw stdin to (exit code, what to print on stdout): the console
    script and the CNI server (server.py) both run the plugin through this."""
    doc: dict[str, Any] | None
    if len(data) > MAX_STDIN:
        too_big = CniError(DECODE_FAILURE, f"network configuration is larger than {MAX_STDIN} bytes")
        code, doc = 1, too_big.to_json(peek_version(data))
    else:
        code, doc = run(environ, data, netns_handle)
    return code, "" if doc is None else json.dumps(doc, indent=2) + "\n"


def main(argv: list[str] | None = None, stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # a runtime passes no arguments (CNI_* and stdin); a person may
        print(f"offload-cni {package_version()}")
        return 0
    if args[:1] == ["install"]:
        return install.main(args[1:])
    if args[:1] == ["serve"]:
        from k8s_offload.cni import server

        return server.main(args[1:])
    _setup_logging(os.environ)
    out = stdout or sys.stdout
    try:
        data = (stdin or sys.stdin.buffer).read(MAX_STDIN + 1)
    except OSError as exc:
        data, failed = b"", CniError(IO_FAILURE, f"cannot read the network configuration: {exc}")
        code, text = 1, json.dumps(failed.to_json(peek_version(data)), indent=2) + "\n"
    else:
        code, text = invoke(os.environ, data)
    if text:
        try:
            out.write(text)
            out.flush()
        except OSError as exc:
            log.error("cannot write the result: %s", exc)
            return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
