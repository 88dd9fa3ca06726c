"""Synthesis controls (seed, length, noise, speaker) and validation of options and settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NO_NOISE, encode_text

from syrinx.server.engine import ChunkPolicy, EngineConfig, InvalidOptionError, SynthesisOptions

TEXT = "Controls change how this sentence sounds."


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def test_same_seed_same_audio(voice, engine):
    a = engine.synthesize(voice, TEXT, SynthesisOptions(seed=123))
    b = engine.synthesize(voice, TEXT, SynthesisOptions(seed=123))
    assert a.size > 0 and np.abs(a).max() > 0.01
    assert _same(a, b)


def test_different_seeds_different_audio(voice, engine):
    a = engine.synthesize(voice, TEXT, SynthesisOptions(seed=1))
    b = engine.synthesize(voice, TEXT, SynthesisOptions(seed=2))
    assert not (a.shape == b.shape and np.allclose(a, b, atol=1e-3))


def test_no_seed_draws_fresh_noise(voice, engine):
    (a,) = encode_text(engine, voice, TEXT, SynthesisOptions())
    (b,) = encode_text(engine, voice, TEXT, SynthesisOptions())
    assert a.z_p.shape != b.z_p.shape or (a.z_p - b.z_p).abs().max().item() > 1e-3


def test_noise_off_makes_output_independent_of_seed(voice, engine):
    a = engine.synthesize(voice, TEXT, SynthesisOptions(noise_scale=0.0, noise_w=0.0, seed=1))
    b = engine.synthesize(voice, TEXT, SynthesisOptions(noise_scale=0.0, noise_w=0.0, seed=999))
    assert _same(a, b)


def test_noise_w_drives_durations_and_noise_scale_drives_latents(voice, engine):
    # noise_w = 0: durations do not depend on the seed, the latents do.
    (a,) = encode_text(engine, voice, TEXT, SynthesisOptions(noise_w=0.0, seed=1))
    (b,) = encode_text(engine, voice, TEXT, SynthesisOptions(noise_w=0.0, seed=2))
    assert np.array_equal(a.durations, b.durations)
    assert (a.z_p - b.z_p).abs().max().item() > 0.1
    # noise_scale = 0: the latents are the prior means, only durations vary with the seed.
    (c,) = encode_text(engine, voice, TEXT, SynthesisOptions(noise_scale=0.0, seed=1))
    (d,) = encode_text(engine, voice, TEXT, SynthesisOptions(noise_scale=0.0, seed=2))
    assert not np.array_equal(c.durations, d.durations)


def test_length_scale_changes_duration(voice, engine):
    lengths = {}
    for scale in (0.5, 1.0, 1.5):
        (encoded,) = encode_text(
            engine, voice, TEXT, SynthesisOptions(length_scale=scale, noise_scale=0.0, noise_w=0.0)
        )
        lengths[scale] = encoded.num_samples
        assert (
            len(
                engine.synthesize(
                    voice, TEXT, SynthesisOptions(length_scale=scale, noise_scale=0.0, noise_w=0.0, seed=0)
                )
            )
            == encoded.num_samples
        )
    assert lengths[0.5] < lengths[1.0] < lengths[1.5]
    # Durations are rounded up per phoneme, so the ratio is only roughly the scale.
    assert 1.3 < lengths[1.5] / lengths[1.0] < 1.7
    assert 0.4 < lengths[0.5] / lengths[1.0] < 0.7


def test_unset_options_use_voice_defaults(voice, engine):
    defaults = voice.info.defaults
    (request,) = engine.sentence_requests(voice, voice.phonemizer.sentences(TEXT), SynthesisOptions(seed=1))
    assert (request.length_scale, request.noise_scale, request.noise_w) == (
        defaults.length_scale,
        defaults.noise_scale,
        defaults.noise_w,
    )
    explicit = SynthesisOptions(
        length_scale=defaults.length_scale, noise_scale=defaults.noise_scale, noise_w=defaults.noise_w, seed=4
    )
    assert _same(engine.synthesize(voice, TEXT, SynthesisOptions(seed=4)), engine.synthesize(voice, TEXT, explicit))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"length_scale": 0.0}, "length scale"),
        ({"length_scale": 0.09}, "length scale"),
        ({"length_scale": 10.5}, "length scale"),
        ({"length_scale": -1.0}, "length scale"),
        ({"length_scale": math.nan}, "length scale"),
        ({"length_scale": math.inf}, "length scale"),
        ({"noise_scale": -0.01}, "noise_scale"),
        ({"noise_scale": 2.01}, "noise_scale"),
        ({"noise_scale": math.nan}, "noise_scale"),
        ({"noise_w": -1.0}, "noise_w"),
        ({"noise_w": 3.0}, "noise_w"),
        ({"noise_w": math.inf}, "noise_w"),
    ],
)
def test_options_out_of_range_are_rejected(kwargs, named):
    with pytest.raises(InvalidOptionError, match=named):
        SynthesisOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"length_scale": 0.1},
        {"length_scale": 10.0},
        {"noise_scale": 0.0},
        {"noise_scale": 2.0},
        {"noise_w": 0.0},
        {"noise_w": 2.0},
    ],
)
def test_options_at_the_limits_are_accepted(kwargs):
    SynthesisOptions(**kwargs)


@pytest.mark.parametrize("speaker_id", [3, 1, -1])
def test_speaker_id_on_single_speaker_voice_is_rejected(voice, engine, speaker_id):
    assert voice.info.num_speakers == 1
    options = SynthesisOptions(speaker_id=speaker_id, seed=0)
    with pytest.raises(InvalidOptionError, match="single speaker"):
        engine.sentence_requests(voice, voice.phonemizer.sentences(TEXT), options)
    with pytest.raises(InvalidOptionError):
        engine.synthesize(voice, TEXT, options)
    with pytest.raises(InvalidOptionError):
        next(engine.stream(voice, TEXT, options))


def test_speaker_zero_is_the_single_speaker(voice, engine):
    a = engine.synthesize(voice, "Speaker zero.", SynthesisOptions(speaker_id=0, noise_scale=0.0, noise_w=0.0))
    b = engine.synthesize(voice, "Speaker zero.", NO_NOISE)
    assert _same(a, b)


# -- EngineConfig -----------------------------------------------------------------------


def test_engine_config_rejects_float16_on_cpu():
    with pytest.raises(InvalidOptionError, match="CUDA"):
        EngineConfig(device="cpu", dtype="float16")


def test_engine_config_takes_bfloat16_on_cpu_only_where_the_cpu_has_it(monkeypatch):
    import syrinx.server.engine.config as engine_config

    monkeypatch.setattr(engine_config, "cpu_has_bfloat16", lambda: False)
    with pytest.raises(InvalidOptionError, match="no native bfloat16"):
        EngineConfig(device="cpu", dtype="bfloat16")
    monkeypatch.setattr(engine_config, "cpu_has_bfloat16", lambda: True)
    assert EngineConfig(device="cpu", dtype="bfloat16").dtype == "bfloat16"


def test_engine_config_accepts_half_precision_on_cuda():
    # Validation only: nothing touches a GPU until a voice is loaded.
    assert EngineConfig(device="cuda", dtype="float16").dtype == "float16"
    assert EngineConfig(device="cuda:1", dtype="bfloat16").device == "cuda:1"


@pytest.mark.parametrize("device", ["gpu", "tpu", "", "CPU", "mps", " cpu", "xla:0"])
def test_engine_config_rejects_bad_devices(device):
    with pytest.raises(InvalidOptionError, match="device"):
        EngineConfig(device=device)


@pytest.mark.parametrize("device", ["cudafoo", "cuda:x", "cuda:-1"])
def test_engine_config_rejects_malformed_cuda_devices(device):
    with pytest.raises(InvalidOptionError):
        EngineConfig(device=device)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dtype": "float64"},
        {"dtype": "fp32"},
        {"threads": -1},
        {"max_sentence_phonemes": 15},
        {"max_sentence_phonemes": 0},
    ],
)
def test_engine_config_rejects_bad_settings(kwargs):
    with pytest.raises(InvalidOptionError):
        EngineConfig(**kwargs)


def test_engine_config_defaults_are_valid():
    config = EngineConfig()
    assert (config.device, config.dtype) == ("cpu", "float32")
    assert EngineConfig(max_sentence_phonemes=16).max_sentence_phonemes == 16


# -- ChunkPolicy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_frames": 0},
        {"first_frames": -3},
        {"first_frames": 20, "max_frames": 10},
        {"growth": 0.99},
        {"growth": 0.0},
        {"growth": -2.0},
    ],
)
def test_chunk_policy_validation(kwargs):
    with pytest.raises(InvalidOptionError):
        ChunkPolicy(**kwargs)


POLICIES = [
    ChunkPolicy(),
    ChunkPolicy(first_frames=1, max_frames=1, growth=1.0),
    ChunkPolicy(first_frames=1, max_frames=64, growth=1.1),
    ChunkPolicy(first_frames=5, max_frames=33, growth=3.0),
    ChunkPolicy(first_frames=7, max_frames=7, growth=2.0),
]


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.parametrize("num_frames", [1, 2, 11, 12, 13, 100, 127, 128, 129, 1000, 5003])
def test_chunk_windows_cover_the_sentence(policy, num_frames):
    windows = policy.windows(num_frames)
    assert windows[0] == (0, min(policy.first_frames, num_frames))
    assert windows[-1][1] == num_frames
    for (_, end), (start, _) in zip(windows, windows[1:]):
        assert start == end  # contiguous, no gap or overlap
    sizes = [end - start for start, end in windows]
    assert all(1 <= size <= policy.max_frames for size in sizes)
    assert sizes[:-1] == sorted(sizes[:-1])  # never shrink (only the last may be cut short)
    if policy.growth > 1.0 and num_frames >= 1000:
        assert max(sizes) == policy.max_frames  # reaches the cap on long sentences


def test_chunk_windows_of_empty_sentence():
    assert ChunkPolicy().windows(0) == []


def test_default_chunk_schedule():
    assert ChunkPolicy().windows(400) == [(0, 12), (12, 108), (108, 364), (364, 400)]


@pytest.mark.parametrize("growth", [math.inf, math.nan])
def test_chunk_policy_non_finite_growth(growth):
    try:
        policy = ChunkPolicy(growth=growth)
    except InvalidOptionError:
        return  # rejecting it is fine
    windows = policy.windows(300)  # accepting it must then work
    assert windows[0] == (0, policy.first_frames) and windows[-1][1] == 300


def test_cpu_allocator_keeps_freed_buffers():
    """On glibc (this project's Linux targets) mallopt accepts the settings the CPU engine relies on."""
    from syrinx.server.engine.allocator import keep_freed_memory

    assert keep_freed_memory() is True
