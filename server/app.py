"""Composition root: build the service and the gRPC server from one config, run, drain on signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from syrinx.riva import riva_tts_pb2 as rtts
from syrinx.v1 import synthesizer_pb2 as pb

from .config import ServerConfig, load_config
from .engine import Engine, EngineConfig, VoiceCatalog
from .engine.errors import StartupError, SyrinxError
from .logs import configure_logging
from .security.watched_file import CredentialFileError
from .service import SynthesisService
from .telemetry import Telemetry, TelemetryConfig, serving_telemetry
from .transport.auth import TokenAuthInterceptor
from .transport.handlers import add_servicer
from .transport.riva import RIVA_SERVICE_NAME, RivaServicer
from .transport.servicer import SERVICE_NAME, SynthesizerServicer
from .transport.tls import ReloadingCredentials

log = logging.getLogger("syrinx.server")

OVERALL = ""  # the health protocol's name for the server as a whole
GIL_SWITCH_INTERVAL_S = 0.0005


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service: SynthesisService
    health_server: grpc.aio.Server | None = None  # the plaintext, health-only port (--health-port)
    health_port: int | None = None
    tls: ReloadingCredentials | None = None
    auth: TokenAuthInterceptor | None = None

    async def mark(self, status: int) -> None:
        for name in (OVERALL, SERVICE_NAME, RIVA_SERVICE_NAME):
            await self.health.set(name, status)

    async def drain(self, grace: float) -> None:
        """Stop taking calls, let those in flight finish within ``grace`` seconds, then stop."""
        self.service.drain()
        await self.health.enter_graceful_shutdown()  # every name NOT_SERVING, watchers told
        await self.server.stop(grace)
        if self.health_server is not None:  # probes see NOT_SERVING until the very end
            await self.health_server.stop(0)
        await self.service.close()


async def create_server(
    config: ServerConfig, service: SynthesisService | None = None, telemetry: Telemetry | None = None
) -> RunningServer:
    """Bind and start the server (NOT_SERVING until :func:`make_ready`); port 0 picks a free port.

    Without ``telemetry`` its spans and metrics are made and dropped (no exporter, no endpoint).
    """
    telemetry = telemetry or Telemetry.create(TelemetryConfig(metrics_port=None), {})
    # Credentials first: a bad file fails start-up, naming its flag, before anything listens.
    try:
        tls = ReloadingCredentials(config.tls) if config.tls is not None else None  # its errors name their flag
    except CredentialFileError as error:
        raise StartupError(str(error)) from None
    try:
        auth = TokenAuthInterceptor(config.auth) if config.auth.tokens_file is not None else None
    except CredentialFileError as error:
        raise StartupError(f"--auth-tokens-file: {error}") from None
    service = service or SynthesisService(config, telemetry)
    # No SO_REUSEPORT: a second server on a port already in use must fail, not share it silently.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=[auth] if auth else None)
    add_servicer(server, SynthesizerServicer(service, telemetry), pb.DESCRIPTOR.services_by_name["Synthesizer"])
    # NVIDIA Riva's TTS protocol, a second adapter over the same service (docs/riva.md).
    add_servicer(server, RivaServicer(service, telemetry), rtts.DESCRIPTOR.services_by_name["RivaSpeechSynthesis"])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            RIVA_SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{config.host}:{config.port}"
    port = _bind(
        lambda: server.add_secure_port(address, tls.credentials) if tls else server.add_insecure_port(address),
        config.host,
        config.port,
        "--port / SYRINX_PORT",
    )
    health_server, health_port = None, None
    if config.health_port is not None:
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = _bind(
            lambda: health_server.add_insecure_port(f"{config.host}:{config.health_port}"),
            config.host,
            config.health_port,
            "--health-port / SYRINX_HEALTH_PORT",
        )
        await health_server.start()
    await server.start()
    running = RunningServer(server, port, health_servicer, service, health_server, health_port, tls, auth)
    await running.mark(health_pb2.HealthCheckResponse.NOT_SERVING)
    return running


def _bind(add_port: Callable[[], int], host: str, port: int, flag: str) -> int:
    try:
        return add_port()
    except RuntimeError:  # grpc says only "Failed to bind"; the port is taken or not ours to bind
        raise StartupError(
            f"cannot listen on {host} port {port} (in use, or not allowed); choose another with {flag}"
        ) from None


async def make_ready(running: RunningServer) -> None:
    """Load and warm up the voices, freeze what start-up made, then report SERVING."""
    await running.service.start()
    freeze_startup_objects()
    await running.mark(health_pb2.HealthCheckResponse.SERVING)


def freeze_startup_objects() -> None:
    """Move every object start-up made (torch's modules, the voices, protobuf descriptors: about
    190,000) out of the cyclic garbage collector's sight, for good. They live as long as the
    process, yet each full collection walked them all, holding the GIL: 129 ms on our CI
    machine, during which no call was answered and no stream got audio (docs/reliability.md).
    Frozen objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


async def serve(
    config: ServerConfig,
    environ: Mapping[str, str],
    load_catalog: Callable[[EngineConfig], VoiceCatalog] = VoiceCatalog.load,
    engine: Engine | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain; ``load_catalog`` gives the voices (default: bundled + mounted),
    ``engine`` replaces the configured one (benchmarks)."""
    telemetry, endpoint = serving_telemetry(config.telemetry, config.host, environ)
    try:
        return await _serve(config, telemetry, SynthesisService(config, telemetry, load_catalog, engine))
    finally:
        if endpoint is not None:
            endpoint.close()
        telemetry.shutdown()


async def _serve(config: ServerConfig, telemetry: Telemetry, service: SynthesisService) -> int:
    running = await create_server(config, service, telemetry)
    log.info(
        "listening on port %d (%s%s); loading voices",
        running.port,
        "plaintext" if config.tls is None else ("mTLS" if config.tls.client_ca_file else "TLS"),
        ", bearer tokens" if running.auth else "",
    )
    if running.health_port is not None:
        log.info("health (plaintext) on port %d", running.health_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready = asyncio.create_task(make_ready(running))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and ready.exception() is not None:
        log.error("start-up failed: %s", ready.exception())
        await running.drain(0)
        return 1
    if ready.done():
        log.info("serving on port %d", running.port)
        await stopped
    ready.cancel()
    log.info("draining: up to %.0f s for %d call(s) in flight", config.drain_seconds, running.service.active_streams)
    await running.drain(config.drain_seconds)
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
    except SyrinxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    # The event loop answers every call, the engine thread runs Python between its torch kernels
    # (piper's code around espeak-ng, which itself lets go of the GIL: a few ms for a long text).
    # Python hands the GIL over only every switch interval (5 ms by default), so a call that
    # arrives meanwhile waits for it: a shed call's RESOURCE_EXHAUSTED took up to 20 ms at p99
    # in a burst (docs/reliability.md).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        return asyncio.run(serve(config, os.environ))
    except StartupError as exc:
        log.error("start-up failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
