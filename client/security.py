"""How a client reaches a server that wants TLS, a client certificate (mTLS) or a bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class Security:
    """Plaintext by default. ``ca_file`` (or ``tls=True``, trusting the system's roots) turns on TLS;
    ``cert_file`` and ``key_file`` present a client certificate; ``token`` is sent as
    ``authorization: Bearer <token>`` on every call (over TLS or, inside a mesh, plaintext)."""

    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )

    def channel(self, address: str) -> grpc.Channel:
        return grpc.secure_channel(address, self.credentials()) if self.uses_tls else grpc.insecure_channel(address)

    def aio_channel(self, address: str) -> grpc.aio.Channel:
        if self.uses_tls:
            return grpc.aio.secure_channel(address, self.credentials())
        return grpc.aio.insecure_channel(address)


PLAINTEXT = Security()
