"""A minimal CNI runtime for tests: executes a network configuration list the way libcni does.

It follows the CNI specification 1.1.0, Section 3 ("Execution of Network Configurations"): each
plugin of the ``plugins`` list is found in ``CNI_PATH`` by its ``type``; its request configuration
is the plugin object plus ``cniVersion`` and ``name`` of the list (§3 "Deriving request
configuration"), plus ``prevResult``: for ADD the result of the previous plugin (none for the
first), for CHECK and DEL the final result of ADD (§3 "Adding/Checking/Deleting an attachment").
DEL runs the list in reverse order; GC runs every plugin and continues past errors (§3
"Garbage-collecting a network"). The runtime executes plugins in its own namespace (§2 Overview);
here that is the test's "node" namespace, entered with ``ip netns exec``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """What one plugin invocation returned."""

    plugin: str
    code: int
    doc: dict[str, Any] | None
    stderr: str


@dataclass
class Runtime:
    conflist: dict[str, Any]
    cni_path: list[Path]
    host_netns: str | None  # where plugins run (None: the test's own namespace)
    extra_env: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)  # e.g. a fault-injecting launcher for offload-cni
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # the libcni cache

    def find(self, kind: str) -> Path:
        for directory in self.cni_path:
            if (directory / kind).is_file():
                return directory / kind
        raise FileNotFoundError(f"plugin {kind} not in CNI_PATH")

    def request(self, plugin: dict[str, Any], prev: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        req = {**plugin, "cniVersion": self.conflist["cniVersion"], "name": self.conflist["name"], **extra}
        if prev is not None:
            req["prevResult"] = prev
        return req

    def invoke(self, plugin: dict[str, Any], env: dict[str, str], req: dict[str, Any]) -> Outcome:
        binary = self.find(plugin["type"])
        cmd = (
            [*self.prefix, str(binary)] if plugin["type"] == "offload-cni" and self.prefix else [str(binary)]
        )
        if self.host_netns:  # `ip` found with our PATH: the plugin's may be a minimal one
            cmd = [shutil.which("ip") or "ip", "netns", "exec", self.host_netns, *cmd]
        full_env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_PATH": ":".join(str(p) for p in self.cni_path),
            **self.extra_env,
            **env,
        }
        proc = subprocess.run(
            cmd, input=json.dumps(req).encode(), capture_output=True, env=full_env, timeout=60, check=False
        )
        out = proc.stdout.decode()
        doc = json.loads(out) if out.strip() else None
        return Outcome(plugin["type"], proc.returncode, doc, proc.stderr.decode(errors="replace"))

    @staticmethod
    def attachment_env(command: str, container_id: str, netns: str, ifname: str, args: str) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
        }

    def add(self, container_id: str, netns: str, ifname: str = "eth0", args: str = "") -> Outcome:
        prev: dict[str, Any] | None = None
        out = Outcome("", 0, None, "")
        env = self.attachment_env("ADD", container_id, netns, ifname, args)
        for plugin in self.conflist["plugins"]:
            out = self.invoke(plugin, env, self.request(plugin, prev))
            if out.code != 0:
                return out  # §3: halt and return the error
            prev = out.doc
        if prev is not None:
            self.results[(container_id, ifname)] = prev
        return out

    def check(self, container_id: str, netns: str, ifname: str = "eth0", args: str = "") -> Outcome:
        prev = self.results.get((container_id, ifname))
        env = self.attachment_env("CHECK", container_id, netns, ifname, args)
        for plugin in self.conflist["plugins"]:
            out = self.invoke(plugin, env, self.request(plugin, prev))
            if out.code != 0:
                return out
        return Outcome("", 0, None, "")

    def delete(self, container_id: str, netns: str, ifname: str = "eth0", args: str = "") -> Outcome:
        prev = self.results.get((container_id, ifname))
        env = self.attachment_env("DEL", container_id, netns, ifname, args)
        for plugin in reversed(self.conflist["plugins"]):
            out = self.invoke(plugin, env, self.request(plugin, prev))
            if out.code != 0:
                return out
        self.results.pop((container_id, ifname), None)
        return Outcome("", 0, None, "")

    def gc(self, valid: list[tuple[str, str]]) -> list[Outcome]:
        attachments = [{"containerID": c, "ifname": i} for c, i in valid]
        outs = []
        for plugin in self.conflist["plugins"]:
            req = self.request(plugin, None, **{"cni.dev/valid-attachments": attachments})
            outs.append(self.invoke(plugin, {"CNI_COMMAND": "GC"}, req))  # §3: continue past errors
        return outs

    def status(self) -> Outcome:
        for plugin in self.conflist["plugins"]:
            out = self.invoke(plugin, {"CNI_COMMAND": "STATUS"}, self.request(plugin, None))
            if out.code != 0:
                return out
        return Outcome("", 0, None, "")
