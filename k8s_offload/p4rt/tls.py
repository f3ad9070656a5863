"""TLS material checked before gRPC sees it, and gRPC's connection failures said plainly.

gRPC aborts the whole process (a failed CHECK, core dump) for a certificate without its key, and
fails a handshake with garbage PEM or a mismatched pair only when it connects, as a bare
timeout. So PEM files are parsed here first with the stdlib `ssl` module (which also checks that
the key belongs to the certificate), and a connection that never gets ready is explained from
gRPC's last error in one line naming the likely cause (issue 17.5).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TlsFlags:
    """The option names a program uses for the CA, certificate and key (for error messages)."""

    ca: str = "--tls-ca"
    cert: str = "--tls-cert"
    key: str = "--tls-key"


def check_tls_files(ca: str | None, cert: str | None, key: str | None, flags: TlsFlags = TlsFlags()) -> None:
    """ValueError naming the option and file when the material is incomplete or unusable."""
    if bool(cert) != bool(key):
        given, missing = (flags.cert, flags.key) if cert else (flags.key, flags.cert)
        raise ValueError(f"{given} needs {missing}: a certificate and its private key go together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as err:  # before OSError, its base class
            raise ValueError(f"{flags.ca} {ca}: not a PEM CA certificate ({err.reason or err})") from None
        except OSError as err:
            raise ValueError(f"{flags.ca} {ca}: {err.strerror or err}") from None
    if cert and key:
        pair = f"{flags.cert} {cert} / {flags.key} {key}"
        try:
            context.load_cert_chain(certfile=cert, keyfile=key)
        except ssl.SSLError as err:
            mismatch = "KEY_VALUES_MISMATCH" in str(err)
            reason = (
                "the key does not belong to the certificate" if mismatch else "not a PEM certificate and key"
            )
            raise ValueError(f"{pair}: {reason} ({err.reason or err})") from None
        except OSError as err:
            raise ValueError(f"{pair}: {err.strerror or err}") from None


def explain_connect_failure(address: str, last_error: str, tls: bool) -> str:
    """One line for a channel that never got ready, from gRPC's last error."""
    text = last_error
    if "CERTIFICATE_VERIFY_FAILED" in text:
        cause = "the server's certificate is not signed by the CA given (--tls-ca)"
    elif "Hostname Verification" in text or "hostname" in text.lower():
        cause = "the server's certificate does not name this address (set --tls-server-name)"
    elif "WRONG_VERSION_NUMBER" in text or ("handshake" in text.lower() and "plaintext" in text.lower()):
        cause = "TLS handshake failed: the server speaks plaintext (drop --tls-ca)"
    elif "Connection refused" in text:
        cause = "connection refused: nothing listens there"
    elif "Socket closed" in text or "Connection reset" in text:
        cause = (
            "the server closed the TLS handshake: it may require a client certificate signed by its "
            "CA (--tls-cert/--tls-key)"
            if tls
            else "the server closed the connection: it may require TLS (--tls-ca)"
        )
    elif "handshake" in text.lower():
        cause = "TLS handshake failed"
    else:
        cause = "not reachable"
    detail = text.rsplit("last error:", 1)[-1].strip() if text else "no answer"
    return f"cannot connect to {address}: {cause} [{detail}]"
