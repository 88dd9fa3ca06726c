"""Server config: flags over SYRINX_* environment over defaults, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from syrinx.server.config import DEFAULT_PORT, load_config
from syrinx.server.engine import InvalidOptionError


def test_defaults():
    config = load_config([], {})
    assert config.port == DEFAULT_PORT == 50051
    assert config.engine.device == "cpu" and config.engine.voices_dir is None and config.engine.default_voice


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
    ],
)
def test_invalid_settings_are_rejected_with_a_reason(argv, env, words):
    with pytest.raises(InvalidOptionError, match=words):
        load_config(argv, env)
