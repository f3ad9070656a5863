"""In-cluster configuration: the loader as a DaemonSet pod meets the API server.

Kubernetes gives a pod `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` and mounts its service
account at /var/run/secrets/kubernetes.io/serviceaccount (`token`, `ca.crt`; "Accessing the
Kubernetes API from a Pod", kubernetes.io/docs/tasks/run-application/access-api-from-pod). The
loader must speak HTTPS to that address, trust only that CA, and send the token as a bearer token
(RFC 6750 section 2.1). Here the loopback API server serves HTTPS with a certificate from a CA made
at test time and answers 401 without the token; the client is the real `kubernetes` client.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import MaxRetryError

from k8s_offload.cluster.watch import api_client
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.cli import main as loader_main
from k8s_offload.loader.daemon import LoaderConfig
from tests.embedded_fixtures import NODE

from .apiserver import FakeApiServer
from .harness import device as _device
from .harness import expected as _expected
from .harness import fast_watch, loader_running
from .harness import same as _same
from .harness import shop_objects as _shop_objects
from .harness import wait as _wait

TOKEN = "eyJhbGciOiJSUzI1NiJ9.service-account-token"


@pytest.fixture
def server(pki: Path) -> Iterator[FakeApiServer]:
    srv = FakeApiServer(tls=(str(pki / "apiserver.pem"), str(pki / "apiserver.key")), token=TOKEN).start()
    for obj in _shop_objects():
        srv.apply(obj)
    yield srv
    srv.stop()


def _service_account(d: Path, ca: Path, token: str = TOKEN) -> Path:
    """What the kubelet mounts: the token, the cluster CA bundle and the pod's namespace."""
    d.mkdir()
    (d / "token").write_text(token)
    shutil.copy(ca, d / "ca.crt")
    (d / "namespace").write_text("kube-system")
    return d


def _environ(server: FakeApiServer | None) -> dict[str, str]:
    port = str(server.port) if server is not None else "443"
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}


def test_loader_follows_the_cluster_with_the_pods_service_account(
    server: FakeApiServer, pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--in-cluster`: the device converges to a full compile of the server's objects, and every
    request went over TLS with the mounted token."""
    for name, value in _environ(server).items():
        monkeypatch.setenv(name, value)  # what the kubelet sets in every container
    sa = _service_account(tmp_path / "sa", pki / "cluster-ca.pem")
    cfg = LoaderConfig(
        sources=[],
        in_cluster=True,
        service_account_dir=str(sa),
        node=NODE,
        poll_interval=0.05,
        watch=fast_watch(),
    )
    with loader_running(cfg) as (loader, sw):
        _wait(loader.metrics.ready)
        want = _expected(server, default_schema())
        _wait(lambda: _same(_device(sw.address), want), poll=0.5)
    assert server.requests, "the loader never reached the API server"
    assert {r.authorization for r in server.requests} == {f"bearer {TOKEN}"}
    assert {r.kind for r in server.requests if not r.watch} >= {"Pod", "Service", "NetworkPolicy"}


def test_a_server_the_cluster_ca_did_not_sign_is_refused(
    server: FakeApiServer, pki: Path, tmp_path: Path
) -> None:
    """The client verifies the API server against `ca.crt` alone: a certificate from another CA
    fails the handshake, so no request (and no token) reaches that server."""
    sa = _service_account(tmp_path / "sa", pki / "other-ca.pem")
    api = k8s.CoreV1Api(api_client(service_account_dir=str(sa), environ=_environ(server)))
    api.api_client.configuration.retries = 0
    with pytest.raises(MaxRetryError, match="CERTIFICATE_VERIFY_FAILED"):
        api.list_namespace(_request_timeout=5)
    assert server.requests == []


def test_a_wrong_token_gets_401(server: FakeApiServer, pki: Path, tmp_path: Path) -> None:
    """The fixture's check can fail: with another token the server answers 401 Unauthorized."""
    sa = _service_account(tmp_path / "sa", pki / "cluster-ca.pem", token="not-the-token")
    api = k8s.CoreV1Api(api_client(service_account_dir=str(sa), environ=_environ(server)))
    with pytest.raises(k8s.ApiException) as err:
        api.list_namespace(_request_timeout=5)
    assert err.value.status == 401
    assert [r.authorization for r in server.requests] == ["bearer not-the-token"]


@pytest.mark.parametrize(
    ("environ", "missing", "reason"),
    [
        ({}, None, "Service host/port is not set"),
        ({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "token", "token file"),
        (
            {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            "ca.crt",
            "certification",
        ),
    ],
)
def test_outside_a_pod_in_cluster_config_says_what_is_missing(
    environ: dict[str, str], missing: str | None, reason: str, pki: Path, tmp_path: Path
) -> None:
    sa = _service_account(tmp_path / "sa", pki / "cluster-ca.pem")
    if missing:
        (sa / missing).unlink()
    with pytest.raises(ConfigException, match=reason):
        api_client(service_account_dir=str(sa), environ=environ)


def test_loader_outside_a_pod_fails_at_start_naming_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DaemonSet without its service account (or run on a laptop) exits 2 with the reason, instead
    of a traceback in a watch thread and a loader that never becomes ready."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    assert loader_main(["--in-cluster", "--node", str(NODE), "--metrics", ""]) == 2
    assert "offload-loader: --in-cluster: Service host/port is not set" in capsys.readouterr().err
