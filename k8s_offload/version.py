"""`--version` for every command, from the installed distribution's metadata (one definition)."""

from __future__ import annotations

import argparse
from typing import Any


def version() -> str:
    """The installed k8s-offload version; "unknown" when run from a tree that was never installed."""
    from importlib import metadata  # about 20 ms to import: only when --version is asked for

    try:
        return metadata.version("k8s-offload")
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """`--version`: prints `PROG VERSION` and exits 0, before any other argument is checked."""
    parser.add_argument("--version", action=_Version, version="%(prog)s")


class _Version(argparse._VersionAction):
    """argparse's --version, the version read from the metadata when the option is given."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        self.version = f"%(prog)s {version()}"
        super().__call__(parser, namespace, values, option)
