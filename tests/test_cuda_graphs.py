"""The CUDA-graph cache and the engine's use of it, checked on the CPU.

A recorded call is replayed with the Python values it was recorded with (the
shapes, crop ranges and flags its function closes over), only its input
tensors change. ``replaying_capture`` does exactly that without a GPU: it keeps
the function it was given at recording time and re-runs it on the recording's
own input buffers. If the engine left something out of a step's key, a replay
would compute with another step's constants and the audio below would differ.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from syrinx.server.config import load_config
from syrinx.server.engine import AudioChunk, DecodeWindow, Engine, SynthesisOptions
from syrinx.server.engine.cuda import CapturedCall, GraphCache, use_ieee_float32


def replaying_capture(fn, inputs, pool):
    static = tuple(None if x is None else x.clone() for x in inputs)
    outputs = tuple(t.clone() for t in fn(*static))

    def replay() -> None:
        for buffer, value in zip(outputs, fn(*static)):
            buffer.copy_(value)

    return CapturedCall(static, outputs, replay), pool


def failing_capture(fn, inputs, pool):
    raise RuntimeError("operation not permitted when stream is capturing")


def scale_and_shift(x, y):
    return (x * 2, x + y)


def test_a_key_is_recorded_once_and_replayed_with_new_values():
    cache = GraphCache(4, capture=replaying_capture)
    first = [t.clone() for t in cache.run("k", scale_and_shift, (torch.ones(3), torch.zeros(3)))]
    x, y = torch.arange(3.0), torch.full((3,), 5.0)
    second = cache.run("k", scale_and_shift, (x, y))
    assert cache.captures == 1 and cache.replays == 2
    assert torch.equal(first[0], torch.full((3,), 2.0))
    assert torch.equal(second[0], x * 2) and torch.equal(second[1], x + y)


def test_the_least_recently_used_recording_goes_first():
    cache = GraphCache(2, capture=replaying_capture)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        cache.run(key, scale_and_shift, (torch.ones(2), torch.ones(2)))
    assert len(cache) == 2 and cache.captures == 3
    cache.run("a", scale_and_shift, (torch.ones(2), torch.ones(2)))
    assert cache.captures == 3  # still kept
    cache.run("b", scale_and_shift, (torch.ones(2), torch.ones(2)))
    assert cache.captures == 4  # recorded again


def test_a_call_that_cannot_be_recorded_runs_eagerly_and_is_not_retried(caplog):
    cache = GraphCache(2, capture=failing_capture)
    x, y = torch.arange(3.0), torch.ones(3)
    with caplog.at_level(logging.WARNING):
        out = cache.run("k", scale_and_shift, (x, y))
        again = cache.run("k", scale_and_shift, (x, y))
    assert torch.equal(out[1], x + y) and torch.equal(again[0], x * 2)
    assert cache.captures == 0 and cache.replays == 0
    assert len([r for r in caplog.records if "eagerly" in r.getMessage()]) == 1


def test_a_key_that_does_not_fix_the_input_shapes_is_refused():
    cache = GraphCache(2, capture=replaying_capture)
    cache.run("k", scale_and_shift, (torch.ones(3), torch.ones(3)))
    with pytest.raises(ValueError, match="shapes"):
        cache.run("k", scale_and_shift, (torch.ones(4), torch.ones(4)))
    with pytest.raises(ValueError, match="shapes"):
        cache.run("k", lambda x, y: (x,), (torch.ones(3), None))


def test_replayed_steps_give_the_eager_audio(engine, voice, config):
    graphs = GraphCache(64, capture=replaying_capture)
    graphed = Engine(config, graphs=graphs)
    texts = ["Your table for two is booked for seven tonight.", "Hi.", "Please hold while I check that for you."]
    for text in texts * 2:  # the second round replays what the first recorded
        options = SynthesisOptions(seed=len(text))
        expected = [c.samples for c in engine.stream(voice, text, options) if isinstance(c, AudioChunk)]
        got = [c.samples for c in graphed.stream(voice, text, options) if isinstance(c, AudioChunk)]
        assert len(got) == len(expected) > 0
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
    assert graphs.captures > 0 and graphs.replays > graphs.captures


def test_windows_of_the_same_shape_keep_their_own_frames(engine, voice, config):
    """Windows [0, 12), [1, 13), ... read the same decoder span and differ only in what they keep."""
    graphs = GraphCache(64, capture=replaying_capture)
    graphed = Engine(config, graphs=graphs)
    sentences = voice.phonemizer.sentences("Every window needs context on both sides.")
    (encoded,) = engine.encode(engine.sentence_requests(voice, sentences, SynthesisOptions(seed=3)))
    for start in range(4):
        window = DecodeWindow(encoded, start, start + 12)
        np.testing.assert_array_equal(graphed.decode([window])[0], engine.decode([window])[0])
    assert graphs.replays > graphs.captures


def test_batched_steps_are_not_recorded(engine, voice, config):
    graphs = GraphCache(8, capture=replaying_capture)
    graphed = Engine(config, graphs=graphs)
    sentences = voice.phonemizer.sentences("One sentence here. And another one there.")
    assert len(sentences) == 2
    graphed.encode(graphed.sentence_requests(voice, sentences, SynthesisOptions(seed=1)))
    assert graphs.captures == 0 and len(graphs) == 0


def test_float32_on_cuda_is_ieee_float32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        use_ieee_float32()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize(
    "environ, expected", [({}, True), ({"SYRINX_CUDA_GRAPHS": "0"}, False), ({"SYRINX_CUDA_GRAPHS": "1"}, True)]
)
def test_cuda_graphs_can_be_switched_off(environ, expected):
    assert load_config([], environ).engine.cuda_graphs is expected
    assert load_config(["--cuda-graphs", "0"], environ).engine.cuda_graphs is False
