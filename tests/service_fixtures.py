"""A real Syrinx gRPC server on a loopback port, run on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

import grpc

from syrinx.server.app import RunningServer, create_server, make_ready
from syrinx.server.config import ServerConfig
from syrinx.server.engine import VoiceCatalog
from syrinx.server.service import SynthesisService
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc


class ServerThread:
    def __init__(self, config: ServerConfig, telemetry=None, load_catalog=None, engine=None) -> None:
        """``load_catalog`` (``EngineConfig -> VoiceCatalog``) replaces the bundled and mounted voices,
        ``engine`` the configured engine."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-server")
        self._thread.start()
        service = None
        if load_catalog is not None or engine is not None:
            service = SynthesisService(config, telemetry, load_catalog or VoiceCatalog.load, engine)
        self.running: RunningServer = self.call(create_server(config, service, telemetry))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.running.port}")
        self.stub = pb_grpc.SynthesizerStub(self.channel)

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call_soon(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Start ``coroutine`` on the server's loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def make_ready(self) -> None:
        self.call(make_ready(self.running))

    def stop(self) -> None:
        self.channel.close()
        self.call(self.running.drain(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def counted_decodes(service: SynthesisService):
    """Count the engine's decode calls while the block runs: ``counts["decode"]``."""
    engine = service._engine
    counts = {"decode": 0}
    original = engine.decode

    def counting(windows):
        counts["decode"] += 1
        return original(windows)

    engine.decode = counting
    try:
        yield counts
    finally:
        engine.decode = original
