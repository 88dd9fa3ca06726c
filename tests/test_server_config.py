"""Server config: flags over SYRINX_* environment over defaults, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from syrinx.server.config import DEFAULT_PORT, load_config
from syrinx.server.engine import Engine, EngineConfig, InvalidOptionError
from syrinx.server.engine.errors import StartupError


def test_defaults():
    config = load_config([], {})
    assert config.port == DEFAULT_PORT == 50051
    assert config.engine.device == "cpu" and config.engine.voices_dir is None and config.engine.default_voice
    assert config.engine.priority == "idle"


def test_environment_then_flags():
    env = {
        "SYRINX_PORT": "6000",
        "SYRINX_MAX_STREAMS": "3",
        "SYRINX_VOICES_DIR": "/voices",
        "SYRINX_DRAIN_SECONDS": "7.5",
    }
    config = load_config([], env)
    assert (config.port, config.scheduler.max_streams, config.drain_seconds) == (6000, 3, 7.5)
    assert config.engine.voices_dir == Path("/voices")
    config = load_config(["--port", "7000", "--first-chunk-frames", "20", "--no-default-voice"], env)
    assert config.port == 7000 and config.scheduler.max_streams == 3  # the flag wins, the rest still comes from env
    assert config.engine.chunks.first_frames == 20 and not config.engine.default_voice
    assert load_config([], {"SYRINX_ENGINE_PRIORITY": "normal"}).engine.priority == "normal"
    assert load_config(["--engine-priority", "idle"], {"SYRINX_ENGINE_PRIORITY": "normal"}).engine.priority == "idle"


@pytest.mark.parametrize(
    "argv, env, words",
    [
        ([], {"SYRINX_PORT": "http"}, "SYRINX_PORT"),
        (["--port", "70000"], {}, "port"),
        (["--max-streams", "0"], {}, "max_streams"),
        (["--max-streams", "4", "--max-waiting-streams", "5"], {}, "max_waiting_streams"),
        (["--max-ahead-seconds", "0"], {}, "max_ahead_seconds"),
        (["--device", "gpu"], {}, "device"),
        (["--dtype", "float16"], {}, "CUDA"),
        (["--drain-seconds", "-1"], {}, "drain"),
        (["--tls-key-file", "k.pem"], {}, "go together"),
        ([], {"SYRINX_TLS_CERT_FILE": "c.pem"}, "go together"),
        (["--tls-client-ca-file", "ca.pem"], {}, "mTLS is TLS"),
        (["--max-streams-per-token", "-1"], {}, "per token"),
        (["--health-port", "70000"], {}, "health port"),
        (["--engine-priority", "high"], {}, "engine priority must be one of idle, normal"),
    ],
)
def test_invalid_settings_are_rejected_with_a_reason(argv, env, words):
    with pytest.raises(InvalidOptionError, match=words):
        load_config(argv, env)


def test_security_settings_from_flags_and_environment():
    env = {
        "SYRINX_TLS_CERT_FILE": "/etc/tls/tls.crt",
        "SYRINX_TLS_KEY_FILE": "/etc/tls/tls.key",
        "SYRINX_AUTH_TOKENS_FILE": "/etc/tokens/tokens",
        "SYRINX_HEALTH_PORT": "8081",
    }
    config = load_config(["--tls-client-ca-file", "/etc/tls/ca.crt", "--reflection-needs-token", "0"], env)
    assert config.tls is not None and config.tls.cert_file == Path("/etc/tls/tls.crt")
    assert config.tls.client_ca_file == Path("/etc/tls/ca.crt")
    assert config.auth.tokens_file == Path("/etc/tokens/tokens") and not config.auth.reflection_needs_token
    assert config.health_port == 8081
    plain = load_config(["--health-port", "-1"], {})
    assert plain.tls is None and plain.auth.tokens_file is None and plain.health_port is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_cuda_without_a_device_is_one_clear_start_up_error():
    with pytest.raises(StartupError, match=r"--device cuda: no CUDA device is available .*use --device cpu"):
        Engine(EngineConfig(device="cuda"))
