"""A container's command line as the kubelet would run it, from deploy/*.yaml, without a kubelet.

What is resolved, as Kubernetes does it ("Define Dependent Environment Variables" and
"Expose Pod Information to Containers Through Environment Variables" in the Kubernetes docs):
- `env`: literal values (with `$(VAR)` of earlier variables expanded), `fieldRef` from the pod
  values given (the downward API), `configMapKeyRef` from the ConfigMaps in deploy/ (a missing
  map or key is an error, as it keeps the kubelet from starting the container);
- `command` and `args`: `$(VAR)` replaced by the variable's value, `$$` by `$`; a reference to an
  undefined variable stays as written, which the callers treat as an error;
- volumes: every `volumeMount` is given a directory of the test (a ConfigMap volume holds the
  map's keys as files, a hostPath volume starts empty and is shared by the containers that mount
  it), and each mount path is rewritten to that directory in the command line and the
  environment (longest path first). The service account the kubelet mounts implicitly is the
  caller's business: it appears in no command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def documents() -> list[dict[str, Any]]:
    out = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def one(kind: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("DaemonSet")["spec"]["template"]["spec"]
    return spec


def containers(spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Init containers first, in order, then the containers: the order the kubelet starts them."""
    spec = spec or pod_spec()
    return [*spec.get("initContainers", []), *spec["containers"]]


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` -> its value when defined (else left as is), `$$` -> `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


def unresolved(text: str) -> list[str]:
    """The `$(VAR)` references left in an expanded string (`$$(X)` was an escape, not one)."""
    return re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", text)


@dataclass
class Resolved:
    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path] = field(default_factory=dict)  # mountPath -> test directory
    container: dict[str, Any] = field(default_factory=dict)

    def port(self, name_or_number: str | int) -> int:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(name_or_number, int):
            return name_or_number
        (found,) = [
            p["containerPort"] for p in self.container.get("ports", []) if p["name"] == name_or_number
        ]
        return int(found)


def _env(container: dict[str, Any], pod_values: dict[str, str]) -> dict[str, str]:
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents() if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path in pod_values, f"{container['name']}: no test value for fieldRef {path}"
            env[var["name"]] = pod_values[path]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] in maps, f"{container['name']}: no ConfigMap {ref['name']}"
            assert ref["key"] in maps[ref["name"]], (
                f"{container['name']}: no key {ref['key']} in {ref['name']}"
            )
            env[var["name"]] = str(maps[ref["name"]][ref["key"]])
        else:
            raise AssertionError(f"{container['name']}: env source {sorted(source)} not resolved by the test")
    return env


def _volume_dirs(spec: dict[str, Any], root: Path) -> dict[str, Path]:
    """One directory per pod volume; ConfigMap volumes filled with the map's keys."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents() if d["kind"] == "ConfigMap"}
    out = {}
    for vol in spec.get("volumes", []):
        d = root / "volumes" / vol["name"]
        d.mkdir(parents=True, exist_ok=True)
        if "configMap" in vol:
            for key, value in maps[vol["configMap"]["name"]].items():
                (d / key).write_text(value)
        else:
            assert "hostPath" in vol or "emptyDir" in vol, (
                f"volume {vol['name']}: kind not handled by the test"
            )
        out[vol["name"]] = d
    return out


def resolve(pod_values: dict[str, str], root: Path, spec: dict[str, Any] | None = None) -> list[Resolved]:
    """Every container of the pod, resolved; volumes under `root` (shared between containers)."""
    spec = spec or pod_spec()
    volumes = _volume_dirs(spec, root)
    out = []
    for c in containers(spec):
        env = _env(c, pod_values)
        argv = [expand(a, env) for a in [*c.get("command", []), *c.get("args", [])]]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}
        for path in sorted(mounts, key=len, reverse=True):
            argv = [a.replace(path, str(mounts[path])) for a in argv]
            env = {k: v.replace(path, str(mounts[path])) for k, v in env.items()}
        out.append(Resolved(c["name"], argv, env, mounts, c))
    return out
