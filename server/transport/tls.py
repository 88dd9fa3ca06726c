"""TLS and mTLS server credentials from PEM files, re-read when the files change.

gRPC asks :func:`_fetcher`'s callback for the certificate at every new TLS handshake; it
returns a new configuration only when the files changed (a ``stat`` each), so a rotated
certificate reaches new connections at once, while connections already open keep the session
they negotiated and their streams run on undisturbed.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from ..config import TlsConfig
from ..security.watched_file import CredentialFileError, WatchedFiles


@dataclass(frozen=True)
class _Pems:
    key: bytes
    chain: bytes
    client_ca: bytes | None


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CredentialFileError(f"{flag}: cannot read {path}: {error.strerror}") from None


def _load_pems(config: TlsConfig) -> _Pems:
    """Read the files and check them as OpenSSL will: the key must match the certificate."""
    chain = _read(config.cert_file, "--tls-cert-file")
    key = _read(config.key_file, "--tls-key-file")
    client_ca = _read(config.client_ca_file, "--tls-client-ca-file") if config.client_ca_file else None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except (ssl.SSLError, ValueError) as error:
        raise CredentialFileError(
            f"--tls-cert-file/--tls-key-file: {config.cert_file} and {config.key_file} are not a PEM certificate "
            f"and its private key ({error.reason if isinstance(error, ssl.SSLError) else error})"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cadata=client_ca.decode("ascii"))
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            raise CredentialFileError(
                f"--tls-client-ca-file: {config.client_ca_file} holds no PEM CA certificate"
            ) from None
    return _Pems(key, chain, client_ca)


def _configuration(pems: _Pems) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(pems.key, pems.chain)], root_certificates=pems.client_ca)


class ReloadingCredentials:
    """The server's TLS credentials; :attr:`files` counts the reloads (tests, logs)."""

    def __init__(self, config: TlsConfig) -> None:
        paths = [config.cert_file, config.key_file, *([config.client_ca_file] if config.client_ca_file else [])]
        self.files = WatchedFiles("TLS certificate", paths, lambda _paths: _load_pems(config))
        self._served = self.files.current()
        self._lock = threading.Lock()  # gRPC may ask from several of its threads at once
        self.credentials = grpc.dynamic_ssl_server_credentials(
            _configuration(self._served),
            self._fetch,  # type: ignore[arg-type]  # gRPC documents None as "keep the current one"; the stub omits it
            require_client_authentication=config.client_ca_file is not None,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake question: a new configuration, or None to keep the one it has."""
        with self._lock:
            pems = self.files.current()
            if pems is self._served:
                return None
            self._served = pems
            return _configuration(pems)
