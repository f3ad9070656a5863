"""deploy/ without a cluster or a container engine: every manifest valid against the Kubernetes
OpenAPI schemas (kubernetes-validate ships them, so this runs offline); the DaemonSet's settings
that docs/deploy.md promises (node selector, seccomp, capabilities, resources, probes, metrics
addresses, pinned image); RBAC exactly what the loader lists and watches; every container's
command line, resolved as the kubelet resolves it, accepted by the real argument parser; the
Dockerfile's build context replayed to build the wheel the image installs.

tests/deploy/test_containers_start.py starts the same command lines (root)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import struct
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from k8s_offload.cluster.watch import RESOURCES
from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.nodefacts import parse_node_facts
from k8s_offload.httpserve import parse_listen
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.target.server import EmbeddedTarget
from tests.conftest import require_c_compiler
from tests.embedded_fixtures import NODE, P4RT_SHELL_ELECTION_ID, SHOP, connect

from .podspec import DEPLOY, containers, documents, one, pod_spec, resolve, unresolved

REPO = DEPLOY.parent
K8S_VERSION = "1.30"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"ghcr.io/k8s-offload/k8s-offload:{VERSION}"
DEVICE_LABEL = "offload.k8s-offload.dev/device"
GROUPS = {
    "v1": "",
    "discovery.k8s.io/v1": "discovery.k8s.io",
    "networking.k8s.io/v1": "networking.k8s.io",
    "policy.networking.k8s.io/v1alpha1": "policy.networking.k8s.io",
    "policy.networking.k8s.io/v1alpha2": "policy.networking.k8s.io",
}
PLURALS = {
    "Namespace": "namespaces",
    "Pod": "pods",
    "Service": "services",
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices",
    "NetworkPolicy": "networkpolicies",
    "Node": "nodes",
    "AdminNetworkPolicy": "adminnetworkpolicies",
    "BaselineAdminNetworkPolicy": "baselineadminnetworkpolicies",
    "ClusterNetworkPolicy": "clusternetworkpolicies",
}
# What each container may add to a dropped-ALL capability set, and why (docs/deploy.md).
CAPABILITIES = {
    "arp-proxy": {"NET_RAW"},  # AF_PACKET socket on the proxy's interface
    "cni": {"NET_ADMIN", "SYS_ADMIN"},  # device ports into pod namespaces; setns into them
}
SHIM_IN_IMAGE = "/usr/local/libexec/k8s-offload/offload-cni"
POD_VALUES = {"spec.nodeName": "node-a", "status.podIP": "192.0.2.10"}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_schema_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_daemonset() -> None:
    """The check above can fail: a misspelt field under strict validation is an error."""
    ds = one("DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSION, strict=True)


def used_api() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every request the code makes, from the code's own lists:
    the loader lists and watches what k8s_offload/cluster/watch.py follows where EndpointSlices
    are served (so not v1 Endpoints: tests/cluster/test_discovery.py shows it never asks for
    them there); `offload-cni install` gets its Node (k8s_offload/cni/podcidr.py)."""
    from k8s_offload.cni.podcidr import RBAC as INSTALL_CNI

    watched = {(GROUPS[r.api_version], PLURALS[r.kind]) for r in RESOURCES if r.kind != "Endpoints"}
    return {(g, r, verb) for g, r in watched for verb in ("list", "watch")} | set(INSTALL_CNI)


def test_cluster_role_grants_exactly_what_the_code_uses() -> None:
    """No verb, kind or group more or less than the code uses; no write at all."""
    role = one("ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == used_api()
    assert not {v for _, _, v in granted} & {"create", "update", "patch", "delete", "deletecollection", "*"}
    binding = one("ClusterRoleBinding")
    account = one("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "offload-loader",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "k8s-offload"}
    ]
    assert pod_spec()["serviceAccountName"] == account["metadata"]["name"]


def test_pod_runs_on_offload_nodes_under_runtime_default_seccomp() -> None:
    spec = pod_spec()
    assert spec["nodeSelector"] == {DEVICE_LABEL: "true"}
    assert DEVICE_LABEL in (REPO / "docs/deploy.md").read_text()  # documented for the operator
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in containers():
        assert "seccompProfile" not in c.get("securityContext", {}), c["name"]  # nobody opts out


@pytest.mark.parametrize("container", containers(), ids=lambda c: c["name"])
def test_container_is_pinned_limited_and_minimally_privileged(container: dict[str, Any]) -> None:
    assert container["image"] == IMAGE  # the package version, never :latest
    res = container["resources"]
    for kind in ("requests", "limits"):
        assert set(res[kind]) == {"cpu", "memory"}, (container["name"], kind)
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"].get("add", [])) == CAPABILITIES.get(container["name"], set())
    if sc["runAsUser"] != 0:
        assert sc["runAsNonRoot"] is True
    else:  # root only where a host directory or a capability needs it, and said so
        assert container["name"] in {"seed-node-facts", "install-cni", *CAPABILITIES}


def test_loader_runs_as_the_image_user() -> None:
    loader = {c["name"]: c for c in containers()}["loader"]
    user = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    assert user == [f"{loader['securityContext']['runAsUser']}:{loader['securityContext']['runAsGroup']}"]


LISTEN = {"loader": "--metrics=", "arp-proxy": "--health-listen=", "cni": "--health-listen="}


@pytest.mark.parametrize("name", list(LISTEN))
def test_daemons_have_probes_on_a_declared_port(name: str, tmp_path: Path) -> None:
    (c,) = [r for r in resolve(POD_VALUES, tmp_path) if r.name == name]
    (address,) = [a.removeprefix(LISTEN[name]) for a in c.argv if a.startswith(LISTEN[name])]
    host, port = parse_listen(address)
    # The pod IP (with hostNetwork the node's: where the kubelet probes) or loopback, never 0.0.0.0.
    assert host == POD_VALUES["status.podIP"] or ipaddress.ip_address(host).is_loopback, address
    for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        probe = c.container[kind]["httpGet"]
        assert probe["path"] == path and c.port(probe["port"]) == port, (kind, probe)


@pytest.mark.parametrize("name", list(LISTEN))
def test_daemons_listen_on_an_ipv6_pod_ip(name: str, tmp_path: Path) -> None:
    """On an IPv6-only node status.podIP is an IPv6 address and `$(POD_IP):PORT` expands to a bare
    `fd00:10::7:9464`: the daemon's own parser reads it as that address and the probe's port, and
    the shared server (k8s_offload/httpserve.py) serves such an address (tests/test_httpserve.py)."""
    pod_ip = "fd00:10::7"
    (c,) = [r for r in resolve({**POD_VALUES, "status.podIP": pod_ip}, tmp_path) if r.name == name]
    (address,) = [a.removeprefix(LISTEN[name]) for a in c.argv if a.startswith(LISTEN[name])]
    assert parse_listen(address) == (pod_ip, c.port(c.container["readinessProbe"]["httpGet"]["port"]))
    words, parser = next((w, p) for w, p in _parsers().items() if tuple(c.argv[: len(w)]) == w)
    parser().parse_args(c.argv[len(words) :])  # and the command line accepts it


def test_every_reference_resolves(tmp_path: Path) -> None:
    """Every $(VAR) in a command line is a variable the container defines; every ConfigMap key and
    downward API field it reads exists (resolve() asserts those)."""
    for c in resolve(POD_VALUES, tmp_path):
        assert not [u for a in c.argv for u in unresolved(a)], (c.name, c.argv)
        assert not [u for v in c.env.values() for u in unresolved(v)], (c.name, c.env)


def _parsers() -> dict[tuple[str, ...], Callable[[], argparse.ArgumentParser]]:
    """The real parser of each command the DaemonSet runs, by its leading words."""
    from k8s_offload.arp_proxy.cli import build_parser
    from k8s_offload.cni import install, server
    from k8s_offload.loader.cli import _parser

    return {
        ("offload-loader",): _parser,
        ("offload-arp-proxy",): build_parser,
        ("offload-cni", "install"): install.build_parser,
        ("offload-cni", "serve"): server.build_parser,
    }


@pytest.mark.parametrize("name", [c["name"] for c in containers()])
def test_command_line_parses(name: str, tmp_path: Path) -> None:
    """The resolved command line through the command's own parser: a required argument missing
    (the proxy's --gateway-ip once was), an unknown option or a bad value fails here."""
    (c,) = [r for r in resolve(POD_VALUES, tmp_path) if r.name == name]
    if c.argv[:2] == ["sh", "-c"]:
        run = subprocess.run(["sh", "-n", "-c", c.argv[2]], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        return
    matches = [(words, p) for words, p in _parsers().items() if tuple(c.argv[: len(words)]) == words]
    assert matches, f"{name}: no parser known for {c.argv[:2]}"
    words, parser = matches[0]
    try:
        parser().parse_args(c.argv[len(words) :])
    except SystemExit as exc:
        raise AssertionError(f"{name}: {' '.join(c.argv)} does not parse") from exc


def test_loader_command_line_means_what_the_manifest_says(tmp_path: Path) -> None:
    from k8s_offload.loader.cli import _parser

    (c,) = [r for r in resolve(POD_VALUES, tmp_path) if r.name == "loader"]
    args = _parser().parse_args(c.argv[1:])
    assert args.in_cluster and not args.manifests and args.node_name == "node-a"
    assert args.target == one("ConfigMap")["data"]["target"]
    assert Path(args.node) == c.mounts["/etc/k8s-offload"] / "node.yaml"
    # Arbitration (docs/deploy.md): the default role, and an election id above p4runtime-shell's
    # default so that inspecting the device with it leaves the loader primary.
    assert args.role == "" and args.election_id == P4RT_SHELL_ELECTION_ID + 1


def test_the_manifests_arbitration_keeps_the_loader_primary_while_p4runtime_shell_looks(
    switch: EmbeddedTarget, tmp_path: Path
) -> None:
    """The DaemonSet's --election-id and --role against a device: a client with p4runtime-shell's
    default id connecting (to inspect) leaves the loader primary and ready."""
    from k8s_offload.loader.cli import _parser

    (c,) = [r for r in resolve(POD_VALUES, tmp_path) if r.name == "loader"]
    args = _parser().parse_args(c.argv[1:])
    cfg = LoaderConfig(sources=[SHOP], node=NODE, target=switch.address, poll_interval=0.05,
                       election_id=args.election_id, role=args.role)  # fmt: skip
    loader = Loader(cfg)
    shell = None
    try:
        loader.step()
        loader.step()
        assert loader.metrics.ready(), loader.unready_reason()
        shell = connect(switch.address, election_id=P4RT_SHELL_ELECTION_ID)
        assert not shell.is_primary
        loader.step()
        assert loader.metrics.ready(), loader.unready_reason()
    finally:
        if shell is not None:
            shell.close()
        loader.close()


def test_gateway_settings_agree() -> None:
    """The proxy's arguments, the node facts template and the CNI network configuration name the
    same gateway; the template is valid node facts once named."""
    data = one("ConfigMap")["data"]
    facts = parse_node_facts(yaml.safe_load(data["node.yaml"].replace("NODE_NAME", "node-a")), Location("cm"))
    assert facts.node_name == "node-a" and facts.pods == ()
    conflist = json.loads(data["10-offload.conflist"])
    (plugin,) = [p for p in conflist["plugins"] if p["type"] == "offload-cni"]
    assert str(facts.gateway.ipv4) == data["gatewayIPv4"] == plugin["gateway"]["ipv4"]
    assert str(facts.gateway.ipv6) == data["gatewayIPv6"] == plugin["gateway"]["ipv6"]
    assert facts.gateway.mac == data["gatewayMAC"]
    assert plugin["nodeFacts"] == "/etc/k8s-offload/node.yaml"  # the file the loader reads (hostPath)


# ---- the image -------------------------------------------------------------------------------


def _stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """(FROM line, [(instruction, arguments)]) per stage; comments, blank lines and line
    continuations folded as Docker reads them."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        pending += raw.rstrip().removesuffix("\\") + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(" ".join(pending.split()))
            pending = ""
    args = {}
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not stages:
            name, _, value = rest.partition("=")
            args[name] = value
        elif op == "FROM":
            for name, value in args.items():
                rest = rest.replace("${" + name + "}", value)
            stages.append((rest, []))
        else:
            stages[-1][1].append((op, rest))
    return stages


def test_dockerfile_is_multi_stage_pinned_and_installs_the_wheel_as_non_root() -> None:
    stages = _stages()
    assert [base.split()[-1] for base, _ in stages[:-1]] == ["wheel", "cni-shim"]
    for base, _ in stages:
        image = base.split()[0]
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), (
            image
        )  # a version, not a moving tag
    final = stages[-1][1]
    runs = " ".join(rest for op, rest in final if op == "RUN")
    assert "pip install" in runs and ".whl" in runs and " -e " not in runs
    (user,) = [rest for op, rest in final if op == "USER"]
    assert int(user.split(":")[0]) != 0
    copies = [rest for op, rest in final if op == "COPY"]
    assert all(c.startswith("--from=") for c in copies)  # built artefacts only: the wheel, the shim
    assert f"--from=cni-shim /out/offload-cni {SHIM_IN_IMAGE}" in copies
    assert f"k8s-offload:{VERSION}" in (DEPLOY / "Dockerfile").read_text()  # the tag the DaemonSet runs


def test_install_cni_installs_the_shim_the_image_holds(tmp_path: Path) -> None:
    (c,) = [r for r in resolve(POD_VALUES, tmp_path) if r.name == "install-cni"]
    assert f"--shim={SHIM_IN_IMAGE}" in c.argv


def _replay(stage: list[tuple[str, str]], ctx: Path) -> None:
    """A stage's COPY lines from the repository into `ctx` (links kept, as COPY keeps them)."""
    ctx.mkdir(parents=True, exist_ok=True)
    for op, rest in stage:
        if op == "COPY" and not rest.startswith("--from="):
            *sources, dest = rest.split()
            for src in sources:
                path = REPO / src
                target = (
                    ctx / dest / path.name if dest.endswith("/") and dest not in ("./", ".") else ctx / dest
                )
                target = ctx / path.name if dest in ("./", ".") else target
                target.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    shutil.copytree(path, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)


def test_shim_stage_context_builds_a_static_shim(tmp_path: Path) -> None:
    """The cni-shim stage's COPY lines and its make rule, replayed: the program builds from just
    those files, and is static (a node has none of the image's libraries)."""
    require_c_compiler()
    (_, stage) = _stages()[1]
    _replay(stage, tmp_path / "ctx")
    (make,) = [rest for op, rest in stage if op == "RUN" and rest.startswith("make ")]
    out = tmp_path / "out" / "offload-cni"
    argv = [*make.replace("/out/offload-cni", str(out)).split(), "-C", str(tmp_path / "ctx")]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not program_header_types(out.read_bytes()) & {PT_INTERP, PT_DYNAMIC}


PT_INTERP, PT_DYNAMIC = 3, 2


def program_header_types(elf: bytes) -> set[int]:
    """The p_type of every program header of a 64-bit little-endian ELF file: a static program
    has neither PT_INTERP (the dynamic loader to run) nor PT_DYNAMIC."""
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit little-endian ELF"
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return {struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)}


def test_build_stage_context_builds_a_complete_wheel(tmp_path: Path) -> None:
    """No Docker engine here: the build stage's COPY lines are replayed into a directory (links
    kept, as COPY keeps them) and the wheel built from just that. A package, grammar, template or
    data file left out of the COPY lines is missing from the wheel and fails here; that the wheel
    then runs is tests/deploy/test_wheel.py's part."""
    ctx = tmp_path / "ctx"
    (_, build), *_ = _stages()
    _replay(build, ctx)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        str(p.relative_to(REPO)) for p in (REPO / "k8s_offload").rglob("*.py") if "examples" not in p.parts
    }
    assert modules <= names, sorted(modules - names)
    for data in (
        "k8s_offload/p4src/k8s_dp.p4",
        "k8s_offload/p4src/build/k8s_dp.p4info.txtpb",
        "k8s_offload/p4/grammar.lark",
    ):
        assert data in names
    assert any(n.startswith("k8s_offload/examples/shop/") for n in names)
