"""``offload-cni install``: put the plugin and its network configuration where the runtime looks.

Like Calico's and Cilium's installers (run as an init container with the host's CNI directories
mounted), each file is written to a temporary name in its destination directory and renamed into
place, so the runtime never executes a half-copied plugin or reads a half-written conflist. A
conflist is validated as the plugin itself would validate it before anything is written.
Unchanged files are left alone, so a restarted DaemonSet pod does not make the runtime reload.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from k8s_offload.cni import podcidr
from k8s_offload.cni.config import PLUGIN_TYPE, SUPPORTED_VERSIONS, load_json, parse_netconf
from k8s_offload.cni.errors import CniError, brief
from k8s_offload.console import finish_cli
from k8s_offload.safefile import atomic_write

MAX_CONFLIST_BYTES = 1 << 20
EXIT_USAGE = 2
EXIT_IO = 1
EXIT_CODES = {
    0: "installed (or found unchanged)",
    EXIT_IO: "a write failed, or the node's pod range could not be read (retried by the kubelet)",
    EXIT_USAGE: "bad options, an invalid conflist or a missing directory; nothing written",
}


class InstallError(Exception):
    def __init__(self, msg: str, code: int = EXIT_USAGE) -> None:
        super().__init__(msg)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="offload-cni install",
        description="Copy the offload-cni plugin into the runtime's plugin directory and write its "
        "network configuration list, each atomically.",
    )
    p.add_argument("--bin-dir", required=True, type=Path, help="CNI plugin directory, e.g. /opt/cni/bin")
    p.add_argument(
        "--conf-dir", required=True, type=Path, help="CNI configuration directory, e.g. /etc/cni/net.d"
    )
    p.add_argument(
        "--shim",
        type=Path,
        help="install this executable as the plugin: the static shim of the image (shim.c), which "
        "hands every invocation to `offload-cni serve` in the DaemonSet pod (default: this "
        "installation's own offload-cni, which needs this Python on the node)",
    )
    p.add_argument(
        "--conflist",
        type=Path,
        help="network configuration list to install into --conf-dir under its own file name "
        "(default: install only the plugin)",
    )
    p.add_argument(
        "--node-name",
        help="this node: ranges of the conflist whose subnet is usePodCidr / usePodCidrIPv6 get its "
        "Node's spec.podCIDRs, read from the API server (docs/cni.md, 'Pod address ranges')",
    )
    p.add_argument(
        "--kubeconfig",
        help="API server and credentials for --node-name (unset: the pod's service account)",
    )
    return finish_cli(p, EXIT_CODES)


def plugin_executable() -> Path:
    """The ``offload-cni`` executable of this installation: the running script, else the one on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == PLUGIN_TYPE and argv0.is_file():
        return argv0.resolve()
    found = shutil.which(PLUGIN_TYPE)
    if found is None:
        raise InstallError(
            f"cannot find the {PLUGIN_TYPE} executable (run it as {PLUGIN_TYPE} install)", EXIT_IO
        )
    return Path(found).resolve()


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = load_json(data, where)
    except CniError as exc:
        raise InstallError(f"{exc.msg}{f': {exc.details}' if exc.details else ''}") from None
    if not isinstance(doc, dict):
        raise InstallError(f"{where}: must be a JSON object")
    return doc


def validate_conflist(data: bytes, where: str) -> dict[str, Any]:
    """A network configuration list (spec §1) whose offload-cni entry the plugin would accept."""
    doc = _json_object(data, where)
    version, name, plugins = doc.get("cniVersion"), doc.get("name"), doc.get("plugins")
    if version not in SUPPORTED_VERSIONS:
        raise InstallError(
            f"{where}: cniVersion must be one of {', '.join(SUPPORTED_VERSIONS)}, got {brief(version)}"
        )
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
        raise InstallError(f"{where}: plugins must be a non-empty list of objects")
    ours = [i for i, p in enumerate(plugins) if p.get("type") == PLUGIN_TYPE]
    if not ours:
        raise InstallError(f"{where}: no plugin of type {PLUGIN_TYPE}")
    for i in ours:
        # What the runtime will hand the plugin (spec §3 "Deriving request configuration").
        request = {**plugins[i], "cniVersion": version, "name": name}
        try:
            parse_netconf(json.dumps(request).encode())
        except CniError as exc:
            detail = f" ({exc.details})" if exc.details else ""
            raise InstallError(f"{where}: plugins[{i}]: {exc.msg}{detail}") from None
    return doc


def _in_cluster(kubeconfig: str | None = None) -> Any:
    """An API client (imported here: the plugin itself, which imports this module, needs none)."""
    from k8s_offload.cluster.watch import api_client

    return api_client(kubeconfig)


def _install(data: bytes, dest: Path, mode: int) -> str:
    try:
        if (
            dest.is_file()
            and not dest.is_symlink()
            and dest.read_bytes() == data
            and dest.stat().st_mode & 0o777 == mode
        ):
            return f"unchanged {dest}"
        atomic_write(dest, data, mode=mode, keep_mode=False)
    except OSError as exc:
        raise InstallError(f"cannot write {dest}: {exc}", EXIT_IO) from None
    return f"installed {dest}"


def install(
    bin_dir: Path,
    conf_dir: Path,
    conflist: Path | None,
    shim: Path | None = None,
    node_name: str | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> list[str]:
    """Install the plugin (and the conflist, its pod CIDRs filled in for `node_name`); returns one
    line per file and per note. Validates everything before writing anything."""
    conf_data = None
    notes: list[str] = []
    if conflist is not None:
        try:
            with conflist.open("rb") as f:
                conf_data = f.read(MAX_CONFLIST_BYTES + 1)
        except OSError as exc:
            raise InstallError(f"cannot read {conflist}: {exc.strerror or exc}") from None
        if len(conf_data) > MAX_CONFLIST_BYTES:
            raise InstallError(f"{conflist}: larger than {MAX_CONFLIST_BYTES} bytes")
        doc = _json_object(conf_data, str(conflist))
        if podcidr.uses_placeholders(doc):
            try:
                doc, notes = podcidr.for_node(doc, node_name, client_factory or _in_cluster)
            except ValueError as exc:
                raise InstallError(f"{conflist}: {exc}") from None
            except podcidr.PodCidrError as exc:
                raise InstallError(str(exc), EXIT_IO) from None
            conf_data = (json.dumps(doc, indent=2) + "\n").encode()
        validate_conflist(conf_data, str(conflist))
    for directory in (bin_dir, conf_dir):
        if not directory.is_dir():
            raise InstallError(f"{directory}: not a directory")
    source = plugin_executable() if shim is None else shim
    if shim is not None and not (shim.is_file() and os.access(shim, os.X_OK)):
        raise InstallError(f"--shim {shim}: not an executable file")
    try:
        plugin = source.read_bytes()
    except OSError as exc:
        raise InstallError(f"cannot read {source}: {exc}", EXIT_IO) from None
    lines = [*(f"note: {n}" for n in notes), _install(plugin, bin_dir / PLUGIN_TYPE, 0o755)]
    if conflist is not None and conf_data is not None:
        lines.append(_install(conf_data, conf_dir / conflist.name, 0o644))
    return lines


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        clients = partial(_in_cluster, args.kubeconfig) if args.kubeconfig else None
        for line in install(args.bin_dir, args.conf_dir, args.conflist, args.shim, args.node_name, clients):
            print(line)
    except InstallError as exc:
        print(f"offload-cni install: {exc}", file=sys.stderr)
        return exc.code
    return 0
