"""Half-precision plumbing, exercised on the CPU with bfloat16.

On CUDA the decoder can run in float16/bfloat16 while everything before it
stays float32. The CPU runs bfloat16 too (natively where it has AVX512-BF16,
slowly elsewhere), so this checks the same code path here: dtype conversions, masks, batching and windows.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import NO_NOISE, decode_whole, fixed_windows, relative_l2

from syrinx.server.engine import DecodeWindow, Voice

TEXT = "Half precision should sound the same as full precision."


@pytest.fixture(scope="module")
def bf16_voice(voice) -> Voice:
    model = copy.deepcopy(voice.model)
    model.dec.to(torch.bfloat16)
    return Voice(voice.info, model, voice.phonemizer, voice.device, torch.bfloat16)


def test_durations_stay_float32_and_audio_is_close(engine, voice, bf16_voice):
    sentences = voice.phonemizer.sentences(TEXT)
    (full,) = engine.encode(engine.sentence_requests(voice, sentences, NO_NOISE))
    (half,) = engine.encode(engine.sentence_requests(bf16_voice, sentences, NO_NOISE))
    np.testing.assert_array_equal(half.durations, full.durations)
    assert half.z_p.dtype == torch.float32
    (audio_full,), (audio_half,) = decode_whole(engine, [full]), decode_whole(engine, [half])
    assert audio_half.dtype == np.float32
    assert relative_l2(audio_half, audio_full) < 0.03  # bfloat16 keeps 8 bits of mantissa (measured 0.011)


def test_half_precision_windows_and_batches(engine, bf16_voice):
    sentences = bf16_voice.phonemizer.sentences(TEXT + " And a second, shorter one.")
    encoded = engine.encode(engine.sentence_requests(bf16_voice, sentences, NO_NOISE))
    whole = decode_whole(engine, encoded)
    first = encoded[0]
    windows = engine.decode([DecodeWindow(first, s, e) for s, e in fixed_windows(first.num_frames, 9)])
    # Rounding differs between window shapes in bfloat16; the audio must still agree closely.
    assert relative_l2(np.concatenate(windows), whole[0]) < 0.05
    batched = engine.decode([DecodeWindow(e, 0, e.num_frames) for e in encoded])
    for alone, together in zip(whole, batched):
        assert relative_l2(together, alone) < 0.05
