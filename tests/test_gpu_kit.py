"""The GPU benchmark's kit: float16 weights and precomputed phonemes reproduce onnxruntime on the same weights."""

from __future__ import annotations

import grpc
import pytest
from service_fixtures import ServerThread

from bench.gpu_kit import Kit, KitPhonemizer, export, parity
from syrinx.server.config import ServerConfig
from syrinx.server.engine import Engine, EngineConfig, InvalidTextError, VoiceCatalog
from syrinx.v1 import synthesizer_pb2 as pb

TEXTS = {
    "parity": ["Dr. Smith will see you at 4:30 tomorrow afternoon.", "Is this right? Yes, it is."],
    "latency": {"short": "Hello there."},
    "load": ["One moment while I look that up."],
}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kit")
    export(directory, TEXTS)
    return Kit.open(directory)


def test_kit_is_small_enough_to_travel(kit):
    voice_bytes = (kit.directory / "voice.onnx").stat().st_size
    assert voice_bytes < 40 * 2**20  # float16 weights: about half of the 63 MB voice


def test_kit_phonemes_are_the_real_phonemizers(kit, voice):
    phonemizer = KitPhonemizer(kit.texts["sentences"])
    for text in [*TEXTS["parity"], *TEXTS["latency"].values(), *TEXTS["load"]]:
        assert phonemizer.sentences(text) == voice.phonemizer.sentences(text)


def test_kit_phonemizer_refuses_what_it_was_not_given(kit):
    phonemizer = KitPhonemizer(kit.texts["sentences"])
    with pytest.raises(InvalidTextError, match="not phonemized"):
        phonemizer.sentences("Some other text.")
    with pytest.raises(InvalidTextError, match="word timestamps"):
        phonemizer.sentences(TEXTS["load"][0], with_words=True)


def test_kit_voice_matches_onnxruntime_on_the_same_weights(kit):
    engine = Engine(EngineConfig())
    voice = kit.load(engine.config)
    result = parity(kit, engine, voice)
    assert result["sentences"] == sum(len(kit.texts["sentences"][text]) for text in TEXTS["parity"])
    assert result["max"] <= 1e-3


def test_a_server_on_the_kit_speaks_its_texts_and_refuses_others(kit):
    """What `bench.gpu_kit serve` runs on the GPU machine: the real server, the kit's voice."""
    server = ServerThread(
        ServerConfig(host="127.0.0.1", port=0), load_catalog=lambda engine: VoiceCatalog([kit.load(engine)])
    )
    try:
        server.make_ready()  # warms up with the engine's own text, which the kit carries
        replies = list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXTS["load"][0], seed=1)))
        assert sum(len(r.audio) for r in replies) > 22050  # over half a second of 16-bit audio
        with pytest.raises(grpc.RpcError) as error:
            list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text="Not in the kit.")))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not phonemized in the kit" in error.value.details()
    finally:
        server.stop()
