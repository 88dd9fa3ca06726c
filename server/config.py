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
DEFAULT_LOUDNESS_LUFS = -20.0  # where piper-tts's normalized output of the bundled voice lands
MIN_LOUDNESS_LUFS, MAX_LOUDNESS_LUFS = -50.0, -5.0


@dataclass(frozen=True)
class TlsConfig:
    """TLS on the gRPC port (PEM files); with ``client_ca_file``, mTLS: clients need a certificate it signed."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class AuthConfig:
    """Bearer tokens (docs/security.md): every RPC but health needs one when ``tokens_file`` is set."""

    tokens_file: Path | None = None
    max_streams_per_token: int = 0  # 0: no cap beyond the server's own; a token's line may set its own
    reflection_needs_token: bool = True

    def __post_init__(self) -> None:
        if self.max_streams_per_token < 0:
            raise InvalidOptionError(f"max streams per token must be >= 0, got {self.max_streams_per_token}")


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
    tls: TlsConfig | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    # A plaintext port that serves grpc.health.v1 only: the kubelet's gRPC probe cannot do TLS.
    health_port: int | None = None
    # Every voice is calibrated to this integrated loudness (BS.1770); None: the models' own level.
    loudness_target_lufs: float | None = DEFAULT_LOUDNESS_LUFS
    # Pronunciation lexicon files (server/lexicons.py); None: the voices directory, if any.
    lexicons_dir: Path | None = None

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
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise InvalidOptionError(f"health port must be 0-65535 (or -1 for none), got {self.health_port}")
        target = self.loudness_target_lufs
        if target is not None and not MIN_LOUDNESS_LUFS <= target <= MAX_LOUDNESS_LUFS:
            raise InvalidOptionError(
                f"--loudness-target must be {MIN_LOUDNESS_LUFS:g} to {MAX_LOUDNESS_LUFS:g} LUFS, or none; got {target:g}"
            )


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
    "engine_priority": (
        "SYRINX_ENGINE_PRIORITY",
        str,
        "idle (default): the engine's threads give a core at once to the server's threads that answer calls; "
        "normal: the kernel shares cores fairly",
    ),
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
    "tls_cert_file": ("SYRINX_TLS_CERT_FILE", str, "PEM certificate chain: serve TLS (reloaded when it changes)"),
    "tls_key_file": ("SYRINX_TLS_KEY_FILE", str, "PEM private key of --tls-cert-file"),
    "tls_client_ca_file": (
        "SYRINX_TLS_CLIENT_CA_FILE",
        str,
        "PEM CA certificate(s): mTLS, clients must present a certificate one of them signed",
    ),
    "health_port": (
        "SYRINX_HEALTH_PORT",
        int,
        "plaintext port serving only grpc.health.v1, for probes that cannot do TLS (default -1: none; 0 picks one)",
    ),
    "lexicons_dir": (
        "SYRINX_LEXICONS_DIR",
        str,
        "directory of pronunciation lexicons (LANG.lexicon, VOICE.lexicon; reloaded on change; default: --voices-dir)",
    ),
    "loudness_target": (
        "SYRINX_LOUDNESS_TARGET",
        str,
        f"integrated loudness (LUFS) every voice is calibrated to (default {DEFAULT_LOUDNESS_LUFS:g}), "
        "or none for the models' own level",
    ),
    "auth_tokens_file": (
        "SYRINX_AUTH_TOKENS_FILE",
        str,
        "bearer tokens (or sha256: hashes), one per line: every RPC but health needs one (reloaded on change)",
    ),
    "max_streams_per_token": (
        "SYRINX_MAX_STREAMS_PER_TOKEN",
        int,
        "concurrent calls one token may hold (default 0: no cap beyond --max-streams)",
    ),
    "reflection_needs_token": (
        "SYRINX_REFLECTION_NEEDS_TOKEN",
        int,
        "with --auth-tokens-file: 1 (default) reflection needs a token too, 0 leaves it open",
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
    if "engine_priority" in values:
        values["priority"] = values.pop("engine_priority")
    engine_keys = {"device", "dtype", "threads", "priority", "cuda_graphs"}
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
    if "health_port" in values and values["health_port"] == -1:
        values["health_port"] = None
    if "lexicons_dir" in values:
        values["lexicons_dir"] = Path(values["lexicons_dir"])
    if "loudness_target" in values:
        values["loudness_target_lufs"] = _loudness_target(values.pop("loudness_target"))
    tls, auth = _tls_config(values), _auth_config(values)  # each takes its own settings out of ``values``
    return ServerConfig(
        engine=engine,
        scheduler=scheduler_defaults(engine.device, **scheduler),
        telemetry=TelemetryConfig(**telemetry),
        tls=tls,
        auth=auth,
        **values,
    )


def _loudness_target(value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidOptionError(f"--loudness-target must be a number of LUFS or none, got {value!r}") from None


def _tls_config(values: dict[str, Any]) -> TlsConfig | None:
    cert, key = values.pop("tls_cert_file", None), values.pop("tls_key_file", None)
    client_ca = values.pop("tls_client_ca_file", None)
    if (cert is None) != (key is None):
        raise InvalidOptionError("--tls-cert-file and --tls-key-file go together: give both, or neither")
    if cert is None:
        if client_ca is not None:
            raise InvalidOptionError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (mTLS is TLS)")
        return None
    return TlsConfig(Path(cert), Path(key), Path(client_ca) if client_ca else None)


def _auth_config(values: dict[str, Any]) -> AuthConfig:
    tokens_file = values.pop("auth_tokens_file", None)
    settings: dict[str, Any] = {}
    if "max_streams_per_token" in values:
        settings["max_streams_per_token"] = values.pop("max_streams_per_token")
    if "reflection_needs_token" in values:
        settings["reflection_needs_token"] = bool(values.pop("reflection_needs_token"))
    return AuthConfig(tokens_file=Path(tokens_file) if tokens_file else None, **settings)


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
