"""`offload-compile trace` reaches NodePort and IP:PORT targets (Services issue: "trace handles
`to: nodeport:NODE_IP:PORT` and `to: IP:PORT` targets"), v4 and v6, TCP and UDP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from k8s_offload.analysis.trace import make_probe
from k8s_offload.cli.main import main

CASE = Path(__file__).resolve().parents[1] / "compiler" / "golden" / "nodeport-cluster"
CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {nodeName: node-a, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.244.1.99, podIPs: [{ip: 10.244.1.99}, {ip: "fd00:244:1::99"}]}
"""
NODE_FACTS_CLIENT = '  - {namespace: default, name: client, port: 20, mac: "02:00:00:00:00:14"}\n'


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(CASE / "manifests.yaml", tmp_path / "manifests.yaml")
    (tmp_path / "client.yaml").write_text(CLIENT)
    node = tmp_path / "node.yaml"
    node.write_text((CASE / "node.yaml").read_text() + NODE_FACTS_CLIENT)
    return tmp_path, node


@pytest.mark.parametrize(
    ("target", "protocol"),
    [
        ("nodeport:192.168.10.11:30080", "TCP"),
        ("nodeport:[fd00:10::11]:30080", "TCP"),
        ("nodeport:192.168.10.11:30053", "UDP"),
        ("10.96.0.50:80", "TCP"),
        ("[fd00:96::50]:53", "UDP"),
    ],
)
def test_trace_reaches_a_backend(
    cluster: tuple[Path, Path], target: str, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, node = cluster
    files = [str(directory / "manifests.yaml"), str(directory / "client.yaml")]
    probe = ["--from", "default/client", "--to", target, "--protocol", protocol, "--format", "json"]
    code = main(["trace", *files, "--node", str(node), *probe])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out[0]["allowed"] is True, out[0]["reason"]
    assert out[0]["backend"] in ("default/web-a", "default/web-b")


def test_port_in_target_and_port_field_must_agree() -> None:
    assert make_probe("a/b", "10.0.0.1:80", None, "TCP").port == 80
    with pytest.raises(ValueError, match="contradicts"):
        make_probe("a/b", "10.0.0.1:80", 81, "TCP")
    with pytest.raises(ValueError, match="nodeport:NODE_IP:PORT"):
        make_probe("a/b", "nodeport:10.0.0.1", 80, "TCP")
