"""SSML and pronunciation lexicons end to end: the real phonemizer and engine, a real server.

Intelligibility is checked at the phoneme level: the phonemes the voice is given for a
lexicon word or an IPA ``<phoneme>`` are exactly the IPA asked for, and a spelled-out word is
the names of its letters, each as espeak-ng says it alone.
"""

from __future__ import annotations

import logging
import unicodedata

import grpc
import numpy as np
import pytest
import torch
from conftest import decode_whole
from service_fixtures import ServerThread
from test_live import Feed, say, settings

from syrinx.server.config import ServerConfig
from syrinx.server.engine import InvalidTextError, SynthesisOptions
from syrinx.server.engine.engine import _with_pauses
from syrinx.server.engine.phonemizer import PiperPhonemizer
from syrinx.server.scheduler import SchedulerConfig
from syrinx.server.text.lexicon import Lexicon
from syrinx.server.text.speech import Speech
from syrinx.server.text.ssml import parse_ssml
from syrinx.v1 import synthesizer_pb2 as pb

SEED = 11


@pytest.fixture(scope="module")
def lexicons(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lexicons")
    (directory / "en.lexicon").write_text("# language-wide\nSyrinx  ˈsɪɹɪŋks\nPiper  ˈpaɪpɚ\n", encoding="utf-8")
    (directory / "en_US-joe-medium.lexicon").write_text("Piper  ˈpiːpɚ\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def server(lexicons):
    config = ServerConfig(host="127.0.0.1", port=0, scheduler=SchedulerConfig(max_streams=4), lexicons_dir=lexicons)
    running = ServerThread(config)
    running.make_ready()
    yield running
    running.stop()


def _ipa(phonemes) -> str:
    return "".join(phonemes)


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# -- the phonemizer ------------------------------------------------------------------------------


def test_plain_speech_is_exactly_the_plain_path(voice):
    text = "Plain text, read as it always was. Two sentences!"
    assert voice.phonemizer.speak(Speech.plain(text), with_words=True) == voice.phonemizer.sentences(text, True)


def test_lexicon_and_phoneme_words_are_spoken_with_the_ipa_given(voice):
    speech = Lexicon.of([("Syrinx", "ˈsɪɹɪŋks")]).apply(
        parse_ssml('<speak>Meet Syrinx and <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme>.</speak>')
    )
    (sentence,) = voice.phonemizer.speak(speech)
    assert _nfd(" ˈsɪɹɪŋks ") in _ipa(sentence.phonemes)
    assert _nfd(" təˈmɑːtoʊ ") in _ipa(sentence.phonemes)


def test_spelled_words_are_their_letters_names(voice):
    phonemizer: PiperPhonemizer = voice.phonemizer
    (sentence,) = phonemizer.speak(parse_ssml('<speak><say-as interpret-as="characters">AB</say-as></speak>'))
    letters = [_ipa(p for p in phonemizer._piper.phonemize(f"{c}.")[0] if p != ".") for c in "AB"]
    assert _ipa(sentence.phonemes).split() == letters
    as_text = _ipa(phonemizer.sentences("A B")[0].phonemes).split()
    assert as_text[0] != letters[0]  # "A" in text is the article; spelled, it is the letter


def test_word_timings_point_into_the_ssml(voice):
    source = (
        '<speak>Call <sub alias="World Wide Web">WWW</sub>, then <say-as interpret-as="digits">42</say-as>'
        '<break time="200ms"/> and <phoneme ph="təˈmɑːtoʊ">tomato</phoneme>.</speak>'
    )
    sentences = voice.phonemizer.speak(parse_ssml(source), with_words=True)
    words = [source[w.char_start : w.char_end] for s in sentences for w in s.words]
    assert words == ["Call", "WWW", "then", "4", "2", "and", "tomato"]
    assert all(w.end_id > w.first_id for s in sentences for w in s.words)


def test_a_break_is_exact_and_silent(voice, engine):
    source = '<speak>Before the pause <break time="700ms"/> after it.</speak>'
    (sentence,) = voice.phonemizer.speak(parse_ssml(source))
    (request,) = engine.sentence_requests(voice, [sentence], SynthesisOptions(seed=SEED))
    (encoded,) = engine.encode([request])
    index = next(i for i, seconds in sentence.pauses if seconds)
    frames = encoded.durations[index] + sum(encoded.durations[i] for i, s in sentence.pauses if not s)
    assert frames == round(0.7 * voice.info.sample_rate / voice.hop_length)
    start = int(encoded.durations[:index].sum()) * voice.hop_length
    (samples,) = decode_whole(engine, [encoded])
    middle = samples[start + 2000 : start + frames * voice.hop_length - 2000]
    assert np.sqrt(np.mean(middle**2)) < 0.1 * np.sqrt(np.mean(samples**2))  # much quieter than the speech


def test_prosody_rate_slows_only_its_span(voice, engine):
    def frames(source: str) -> tuple[int, int]:
        (sentence,) = voice.phonemizer.speak(parse_ssml(source))
        (request,) = engine.sentence_requests(voice, [sentence], SynthesisOptions(seed=SEED, noise_w=0.0))
        (encoded,) = engine.encode([request])
        slow = [i for i, rate in enumerate(sentence.rates) if rate != 1.0] if sentence.rates else []
        return int(encoded.durations.sum()), int(encoded.durations[slow].sum()) if slow else 0

    normal_total, _ = frames("<speak>one two three four five six</speak>")
    slow_total, slow_part = frames('<speak>one two <prosody rate="50%">three four</prosody> five six</speak>')
    assert slow_part > 0
    assert 1.1 * normal_total < slow_total < 2.0 * normal_total


def test_pauses_survive_head_first_encoding(voice):
    sentence = voice.phonemizer.speak(parse_ssml('<speak>a <break time="1s"/> b</speak>'))[0]
    durations = torch.ones(len(sentence.phoneme_ids), dtype=torch.long)
    index = next(i for i, s in sentence.pauses if s)
    head = _with_pauses(durations[:index], sentence, voice)
    rest = _with_pauses(durations[index:], sentence, voice, first=index)
    assert int(rest[0]) == round(voice.info.sample_rate / voice.hop_length) and head.tolist() == [1] * index


def test_ipa_the_voice_lacks_is_an_error(voice):
    with pytest.raises(InvalidTextError, match="lacks"):
        voice.phonemizer.ipa_phonemes("ʬa")


# -- over gRPC -----------------------------------------------------------------------------------


def _pcm(server, **fields) -> bytes:
    return b"".join(r.audio for r in server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(seed=SEED, **fields)))


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_ssml_over_grpc_with_word_timings_into_the_ssml(server):
    source = '<speak>Hello <say-as interpret-as="characters">SSML</say-as> world.</speak>'
    responses = list(
        server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(ssml=source, seed=SEED, enable_word_timestamps=True))
    )
    words = [(w.word, w.char_start) for r in responses for w in r.words]
    assert [w for w, _ in words] == ["Hello", "S", "S", "M", "L", "world"]
    assert all(source[start : start + len(word)] == word for word, start in words)
    unary = server.stub.Synthesize(pb.SynthesizeRequest(ssml=source, seed=SEED))
    assert unary.audio == b"".join(r.audio for r in responses)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "Hi.", "ssml": "<speak>Hi.</speak>"}, "not both"),
        ({"ssml": "<speak>Hi <break time='1s'></speak>"}, "line 1, column"),
        ({"ssml": "<speak><phoneme ph='ʬa'>click</phoneme></speak>"}, "phonemes this voice lacks"),
        ({"text": "Hi.", "pronunciations": {"Hi": "ʬa"}}, 'pronunciation of "hi"'),
        ({"text": "Hi.", "pronunciations": {"two words": "tuː"}}, "is not a word"),
        ({"ssml": "   "}, "ssml is empty"),
    ],
)
def test_bad_markup_and_pronunciations_are_invalid_argument(server, fields, message):
    for call in (
        lambda: server.stub.Synthesize(pb.SynthesizeRequest(**fields)),
        lambda: list(server.stub.StreamSynthesize(pb.StreamSynthesizeRequest(**fields))),
    ):
        error = _error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details(), error.details()


def test_request_pronunciations_change_the_audio_and_win_over_files(server):
    plain = _pcm(server, text="Ask Marta.")
    lexicon = _pcm(server, text="Ask Marta.", pronunciations={"marta": "ˈmɑːɹθə"})
    assert lexicon != plain
    assert _pcm(server, text="Ask Marta.", pronunciations={"MARTA": "ˈmɑːɹθə"}) == lexicon  # case-insensitive
    # The voice's file says Piper is "ˈpiːpɚ"; the request's entry wins over it.
    assert _pcm(server, text="Piper.", pronunciations={"piper": "ˈpaɪpɚ"}) == _pcm(
        server, ssml="<speak><phoneme ph='ˈpaɪpɚ'>Piper</phoneme>.</speak>"
    )


def test_file_lexicons_apply_most_specific_first_and_reload(server, lexicons, caplog):
    said = _pcm(server, ssml="<speak><phoneme ph='ˈpiːpɚ'>x</phoneme>.</speak>")
    assert _pcm(server, text="Piper.") == said  # the voice's file wins over the language's
    assert _pcm(server, text="Syrinx.") == _pcm(server, ssml="<speak><phoneme ph='ˈsɪɹɪŋks'>x</phoneme>.</speak>")
    voice_file = lexicons / "en_US-joe-medium.lexicon"
    voice_file.write_text("Piper  ˈpaɪpɚ\nSyrinx  sɪˈɹɪŋks\n", encoding="utf-8")
    assert _pcm(server, text="Syrinx.") == _pcm(server, ssml="<speak><phoneme ph='sɪˈɹɪŋks'>x</phoneme>.</speak>")
    with caplog.at_level(logging.WARNING, logger="syrinx.server.security.watched_file"):
        voice_file.write_text("Syrinx  ʬʬ\n", encoding="utf-8")  # a bad edit: the last good lexicon stays
        assert _pcm(server, text="Syrinx.") == _pcm(server, ssml="<speak><phoneme ph='sɪˈɹɪŋks'>x</phoneme>.</speak>")
    assert any("cannot be used" in r.getMessage() and "ʬ" in r.getMessage() for r in caplog.records)


def test_a_bad_lexicon_file_stops_start_up_naming_it(tmp_path):
    from syrinx.server.lexicons import LexiconFileError

    (tmp_path / "en_US.lexicon").write_text("fine  faɪn\nclick  ʬ\n", encoding="utf-8")
    server = ServerThread(ServerConfig(host="127.0.0.1", port=0, lexicons_dir=tmp_path))
    try:
        with pytest.raises(LexiconFileError, match=r"en_US.lexicon: \"click\""):
            server.make_ready()
    finally:
        server.stop()  # as the real start-up does on failure: its scheduler task is not left pending


def test_live_ssml_split_across_fragments(server):
    fragments = ['Call <say-as interpret-as="char', 'acters">AB</say-as> now. Then <break time="3', '00ms"/> more.']
    feed = Feed(settings(ssml=True, enable_word_timestamps=True), *(say("u", f) for f in fragments))
    feed.send(say("u", end_of_utterance=True))
    feed.close()
    responses = list(server.stub.LiveSynthesize(iter(feed)))
    text = "".join(fragments)
    words = [(w.word, w.char_start) for r in responses for w in r.words]
    assert [w for w, _ in words] == ["Call", "A", "B", "now", "Then", "more"]
    assert all(text[start : start + len(word)] == word for word, start in words)
    assert responses[-1].utterance_done


def test_live_ssml_left_open_is_invalid_argument(server):
    feed = Feed(
        settings(ssml=True), say("u", "Fine. <say-as interpret-as='digits'>12"), say("u", end_of_utterance=True)
    )
    feed.close()
    error = _error(lambda: list(server.stub.LiveSynthesize(iter(feed))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed SSML" in error.details()
