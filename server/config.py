"""Server settings: flags over ``SYRINX_*`` environment over defaults, validated once at start-up."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine.config import ChunkPolicy, EngineConfig
from .engine.errors import InvalidOptionError
from .scheduler.core import SchedulerConfig
from .telemetry import TelemetryConfig

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class ServerConfig:
    host: str = "[::]"
    port: int = DEFAULT_PORT  # 0 picks a free port (tests)
    engine: EngineConfig = field(default_factory=EngineConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    max_text_chars: int = 10_000
    drain_seconds: float = 20.0  # after SIGTERM, how long in-flight calls may run on
    # A LiveSynthesize session with nothing to speak this long ends (LLM tool calls pause text).
    live_idle_seconds: float = 300.0
    log_level: str = "INFO"
    log_format: str = "json"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidOptionError(f"port must be 0-65535, got {self.port}")
        if self.max_text_chars < 1:
            raise InvalidOptionError(f"max text length must be positive, got {self.max_text_chars}")
        if self.log_format not in ("json", "text"):
            raise InvalidOptionError(f"log format must be json or text, got {self.log_format!r}")
        if self.live_idle_seconds <= 0:
            raise InvalidOptionError(f"live idle limit must be > 0 seconds, got {self.live_idle_seconds}")
        if self.drain_seconds < 0:
            raise InvalidOptionError(f"drain grace must be >= 0 seconds, got {self.drain_seconds}")


# flag name -> (environment variable, type, help)
_SETTINGS = {
    "host": ("SYRINX_HOST", str, "address to listen on"),
    "port": ("SYRINX_PORT", int, f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)"),
    "voices_dir": ("SYRINX_VOICES_DIR", str, "directory of extra Piper voices (NAME.onnx + NAME.onnx.json)"),
    "device": ("SYRINX_DEVICE", str, "cpu, cuda or cuda:N"),
    "dtype": (
        "SYRINX_DTYPE",
        str,
        "float32; bfloat16 (CUDA, or CPUs with AVX512-BF16/AMX) or float16 (CUDA) for the decoder",
    ),
    "threads": ("SYRINX_THREADS", int, "CPU inference threads (0 = one per core)"),
    "cuda_graphs": (
        "SYRINX_CUDA_GRAPHS",
        int,
        "CUDA: 1 (default) replays single-item steps as CUDA graphs, 0 runs them eagerly",
    ),
    "max_text_chars": ("SYRINX_MAX_TEXT_CHARS", int, "longest text accepted"),
    "max_streams": ("SYRINX_MAX_STREAMS", int, "concurrent synthesis calls before RESOURCE_EXHAUSTED"),
    "max_waiting_streams": (
        "SYRINX_MAX_WAITING_STREAMS",
        int,
        "calls waiting for their first audio before RESOURCE_EXHAUSTED",
    ),
    "max_encode_batch": (
        "SYRINX_MAX_ENCODE_BATCH",
        int,
        "sentences batched into one engine call (CPU default 1: bit-exact streams)",
    ),
    "max_decode_batch": (
        "SYRINX_MAX_DECODE_BATCH",
        int,
        "decode windows batched into one engine call (CPU default 1: bit-exact streams)",
    ),
    "max_step_frames": ("SYRINX_MAX_STEP_FRAMES", int, "latent frames decoded per scheduler step"),
    "max_ahead_seconds": ("SYRINX_MAX_AHEAD_SECONDS", float, "audio a stream may have ready beyond real time"),
    "drain_seconds": ("SYRINX_DRAIN_SECONDS", float, "grace for in-flight calls after SIGTERM"),
    "live_idle_seconds": (
        "SYRINX_LIVE_IDLE_SECONDS",
        float,
        "a LiveSynthesize session with nothing to speak this long ends with DEADLINE_EXCEEDED (default 300)",
    ),
    "first_chunk_frames": ("SYRINX_FIRST_CHUNK_FRAMES", int, "size of a sentence's first audio chunk, in frames"),
    "log_level": ("SYRINX_LOG_LEVEL", str, "DEBUG, INFO, WARNING or ERROR"),
    "log_format": ("SYRINX_LOG_FORMAT", str, "json (one object per line, the default) or text"),
    "log_text": ("SYRINX_LOG_TEXT", int, "1: put request texts in the request log lines (default 0: never)"),
    "metrics_port": (
        "SYRINX_METRICS_PORT",
        int,
        "Prometheus /metrics port (default 9464; 0 picks one; -1 serves none)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, (env, kind, help_text) in _SETTINGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"{help_text} [env {env}]")
    parser.add_argument("--no-default-voice", action="store_true", help="do not load the bundled voice")


def config_from(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerConfig:
    """Build the config from parsed flags, falling back to ``environ`` and then defaults."""
    values = {}
    for name, (env, kind, _) in _SETTINGS.items():
        value = getattr(args, name, None)
        if value is None and env in environ:
            try:
                value = kind(environ[env])
            except ValueError:
                raise InvalidOptionError(f"{env}={environ[env]!r} is not a valid {kind.__name__}") from None
        if value is not None:
            values[name] = value
    if "cuda_graphs" in values:
        values["cuda_graphs"] = bool(values["cuda_graphs"])
    engine_keys = {"device", "dtype", "threads", "cuda_graphs"}
    scheduler_keys = {
        "max_streams",
        "max_waiting_streams",
        "max_encode_batch",
        "max_decode_batch",
        "max_step_frames",
        "max_ahead_seconds",
    }
    scheduler = {k: values.pop(k) for k in list(values) if k in scheduler_keys}
    engine = EngineConfig(
        **{k: values.pop(k) for k in list(values) if k in engine_keys},
        chunks=ChunkPolicy(first_frames=values.pop("first_chunk_frames", ChunkPolicy().first_frames)),
        voices_dir=Path(values.pop("voices_dir")) if "voices_dir" in values else None,
        default_voice=not getattr(args, "no_default_voice", False),
    )
    telemetry: dict[str, Any] = {}
    if "metrics_port" in values:
        port = values.pop("metrics_port")
        telemetry["metrics_port"] = None if port == -1 else port
    if "log_text" in values:
        telemetry["log_text"] = bool(values.pop("log_text"))
    return ServerConfig(
        engine=engine,
        scheduler=scheduler_defaults(engine.device, **scheduler),
        telemetry=TelemetryConfig(**telemetry),
        **values,
    )


# A GPU batches far more streams per step than two CPU cores (docs/scheduler.md).
GPU_SCHEDULER_LIMITS = dict(
    max_streams=512, max_waiting_streams=128, max_encode_batch=64, max_decode_batch=128, max_step_frames=16384
)


def scheduler_defaults(device: str, **overrides) -> SchedulerConfig:
    """Scheduler limits for ``device``: the CPU's defaults, or ``GPU_SCHEDULER_LIMITS`` on CUDA."""
    if device.startswith("cuda"):
        overrides = {**GPU_SCHEDULER_LIMITS, **overrides}
    return SchedulerConfig(**overrides)


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="syrinx serve", description="Serve Syrinx over gRPC.")
    add_arguments(parser)
    return config_from(parser.parse_args(list(argv)), environ)
