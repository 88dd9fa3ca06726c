"""TLS, mTLS, certificate rotation, the health-only port and bearer tokens, on a real server.

Certificates are made by trustme when the tests run: no private key is in the repository.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from service_fixtures import ServerThread
from test_telemetry import EndedSpans

from syrinx.client import Security, SyrinxClient
from syrinx.riva import riva_audio_pb2, riva_tts_pb2, riva_tts_pb2_grpc
from syrinx.server.config import AuthConfig, ServerConfig, TlsConfig
from syrinx.server.scheduler import SchedulerConfig
from syrinx.server.telemetry import Telemetry, TelemetryConfig
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

TEXT = "Your table is ready."
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog while the band plays on."] * 3)
TOKEN_A = "token-a-0123456789abcdef"  # raw in the file, at most one call at a time
TOKEN_B = "token-b-fedcba9876543210"  # its hash in the file, no cap of its own
WRONG = "token-x-not-in-the-file-000"


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA
    dir: Path

    def server_files(self, ca: trustme.CA, name: str) -> tuple[Path, Path]:
        cert = ca.issue_cert("localhost", "127.0.0.1")
        return self._write(cert, name)

    def client_files(self, ca: trustme.CA, name: str) -> tuple[Path, Path]:
        return self._write(ca.issue_cert("bot.example.org"), name)

    def ca_file(self, ca: trustme.CA) -> str:
        path = self.dir / f"ca-{id(ca)}.pem"
        ca.cert_pem.write_to_path(str(path))
        return str(path)

    def _write(self, cert: trustme.LeafCert, name: str) -> tuple[Path, Path]:
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(trustme.CA(), trustme.CA(), tmp_path_factory.mktemp("pki"))


def write_tokens(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(["# test tokens", *lines, ""]))
    return path


@pytest.fixture(scope="module")
def secured(pki, tmp_path_factory):
    """TLS, tokens (TOKEN_A capped at one call), the health-only port, spans collected."""
    cert, key = pki.server_files(pki.ca, "secured")
    tokens = write_tokens(
        tmp_path_factory.mktemp("tokens") / "tokens",
        f"{TOKEN_A} max_streams=1",
        "sha256:" + hashlib.sha256(TOKEN_B.encode()).hexdigest(),
    )
    spans = EndedSpans()
    telemetry = Telemetry.create(
        TelemetryConfig(metrics_port=None), {}, span_processors=[spans], metric_readers=[InMemoryMetricReader()]
    )
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        tls=TlsConfig(cert, key),
        auth=AuthConfig(tokens_file=tokens),
        health_port=0,
        scheduler=SchedulerConfig(max_streams=8),
    )
    server = ServerThread(config, telemetry)
    server.make_ready()
    server.spans = spans
    yield server
    server.stop()


def tls_channel(pki: Pki, port: int, ca: trustme.CA | None = None, client: tuple[Path, Path] | None = None):
    security = Security(
        ca_file=pki.ca_file(ca or pki.ca),
        cert_file=str(client[0]) if client else None,
        key_file=str(client[1]) if client else None,
    )
    return security.channel(f"localhost:{port}")


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


# Every RPC but health, each run to its end: None when it succeeded, else the error.
def _synthesize(channel, metadata):
    pb_grpc.SynthesizerStub(channel).Synthesize(pb.SynthesizeRequest(text=TEXT, seed=1), metadata=metadata)


def _stream(channel, metadata):
    list(pb_grpc.SynthesizerStub(channel).StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT), metadata=metadata))


def _voices(channel, metadata):
    pb_grpc.SynthesizerStub(channel).ListVoices(pb.ListVoicesRequest(), metadata=metadata)


def _live(channel, metadata):
    requests = [
        pb.LiveSynthesizeRequest(settings=pb.LiveSettings()),
        pb.LiveSynthesizeRequest(utterance_id="u", text=TEXT, end_of_utterance=True),
    ]
    list(pb_grpc.SynthesizerStub(channel).LiveSynthesize(iter(requests), metadata=metadata))


def _riva_request(text: str = TEXT) -> riva_tts_pb2.SynthesizeSpeechRequest:
    return riva_tts_pb2.SynthesizeSpeechRequest(text=text, language_code="en-US", encoding=riva_audio_pb2.LINEAR_PCM)


def _riva_synthesize(channel, metadata):
    riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel).Synthesize(_riva_request(), metadata=metadata)


def _riva_online(channel, metadata):
    list(
        riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel).SynthesizeOnline(iter([_riva_request()]), metadata=metadata)
    )


def _riva_config(channel, metadata):
    riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel).GetRivaSynthesisConfig(
        riva_tts_pb2.RivaSynthesisConfigRequest(), metadata=metadata
    )


def _reflection(channel, metadata):
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request]), metadata=metadata))


RPCS = [_synthesize, _stream, _voices, _live, _riva_synthesize, _riva_online, _riva_config, _reflection]


def outcome(call, channel, metadata) -> tuple[grpc.StatusCode, str]:
    try:
        call(channel, metadata)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


# -- TLS ------------------------------------------------------------------------------


def test_tls_with_the_servers_ca_works_and_a_plaintext_or_untrusting_client_is_refused(secured, pki):
    port = secured.running.port
    client = SyrinxClient(f"localhost:{port}", security=Security(ca_file=pki.ca_file(pki.ca), token=TOKEN_B))
    with client:
        reply = client.synthesize(TEXT, seed=1)
    assert reply.num_samples > 10_000
    code, _ = outcome(_synthesize, grpc.insecure_channel(f"127.0.0.1:{port}"), bearer(TOKEN_B))
    assert code == grpc.StatusCode.UNAVAILABLE
    code, _ = outcome(_synthesize, tls_channel(pki, port, ca=pki.other_ca), bearer(TOKEN_B))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_the_health_port_is_plaintext_and_serves_health_only(secured):
    channel = grpc.insecure_channel(f"127.0.0.1:{secured.running.health_port}")
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="syrinx.v1.Synthesizer"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    code, _ = outcome(_synthesize, channel, bearer(TOKEN_B))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_mtls_needs_a_client_certificate_signed_by_the_configured_ca(pki):
    cert, key = pki.server_files(pki.ca, "mtls")
    config = ServerConfig(host="127.0.0.1", port=0, tls=TlsConfig(cert, key, Path(pki.ca_file(pki.ca))))
    server = ServerThread(config)
    try:
        server.make_ready()
        port = server.running.port
        assert outcome(_voices, tls_channel(pki, port), ())[0] == grpc.StatusCode.UNAVAILABLE
        rogue = pki.client_files(pki.other_ca, "rogue-client")
        assert outcome(_voices, tls_channel(pki, port, client=rogue), ())[0] == grpc.StatusCode.UNAVAILABLE
        client = pki.client_files(pki.ca, "client")
        assert outcome(_synthesize, tls_channel(pki, port, client=client), ()) == (grpc.StatusCode.OK, "")
    finally:
        server.stop()


def test_replaced_certificate_files_reach_new_connections_while_a_stream_runs_on(pki, tmp_path):
    cert, key = pki.server_files(pki.ca, "rotating")
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0, tls=TlsConfig(cert, key)))
    try:
        server.make_ready()
        port = server.running.port
        old_channel = tls_channel(pki, port)
        request = pb.StreamSynthesizeRequest(text=LONG_TEXT, seed=3)
        stream = pb_grpc.SynthesizerStub(old_channel).StreamSynthesize(request)
        audio = [next(stream).audio]

        # As the kubelet does with a Secret: new files written aside, then moved over the old ones.
        new_cert, new_key = pki.server_files(pki.other_ca, "rotated")
        os.replace(new_key, key)
        os.replace(new_cert, cert)

        assert outcome(_voices, tls_channel(pki, port, ca=pki.other_ca), ()) == (grpc.StatusCode.OK, "")
        assert outcome(_voices, tls_channel(pki, port, ca=pki.ca), ())[0] == grpc.StatusCode.UNAVAILABLE
        assert server.running.tls.files.reloads == 1

        audio += [response.audio for response in stream]  # the stream opened before the rotation ends whole
        reference = pb_grpc.SynthesizerStub(tls_channel(pki, port, ca=pki.other_ca)).Synthesize(
            pb.SynthesizeRequest(text=LONG_TEXT, seed=3)
        )
        assert b"".join(audio) == reference.audio
    finally:
        server.stop()


# -- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("call", RPCS, ids=lambda c: c.__name__.lstrip("_"))
def test_every_rpc_but_health_needs_a_valid_token(secured, pki, call):
    channel = tls_channel(pki, secured.running.port)
    code, message = outcome(call, channel, ())
    assert code == grpc.StatusCode.UNAUTHENTICATED and "authorization: Bearer <token>" in message
    code, message = outcome(call, channel, bearer(WRONG))
    assert (code, message) == (grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")
    assert outcome(call, channel, bearer(TOKEN_B)) == (grpc.StatusCode.OK, "")


def test_health_needs_no_token_on_the_main_port(secured, pki):
    reply = health_pb2_grpc.HealthStub(tls_channel(pki, secured.running.port)).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_valid_token_among_placeholders_is_accepted(secured, pki):
    """Pipecat's NVIDIA services send ``authorization`` more than once; one valid value is enough."""
    metadata = (("authorization", "Bearer None"), ("authorization", "Basic xyz"), *bearer(TOKEN_A))
    assert outcome(_voices, tls_channel(pki, secured.running.port), metadata) == (grpc.StatusCode.OK, "")


def test_a_token_holds_at_most_its_limit_of_calls_and_others_are_not_affected(secured, pki):
    channel = tls_channel(pki, secured.running.port)
    stub = pb_grpc.SynthesizerStub(channel)
    first = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=LONG_TEXT), metadata=bearer(TOKEN_A))
    next(first)
    code, message = outcome(_stream, channel, bearer(TOKEN_A))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message == "this token already holds its limit of 1 concurrent calls; retry when one ends"
    assert outcome(_voices, channel, bearer(TOKEN_A)) == (grpc.StatusCode.OK, "")  # reads no slot
    assert outcome(_stream, channel, bearer(TOKEN_B)) == (grpc.StatusCode.OK, "")
    first.cancel()
    secured.call(_until_no_slots(secured))
    assert outcome(_stream, channel, bearer(TOKEN_A)) == (grpc.StatusCode.OK, "")


async def _until_no_slots(server) -> None:
    from test_service import _until

    await _until(lambda: not server.running.auth.slots.held)


def test_tokens_never_reach_logs_spans_or_messages(secured, pki, caplog):
    channel = tls_channel(pki, secured.running.port)
    spans_before = len(secured.spans.spans)
    with caplog.at_level(logging.DEBUG):
        details = [outcome(call, channel, bearer(token))[1] for call in RPCS for token in (TOKEN_A, TOKEN_B, WRONG)]
        outcome(_synthesize, channel, bearer(TOKEN_B) + (("x", "y"),))
        secured.spans.wait(spans_before + 2 * 7)  # every syrinx/Riva call that got past the token check
    text = "\n".join(
        [r.getMessage() for r in caplog.records]
        + details
        + [repr(dict(span.attributes or {})) + repr(span.events) for span in secured.spans.spans]
    )
    assert "Bearer" not in text
    for secret in (TOKEN_A, TOKEN_B, WRONG, hashlib.sha256(TOKEN_B.encode()).hexdigest()):
        assert secret not in text


def test_the_tokens_file_is_reloaded_when_it_changes(pki, tmp_path):
    tokens = write_tokens(tmp_path / "tokens", TOKEN_A)
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0, auth=AuthConfig(tokens_file=tokens)))
    try:
        server.make_ready()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.running.port}")
        assert outcome(_voices, channel, bearer(TOKEN_A)) == (grpc.StatusCode.OK, "")
        replacement = write_tokens(tmp_path / "tokens.new", TOKEN_B)
        os.replace(replacement, tokens)
        assert outcome(_voices, channel, bearer(TOKEN_A))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert outcome(_voices, channel, bearer(TOKEN_B)) == (grpc.StatusCode.OK, "")
        tokens.write_text("short\n")  # a broken file: the last good tokens stay in force
        assert outcome(_voices, channel, bearer(TOKEN_B)) == (grpc.StatusCode.OK, "")
    finally:
        server.stop()


def test_reflection_can_be_left_open(tmp_path):
    tokens = write_tokens(tmp_path / "tokens", TOKEN_A)
    auth = AuthConfig(tokens_file=tokens, reflection_needs_token=False)
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0, auth=auth))
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.running.port}")
        assert outcome(_reflection, channel, ()) == (grpc.StatusCode.OK, "")
        assert outcome(_voices, channel, ())[0] == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop()


def test_the_cli_speaks_tls_with_a_token_from_a_file_or_the_environment(secured, pki, tmp_path):
    import subprocess
    import sys

    syrinx = Path(sys.executable).parent / "syrinx"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN_B + "\n")
    base = [str(syrinx), "--address", f"localhost:{secured.running.port}", "--tls-ca-file", pki.ca_file(pki.ca)]
    env = {k: v for k, v in os.environ.items() if k != "SYRINX_TOKEN"}

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, env={**env, **extra_env})

    refused = run("voices")
    assert refused.returncode == 2 and "UNAUTHENTICATED" in refused.stderr
    by_file = run("--token-file", str(token_file), "voices")
    assert by_file.returncode == 0 and "en_US-joe-medium (default)" in by_file.stdout
    by_env = run("say", "Hi there.", "-o", str(tmp_path / "hi.wav"), SYRINX_TOKEN=TOKEN_B)
    assert by_env.returncode == 0, by_env.stderr
    assert run("health").stdout.strip() == "SERVING"  # health needs no token
