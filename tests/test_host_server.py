"""The host-capacity benchmark's server: the real server, an engine that returns silence at once."""

from __future__ import annotations

from service_fixtures import ServerThread

from bench.host_server import FRAMES_PER_ID, SilentEngine, server_config
from syrinx.server.config import GPU_SCHEDULER_LIMITS
from syrinx.server.engine import VoiceCatalog
from syrinx.v1 import synthesizer_pb2 as pb

TEXT = "One moment while I look that up. Your table is booked."


def test_gpu_limits_apply_and_flags_given_win():
    config = server_config(0, ["--max-decode-batch", "8"])
    expected = {**GPU_SCHEDULER_LIMITS, "max_decode_batch": 8}
    assert {name: getattr(config.scheduler, name) for name in expected} == expected
    assert config.engine.device == "cpu"  # the limits come from the flags, not from a GPU
    assert config.telemetry.metrics_port is None


def test_silent_engine_streams_silence_of_the_texts_length_through_the_real_server(voice):
    config = server_config(0, ["--host", "127.0.0.1"])
    server = ServerThread(config, load_catalog=lambda _: VoiceCatalog([voice]), engine=SilentEngine(config.engine))
    try:
        server.make_ready()
        replies = list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=TEXT)))
    finally:
        server.stop()
    hop = voice.hop_length
    ids = [len(s.phoneme_ids) for s in voice.phonemizer.sentences(TEXT)]
    expected = [(end - start) * hop for n in ids for start, end in config.engine.chunks.windows(int(n * FRAMES_PER_ID))]
    assert [r.num_samples for r in replies] == expected
    assert all(r.audio == bytes(len(r.audio)) for r in replies)
