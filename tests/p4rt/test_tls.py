"""TLS and mutual TLS between the client/loader and the embedded target, with certificates made by
`openssl` at test time: a CA, a server certificate for 127.0.0.1, a client certificate, and a
second CA that signed nothing we trust."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from k8s_offload.loader.cli import main as loader_main
from k8s_offload.p4rt.client import P4RuntimeClient, P4RuntimeRpcError, TlsOptions
from k8s_offload.target.server import EmbeddedTarget, ServerTls
from tests.embedded_fixtures import NODE, SHOP
from tests.pki import CLIENT_EXT, SERVER_EXT, make_ca, make_leaf


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_leaf(d, "server", "ca", SERVER_EXT)
    make_leaf(d, "client", "ca", CLIENT_EXT)
    p = {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
    return Pki(p["ca.pem"], p["server.pem"], p["server.key"], p["client.pem"], p["client.key"],
               str(d / "other-ca.pem"))  # fmt: skip


def _try_connect(address: str, tls: TlsOptions | None) -> bool:
    """True when the stream opens and arbitration answers; False when the channel never gets ready."""
    return _connect_error(address, tls) == ""


def _connect_error(address: str, tls: TlsOptions | None) -> str:
    """ "" when the stream opens and arbitration answers, else the one-line reason (issue 17.5:
    no bare FutureTimeoutError)."""
    client = P4RuntimeClient(address, election_id=1, tls=tls, timeout=2.0)
    try:
        client.connect()
        return ""
    except P4RuntimeRpcError as err:
        assert err.code == grpc.StatusCode.UNAVAILABLE and "\n" not in err.message
        return err.message
    finally:
        client.close()


def _served(tls: ServerTls) -> Any:
    return EmbeddedTarget(tls=tls)


def test_tls_server_with_client_trusting_its_ca(pki: Pki) -> None:
    with _served(ServerTls(pki.server_cert, pki.server_key)) as sw:
        assert _try_connect(sw.address, TlsOptions(ca=pki.ca))
        code = loader_main(
            ["--once", "--target", sw.address, "--tls-ca", pki.ca, "--node", str(NODE), str(SHOP)]
        )
        assert code == 0
        assert sw.servicer.write_count >= 1
        assert "may require TLS (--tls-ca)" in _connect_error(sw.address, None)  # plaintext to TLS
        wrong_ca = _connect_error(sw.address, TlsOptions(ca=pki.other_ca))  # a CA that did not sign it
        assert "not signed by the CA given (--tls-ca)" in wrong_ca


def test_tls_server_name_override(pki: Pki) -> None:
    with _served(ServerTls(pki.server_cert, pki.server_key)) as sw:
        local = sw.address.replace("127.0.0.1", "localhost")
        assert _try_connect(local, TlsOptions(ca=pki.ca))
        wrong = _connect_error(sw.address, TlsOptions(ca=pki.ca, server_name="elsewhere.example"))
        assert "does not name this address (set --tls-server-name)" in wrong


def test_mtls_requires_a_client_certificate(pki: Pki) -> None:
    with _served(ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)) as sw:
        assert _try_connect(sw.address, TlsOptions(pki.ca, pki.client_cert, pki.client_key))
        missing = _connect_error(sw.address, TlsOptions(ca=pki.ca))  # no client certificate
        assert "may require a client certificate" in missing
        args = ["--once", "--target", sw.address, "--tls-ca", pki.ca, "--node", str(NODE), str(SHOP)]
        mtls = ["--tls-cert", pki.client_cert, "--tls-key", pki.client_key]
        assert loader_main([*args[:5], *mtls, *args[5:]]) == 0
        assert sw.servicer.write_count >= 1


def test_mtls_refuses_a_certificate_from_another_ca(pki: Pki) -> None:
    make_leaf(Path(pki.other_ca).parent, "stranger", "other-ca", CLIENT_EXT)
    stranger = Path(pki.other_ca).parent
    with _served(ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)) as sw:
        tls = TlsOptions(pki.ca, str(stranger / "stranger.pem"), str(stranger / "stranger.key"))
        assert "may require a client certificate" in _connect_error(sw.address, tls)


def test_tls_to_a_plaintext_server_says_so(pki: Pki) -> None:
    with EmbeddedTarget() as sw:
        assert "the server speaks plaintext" in _connect_error(sw.address, TlsOptions(ca=pki.ca))


def test_nothing_listening_says_so() -> None:
    assert "connection refused" in _connect_error("127.0.0.1:1", None)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--tls-cert", "{client_cert}"], "--tls-cert needs --tls-key"),
        (["--tls-key", "{client_key}"], "--tls-key needs --tls-cert"),
        (["--tls-ca", "{ca}", "--tls-cert", "{client_cert}", "--tls-key", "{server_key}"], "does not belong"),
        (["--tls-ca", "{client_key}"], "not a PEM CA certificate"),
        (["--tls-ca", "/nonexistent/ca.pem"], "--tls-ca /nonexistent/ca.pem"),
    ],
    ids=["cert without key", "key without cert", "key of another cert", "CA not a certificate", "CA missing"],
)
def test_loader_tls_mistakes_exit_2_with_one_line(
    pki: Pki, flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked at start: no gRPC abort (core dump), no traceback; one line naming the cause."""
    paths = {
        "client_cert": pki.client_cert,
        "client_key": pki.client_key,
        "server_key": pki.server_key,
        "ca": pki.ca,
    }
    argv = ["--once", "--target", "127.0.0.1:1", *(f.format(**paths) for f in flags), str(SHOP)]
    assert loader_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("offload-loader: ") and says in err[0], err
