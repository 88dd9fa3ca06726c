"""Speaker conditioning, on a multi-speaker variant of the bundled voice.

No multi-speaker Piper voice can be installed here, so this test gives the
bundled voice's network the conditioning layers a multi-speaker VITS has
(``emb_g``, ``dp.cond``, ``dec.cond`` and each flow WaveNet's ``cond_layer``)
with random weights. It checks the conditioning paths' plumbing: speakers
change the audio, mixed-speaker batches equal single runs, windows equal whole
decodes. (Parity of these paths with onnxruntime needs a real multi-speaker voice.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import NO_NOISE, decode_whole, fixed_windows, max_abs_diff

from syrinx.server.engine import DecodeWindow, InvalidOptionError, SynthesisOptions, Voice, default_voice_files
from syrinx.server.engine.onnx_voice import read_voice_network
from syrinx.server.engine.vits.architecture import Architecture, ConvSpec
from syrinx.server.engine.vits.model import VitsModel

SPEAKERS = 3
SPEAKER_CHANNELS = 16


@pytest.fixture(scope="module")
def multi_voice(voice) -> Voice:
    network = read_voice_network(default_voice_files().model_path)
    convs, shapes, tensors = dict(network.architecture.convs), dict(network.architecture.shapes), dict(network.tensors)
    rng = np.random.default_rng(0)

    def add_cond(path: str, out_channels: int) -> None:
        convs[path] = ConvSpec(SPEAKER_CHANNELS, out_channels, 1)
        tensors[f"{path}.weight"] = rng.normal(0, 0.1, (out_channels, SPEAKER_CHANNELS, 1)).astype(np.float32)
        tensors[f"{path}.bias"] = np.zeros(out_channels, dtype=np.float32)

    shapes["emb_g.weight"] = (SPEAKERS, SPEAKER_CHANNELS)
    tensors["emb_g.weight"] = rng.normal(0, 1, (SPEAKERS, SPEAKER_CHANNELS)).astype(np.float32)
    add_cond("dp.cond", convs["dp.pre"].out_channels)
    add_cond("dec.cond", convs["dec.conv_pre"].out_channels)
    flow_ids = Architecture(convs, shapes).indices("flow.flows")
    for i in flow_ids:
        hidden = convs[f"flow.flows.{i}.pre"].out_channels
        layers = len(Architecture(convs, shapes).indices(f"flow.flows.{i}.enc.in_layers"))
        add_cond(f"flow.flows.{i}.enc.cond_layer", 2 * hidden * layers)

    model = VitsModel(Architecture(convs, shapes))
    missing, _ = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=False)
    assert missing == []
    model.eval().requires_grad_(False)
    model.prepare_for_inference()
    assert model.num_speakers == SPEAKERS
    info = dataclasses.replace(voice.info, name="synthetic-multi", num_speakers=SPEAKERS)
    return Voice(info, model, voice.phonemizer, voice.device, voice.dtype)


TEXT = "Every speaker reads this sentence in a voice of its own."


def _audio(engine, voice, speaker_id, options=NO_NOISE):
    options = dataclasses.replace(options, speaker_id=speaker_id)
    return engine.synthesize(voice, TEXT, options)


def test_speaker_ids_are_validated(engine, multi_voice):
    assert multi_voice.speaker_id(None) == 0
    assert multi_voice.speaker_id(SPEAKERS - 1) == SPEAKERS - 1
    for bad in (SPEAKERS, -1):
        with pytest.raises(InvalidOptionError, match="out of range"):
            engine.sentence_requests(
                multi_voice, multi_voice.phonemizer.sentences(TEXT), SynthesisOptions(speaker_id=bad)
            )


def test_speakers_change_the_audio(engine, multi_voice):
    first, second = _audio(engine, multi_voice, 0), _audio(engine, multi_voice, 1)
    n = min(len(first), len(second))
    assert np.abs(first[:n] - second[:n]).max() > 0.05


def test_mixed_speaker_batch_equals_single_runs(engine, multi_voice):
    sentences = multi_voice.phonemizer.sentences(TEXT) * SPEAKERS
    requests = []
    for speaker in range(SPEAKERS):
        requests += engine.sentence_requests(multi_voice, sentences[:1], SynthesisOptions(speaker_id=speaker, seed=5))
    batched = decode_whole(engine, engine.encode(requests))
    for speaker, audio in enumerate(batched):
        (alone,) = engine.encode(
            engine.sentence_requests(multi_voice, sentences[:1], SynthesisOptions(speaker_id=speaker, seed=5))
        )
        assert max_abs_diff(audio, decode_whole(engine, [alone])[0]) <= 1e-4


def test_speaker_windows_equal_whole_decode(engine, multi_voice):
    (encoded,) = engine.encode(
        engine.sentence_requests(
            multi_voice, multi_voice.phonemizer.sentences(TEXT), SynthesisOptions(speaker_id=2, seed=3)
        )
    )
    (whole,) = decode_whole(engine, [encoded])
    windows = [DecodeWindow(encoded, start, end) for start, end in fixed_windows(encoded.num_frames, 7)]
    assert max_abs_diff(np.concatenate(engine.decode(windows)), whole) <= 1e-4
