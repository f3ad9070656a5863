"""`--version` for every command, from the installed distribution's metadata (one definition)."""

from __future__ import annotations

import argparse
from importlib import metadata


def version() -> str:
    """The installed k8s-offload version; "unknown" when run from a tree that was never installed."""
    try:
        return metadata.version("k8s-offload")
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """`--version`: prints `PROG VERSION` and exits 0, before any other argument is checked."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
