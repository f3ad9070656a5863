"""Command line entry point of ``offload-cni``: the CNI calling convention around plugin.py.

The runtime passes parameters in CNI_* environment variables and the network configuration on
stdin, and reads a result or an error as JSON on stdout; the exit code is 0 only on success.
Diagnostics go to stderr (and to $OFFLOAD_CNI_LOG if set), never to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from k8s_offload.cni import plugin
from k8s_offload.cni.config import parse_env, parse_netconf, peek_version
from k8s_offload.cni.errors import INTERNAL_ERROR, IO_FAILURE, CniError
from k8s_offload.version import version

log = logging.getLogger("cni_plugin")


def run(environ: Mapping[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """Execute one invocation; returns the exit code and the JSON document to print, if any."""
    version = peek_version(stdin)
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            return 0, plugin.version_info()
        conf = parse_netconf(stdin)
        version = conf.cni_version
        if env.command == "ADD":
            return 0, plugin.cmd_add(conf, env)
        if env.command == "DEL":
            plugin.cmd_del(conf, env)
        else:
            plugin.cmd_check(conf, env)
        return 0, None
    except CniError as exc:
        log.error(
            "%s failed: %s%s", environ.get("CNI_COMMAND"), exc.msg, f" ({exc.details})" if exc.details else ""
        )
        return 1, exc.to_json(version)


def _setup_logging() -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path := os.environ.get("OFFLOAD_CNI_LOG"):
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s offload-cni %(levelname)s %(message)s", handlers=handlers
    )
    log.setLevel(os.environ.get("OFFLOAD_CNI_LOG_LEVEL", "INFO").upper())


def main(stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    if sys.argv[1:] == ["--version"]:  # a runtime passes no arguments (CNI_* and stdin); a person may
        print(f"offload-cni {version()}")
        return 0
    _setup_logging()
    out = stdout or sys.stdout
    doc: dict[str, Any] | None
    try:
        data = (stdin or sys.stdin.buffer).read()
    except OSError as exc:
        data = b""
        code, doc = 1, CniError(IO_FAILURE, f"cannot read the network configuration: {exc}").to_json("1.0.0")
    else:
        try:
            code, doc = run(os.environ, data)
        except Exception as exc:  # report bugs as a CNI error rather than a bare traceback
            log.exception("unexpected failure")
            code, doc = 1, CniError(INTERNAL_ERROR, f"internal error: {exc}").to_json(peek_version(data))
    if doc is not None:
        json.dump(doc, out, indent=2)
        out.write("\n")
        out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
