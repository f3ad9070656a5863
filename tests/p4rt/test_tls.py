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
from k8s_offload.p4rt.client import P4RuntimeClient, TlsOptions
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
    client = P4RuntimeClient(address, election_id=1, tls=tls, timeout=2.0)
    try:
        return client.connect()
    except grpc.FutureTimeoutError:
        return False
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
        assert not _try_connect(sw.address, None)  # plaintext to a TLS port
        assert not _try_connect(sw.address, TlsOptions(ca=pki.other_ca))  # a CA that did not sign it


def test_tls_server_name_override(pki: Pki) -> None:
    with _served(ServerTls(pki.server_cert, pki.server_key)) as sw:
        local = sw.address.replace("127.0.0.1", "localhost")
        assert _try_connect(local, TlsOptions(ca=pki.ca))
        assert not _try_connect(sw.address, TlsOptions(ca=pki.ca, server_name="elsewhere.example"))


def test_mtls_requires_a_client_certificate(pki: Pki) -> None:
    with _served(ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)) as sw:
        assert _try_connect(sw.address, TlsOptions(pki.ca, pki.client_cert, pki.client_key))
        assert not _try_connect(sw.address, TlsOptions(ca=pki.ca))  # no client certificate
        args = ["--once", "--target", sw.address, "--tls-ca", pki.ca, "--node", str(NODE), str(SHOP)]
        mtls = ["--tls-cert", pki.client_cert, "--tls-key", pki.client_key]
        assert loader_main([*args[:5], *mtls, *args[5:]]) == 0
        assert sw.servicer.write_count >= 1


def test_mtls_refuses_a_certificate_from_another_ca(pki: Pki) -> None:
    make_leaf(Path(pki.other_ca).parent, "stranger", "other-ca", CLIENT_EXT)
    stranger = Path(pki.other_ca).parent
    with _served(ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)) as sw:
        tls = TlsOptions(pki.ca, str(stranger / "stranger.pem"), str(stranger / "stranger.key"))
        assert not _try_connect(sw.address, tls)
