"""NVIDIA Riva's TTS protocol on a real Syrinx server, spoken to by the real nvidia-riva-client 2.27.0.

The client pins its own protobuf, so it runs in .venv-riva (`make install`) as a subprocess
(tests/riva_client.py); this side checks what it got.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from pathlib import Path

import av
import pytest
from google.protobuf import descriptor_pb2, json_format
from service_fixtures import ServerThread, counted_decodes
from test_service import _until

from syrinx.riva import riva_audio_pb2, riva_common_pb2, riva_tts_pb2
from syrinx.server.config import ServerConfig
from syrinx.server.scheduler import SchedulerConfig

ROOT = Path(__file__).resolve().parent.parent
RIVA_PYTHON = ROOT / ".venv-riva" / "bin" / "python"
SCRIPT = Path(__file__).resolve().parent / "riva_client.py"
RIVA_NAME = "Piper.EN-US.joe-medium"
TEXT = "Your table for two is booked for seven tonight."

pytestmark = pytest.mark.skipif(not RIVA_PYTHON.exists(), reason="nvidia-riva-client's venv is made by `make install`")


@pytest.fixture(scope="module")
def server():
    running = ServerThread(ServerConfig(host="127.0.0.1", port=0, scheduler=SchedulerConfig(max_streams=8)))
    running.make_ready()
    yield running
    running.stop()


def riva(server, command: str, _address: str | None = None, _env: dict | None = None, **args) -> dict:
    """Run the real client's ``command`` against ``server`` (``_env``: its TLS and token settings)."""
    address = _address or f"127.0.0.1:{server.running.port}"
    result = subprocess.run(
        [str(RIVA_PYTHON), str(SCRIPT), command, address, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(_env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def audio(result: dict) -> bytes:
    assert "code" not in result, result
    return b"".join(base64.b64decode(r["audio"]) for r in result["responses"])


def seconds_of_pcm(data: bytes, rate: int) -> float:
    return len(data) / 2 / rate


# -- the interface ------------------------------------------------------------------------------


def _normalized(module) -> dict:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    described = json_format.MessageToDict(proto)
    # The file's own name and imports differ by design (syrinx/riva/ keeps the generated modules
    # clear of nvidia-riva-client's `riva` package); everything on the wire must not.
    for key in ("name", "dependency", "sourceCodeInfo"):
        described.pop(key, None)
    return described


def test_the_protos_match_the_real_clients_field_by_field(server):
    theirs = riva(server, "describe")
    for module in (riva_audio_pb2, riva_common_pb2, riva_tts_pb2):
        ours = _normalized(module)
        key = ours["package"] + ":" + Path(module.DESCRIPTOR.name).name
        their_file = {k: v for k, v in theirs[key].items() if k not in ("name", "dependency", "sourceCodeInfo")}
        assert ours == their_file, key


# -- what clients depend on -------------------------------------------------------------------------


def test_synthesize_gives_headerless_pcm_at_the_asked_rate(server):
    for rate in (16000, 22050, 24000, 44100):
        pcm = audio(riva(server, "synthesize", text=TEXT, sample_rate_hz=rate))
        assert pcm[:4] != b"RIFF" and len(pcm) % 2 == 0
        assert 2.0 < seconds_of_pcm(pcm, rate) < 4.5, rate  # about 3 s of speech at any rate


def test_each_encoding(server):
    mulaw = audio(riva(server, "synthesize", text=TEXT, encoding="MULAW", sample_rate_hz=8000))
    alaw = audio(riva(server, "synthesize", text=TEXT, encoding="ALAW", sample_rate_hz=8000))
    for data in (mulaw, alaw):
        assert 2.0 < len(data) / 8000 < 4.5  # one byte a sample
    opus = audio(riva(server, "synthesize", text=TEXT, encoding="OGGOPUS", sample_rate_hz=48000))
    with av.open(io.BytesIO(opus), format="ogg") as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert 2.0 < samples / 48000 < 4.5
    flac = riva(server, "synthesize", text=TEXT, encoding="FLAC")
    assert flac["code"] == "INVALID_ARGUMENT" and "LINEAR_PCM" in flac["details"] and "FLAC" in flac["details"]


def test_synthesize_online_with_a_string_and_with_a_list(server):
    one = riva(server, "online", text=TEXT, sample_rate_hz=22050)
    assert len(one["responses"]) > 1  # streamed, not one block
    assert 2.0 < seconds_of_pcm(audio(one), 22050) < 4.5
    texts = ["Your table for two ", "is booked for seven ", "tonight. See you then!"]
    listed = riva(server, "online", text=texts, sample_rate_hz=16000)
    assert 3.0 < seconds_of_pcm(audio(listed), 16000) < 6.5  # one utterance, spoken across requests


def test_a_stitched_call_hears_audio_before_its_second_request(server):
    texts = ["Sure, I can help you with that. ", "Your table for two is booked for seven tonight. ", "Goodbye!"]
    result = riva(server, "stitched", texts=texts, sample_rate_hz=24000)
    assert result["second_sent_after_audio"] is True  # the client sent it only once audio had come
    assert 4.0 < seconds_of_pcm(audio(result), 24000) < 9.0


def test_cancelling_a_stitched_call_stops_the_engine_work(server):
    service = server.running.service
    with counted_decodes(service) as decodes:
        long_text = " ".join(f"Sentence {i} keeps this answer going for a while." for i in range(40))
        riva(server, "stitched", texts=[long_text], cancel_after_first=True, sample_rate_hz=22050)
        server.call(_until(lambda: service.active_streams == 0))
        assert decodes["decode"] < 40, "the cancelled call kept synthesizing"


def test_word_time_offsets(server):
    result = riva(server, "synthesize", text=TEXT, sample_rate_hz=22050, enable_word_time_offsets=True)
    words = result["responses"][0]["words"]
    assert [w for w, _, _ in words] == TEXT.rstrip(".").split()
    starts = [start for _, start, _ in words]
    assert starts == sorted(starts) and all(end >= start for _, start, end in words)
    assert words[-1][2] <= seconds_of_pcm(audio(result), 22050) * 1000 + 1
    online = riva(server, "online", text=TEXT, sample_rate_hz=22050, enable_word_time_offsets=True)
    assert [w[0] for r in online["responses"] for w in r["words"]] == TEXT.rstrip(".").split()


def test_the_voice_config_and_voice_names(server):
    (config,) = riva(server, "config")["configs"]
    assert config["model_name"] == RIVA_NAME
    parameters = config["parameters"]
    assert parameters["language_code"] == "en-US"
    # LiveKit's list_voices (and Riva's convention): voice_name + "." + each subvoice's name.
    full_names = [parameters["voice_name"] + "." + sub.split(":")[0] for sub in parameters["subvoices"].split(",")]
    assert full_names == [RIVA_NAME]
    for name in (RIVA_NAME, "en_US-joe-medium", ""):  # either name; empty: the language's first voice
        assert audio(riva(server, "synthesize", text="Hi.", voice_name=name))
    unknown = riva(server, "synthesize", text="Hi.", voice_name="Magpie-Multilingual.EN-US.Aria")
    assert unknown["code"] == "NOT_FOUND" and RIVA_NAME in unknown["details"]
    language = riva(server, "synthesize", text="Hola.", language_code="es-ES")
    assert language["code"] == "INVALID_ARGUMENT" and "en-US" in language["details"]


def test_custom_dictionary_and_ssml_from_the_real_client(server):
    # Riva requests carry no seed, so the audio is compared by length: "Hi" said as eight syllables.
    plain = audio(riva(server, "synthesize", text="Hi.", sample_rate_hz=22050))
    long_hi = {"hi": "ˈhaɪ haɪ haɪ haɪ haɪ haɪ haɪ haɪ"}
    dictionary = audio(riva(server, "synthesize", text="Hi.", sample_rate_hz=22050, custom_dictionary=long_hi))
    assert seconds_of_pcm(dictionary, 22050) > 2.5 * seconds_of_pcm(plain, 22050)
    bad = riva(server, "synthesize", text="Hi.", custom_dictionary={"Syrinx": "ʬa"})
    assert bad["code"] == "INVALID_ARGUMENT" and "lacks" in bad["details"]
    ssml = '<speak>Code <say-as interpret-as="characters">XK</say-as><break time="500ms"/> ready.</speak>'
    for command in ("synthesize", "online"):
        result = riva(server, command, text=ssml, enable_word_time_offsets=True)
        assert [w[0] for r in result["responses"] for w in r["words"]] == ["Code", "X", "K", "ready"], command
    malformed = riva(server, "synthesize", text="<speak>Hi <break></speak>")
    assert malformed["code"] == "INVALID_ARGUMENT" and "line 1" in malformed["details"]


def test_what_syrinx_cannot_do_is_refused_clearly(server):
    configuration = riva(server, "synthesize", text="Hi.", custom_configuration={"exaggeration_factor": "1.5"})
    assert configuration["code"] == "INVALID_ARGUMENT" and "exaggeration_factor" in configuration["details"]
    empty = riva(server, "synthesize", text="")
    assert empty["code"] == "INVALID_ARGUMENT"


OLDEST_PYTHON = ROOT / ".venv-riva-oldest" / "bin" / "python"
OLDEST_CLIENT = """
import sys, riva.client
tts = riva.client.SpeechSynthesisService(riva.client.Auth(uri=sys.argv[1]))
print(sum(len(r.audio) for r in tts.synthesize_online(sys.argv[2], sample_rate_hz=22050)))
"""


@pytest.mark.skipif(not OLDEST_PYTHON.exists(), reason="the oldest client's venv is made by `make install`")
def test_the_oldest_2x_client_whose_synthesize_online_sends_one_request(server):
    """nvidia-riva-client 2.8.0: SynthesizeOnline was unary-request then (one request, half-closed)."""
    result = subprocess.run(
        [str(OLDEST_PYTHON), "-c", OLDEST_CLIENT, f"127.0.0.1:{server.running.port}", TEXT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert 2.0 < int(result.stdout) / 2 / 22050 < 4.5


def test_the_real_client_over_mtls_with_a_bearer_token(tmp_path):
    """What a deployment outside a mesh runs: Riva's own client with its ssl_root_cert, client
    certificate and key, and the token in metadata after Pipecat's placeholder values."""
    import trustme
    from test_security import Pki

    from syrinx.server.config import AuthConfig, TlsConfig

    pki = Pki(trustme.CA(), trustme.CA(), tmp_path)
    ca_file = pki.ca_file(pki.ca)
    server_cert, server_key = pki.server_files(pki.ca, "server")
    client_cert, client_key = pki.client_files(pki.ca, "client")
    token = "riva-client-token-0123456789"
    (tmp_path / "tokens").write_text(token + "\n")
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        tls=TlsConfig(server_cert, server_key, Path(ca_file)),
        auth=AuthConfig(tokens_file=tmp_path / "tokens"),
    )
    secured = ServerThread(config)
    try:
        secured.make_ready()
        address = f"localhost:{secured.running.port}"
        env = {
            "RIVA_TEST_ROOT_CERT": ca_file,
            "RIVA_TEST_CLIENT_CERT": str(client_cert),
            "RIVA_TEST_CLIENT_KEY": str(client_key),
        }
        refused = riva(secured, "synthesize", _address=address, _env=env, text=TEXT)
        assert refused["code"] == "UNAUTHENTICATED"
        env["RIVA_TEST_TOKEN"] = token
        pcm = audio(riva(secured, "synthesize", _address=address, _env=env, text=TEXT, sample_rate_hz=16000))
        assert 2.0 < seconds_of_pcm(pcm, 16000) < 4.5
        streamed = riva(secured, "online", _address=address, _env=env, text=TEXT, sample_rate_hz=16000)
        assert 2.0 < seconds_of_pcm(audio(streamed), 16000) < 4.5
    finally:
        secured.stop()
