"""The lab (root): a Service without endpoints refuses connections at once, as with kube-proxy.

kube-proxy REJECTs new connections to a Service port with no endpoints (ICMP port unreachable;
upstream e2e "should be rejected when no endpoints exist", test/e2e/network/service.go), so curl
fails immediately with "Connection refused" (exit 7) instead of timing out. The example lab cluster
plus one endpoint-less dual-stack Service, brought up once for this module.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_offload.lab import cli
from k8s_offload.lab.core import Lab, LabState, ns_run

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.root

EMPTY = """apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec:
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  clusterIP: 10.96.0.99
  clusterIPs: [10.96.0.99, "fd00:96::99"]
  selector: {app: nothing}
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: 8080}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabState]]:
    name = f"r{secrets.token_hex(3)}"
    base = tmp_path_factory.mktemp("lab-reject")
    cluster = base / "cluster"
    shutil.copytree(REPO / "examples/lab/cluster", cluster)
    shutil.copy(REPO / "examples/lab/node.yaml", base / "node.yaml")  # read next to the cluster
    (cluster / "empty-service.yaml").write_text(EMPTY)
    state_dir = base / "state"
    the_lab = Lab(name, state_dir)
    try:
        assert cli.main(["up", "--name", name, "--state-dir", str(state_dir), "--cluster", str(cluster)]) == 0
        state = the_lab.load()
        assert state is not None and state.ready
        yield the_lab, state
    finally:
        the_lab.down()
        assert not Path(state_dir).exists()


@pytest.mark.parametrize("url", ["http://10.96.0.99/", "http://[fd00:96::99]/"], ids=["ipv4", "ipv6"])
def test_curl_to_a_service_without_endpoints_is_refused_at_once(lab: tuple[Lab, LabState], url: str) -> None:
    _, state = lab
    start = time.monotonic()
    proc = ns_run(state.pod("client").netns, "curl", "-sS", "--max-time", "10", url, check=False, timeout=20)
    elapsed = time.monotonic() - start
    assert proc.returncode == 7, (proc.returncode, proc.stderr)  # CURLE_COULDNT_CONNECT
    assert elapsed < 3, f"took {elapsed:.1f} s: dropped and retried, not rejected"
    # Newer curl prints "Couldn't connect to server"; the errno is what the client sees.
    host = url.split("//")[1].rstrip("/").strip("[]")
    connect = f"socket.create_connection(({host!r}, 80), 5)"
    probe = f"import socket\ntry:\n    {connect}\nexcept OSError as e:\n    print(e)"
    errno = ns_run(state.pod("client").netns, sys.executable, "-c", probe, check=False, timeout=20)
    assert "Connection refused" in errno.stdout, (proc.stderr, errno.stdout, errno.stderr)


def test_the_service_with_endpoints_still_answers(lab: tuple[Lab, LabState]) -> None:
    _, state = lab
    proc = ns_run(
        state.pod("client").netns, "curl", "-sS", "--max-time", "5", "http://10.96.0.10/", check=False
    )
    assert proc.returncode == 0, proc.stderr
