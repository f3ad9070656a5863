"""deploy/: every manifest valid against the Kubernetes OpenAPI schemas (kubernetes-validate ships
them, so this runs offline), RBAC read-only and exactly the watched kinds, the DaemonSet's loader
arguments accepted by the real CLI parser, the node facts template valid once named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from k8s_offload.cluster.watch import RESOURCES
from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.nodefacts import parse_node_facts
from k8s_offload.loader.cli import _parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30"
GROUPS = {"v1": "", "discovery.k8s.io/v1": "discovery.k8s.io", "networking.k8s.io/v1": "networking.k8s.io"}
PLURALS = {
    "Namespace": "namespaces",
    "Pod": "pods",
    "Service": "services",
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices",
    "NetworkPolicy": "networkpolicies",
}


def _docs() -> list[dict[str, Any]]:
    out = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def _one(kind: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_schema_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_daemonset() -> None:
    """The check above can fail: a misspelt field under strict validation is an error."""
    ds = _one("DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSION, strict=True)


def test_cluster_role_is_read_only_on_exactly_the_watched_kinds() -> None:
    role = _one("ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert sorted(rule["verbs"]) == ["get", "list", "watch"]
        granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    watched = {(GROUPS[r.api_version], PLURALS[r.kind]) for r in RESOURCES}
    assert granted == watched
    binding = _one("ClusterRoleBinding")
    account = _one("ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "k8s-offload"}
    ]


def test_daemonset_runs_loader_and_arp_proxy_with_valid_arguments() -> None:
    spec = _one("DaemonSet")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    containers = {c["name"]: c for c in spec["containers"]}
    assert containers["loader"]["command"] == ["offload-loader"]
    assert containers["arp-proxy"]["command"] == ["offload-arp-proxy"]
    args = [
        a.replace("$(NODE_NAME)", "node-a").replace("$(TARGET)", "127.0.0.1:9559")
        for a in containers["loader"]["args"]
    ]
    parsed = _parser().parse_args(args)
    assert parsed.in_cluster and parsed.node_name == "node-a" and not parsed.manifests
    probe = containers["loader"]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"


def test_node_facts_template_is_valid_once_named() -> None:
    text = _one("ConfigMap")["data"]["node.yaml"].replace("NODE_NAME", "node-a")
    facts = parse_node_facts(yaml.safe_load(text), Location("configmap"))
    assert facts.node_name == "node-a" and facts.pods == ()


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile; comments and blank lines dropped."""
    out = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert not line.rstrip().endswith("\\"), "continuation lines: extend _instructions"
            op, _, rest = line.strip().partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_copies_what_exists_and_installs_the_project() -> None:
    root = DEPLOY.parent
    steps = _instructions()
    for op, rest in steps:
        if op == "COPY":
            for src in rest.split()[:-1]:
                assert (root / src).exists(), src
    assert any(op == "RUN" and "pip install" in rest and "-e ." in rest for op, rest in steps)


def test_image_file_set_runs_every_command_the_daemonset_uses(tmp_path: Path) -> None:
    """No Docker engine here (and no registry for the base image), so the build context is
    replayed: only the files the Dockerfile COPYs, at its WORKDIR, and every console script the
    DaemonSet starts must run from them; the committed P4Info (read at start) must be among them.
    A package, grammar or template left out of the COPY lines fails here."""
    root = DEPLOY.parent
    workdir = tmp_path / "image"
    for op, rest in _instructions():
        if op == "WORKDIR":
            workdir = tmp_path / "image" / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *sources, dest = rest.split()
            target = workdir / dest
            for src in sources:
                path = root / src
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)
    scripts = tomllib.loads((workdir / "pyproject.toml").read_text())["project"]["scripts"]
    used = {
        c["command"][0] for c in _one("DaemonSet")["spec"]["template"]["spec"]["containers"] if "command" in c
    }
    assert used <= set(scripts), used - set(scripts)
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONSAFEPATH": "1"}
    for name in sorted(used):
        module, _, func = scripts[name].partition(":")
        code = f"import sys; from {module} import {func}; sys.argv=[{name!r}, '--help']; {func}()"
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0 and "usage:" in run.stdout, (name, run.stderr[-2000:])
        assert str(workdir) in subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
    check = "from k8s_offload.compiler.contract import read_p4info; print(len(read_p4info().tables))"
    run = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and int(run.stdout) > 0, run.stderr[-2000:]
