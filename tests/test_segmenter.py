"""Streaming-safe segmentation and LLM output hygiene: pure text, no model, no gRPC."""

from __future__ import annotations

import random

import pytest

from syrinx.server.text import Segmenter, SegmenterConfig, clean

PLAIN = SegmenterConfig(eager_first=False)


def segments(fragments, config=PLAIN, flush=True):
    """The spoken text of each segment, from ``fragments`` pushed in order, then flushed."""
    segmenter = Segmenter(config)
    out = [s for fragment in fragments for s in segmenter.push(fragment, 0.0)]
    if flush:
        out += segmenter.flush(0.0)
    return out


def texts(fragments, config=PLAIN, flush=True):
    return [s.text for s in segments(fragments, config, flush)]


def assert_covers(segs, raw):
    """Segments cover the raw text without gaps or overlaps: every character the client sent."""
    assert "".join(raw[s.raw_start : s.raw_end] for s in segs) == raw
    assert all(a.raw_end == b.raw_start for a, b in zip(segs, segs[1:]))


# -- where sentences end, and where they must not -----------------------------------------


@pytest.mark.parametrize(
    "fragments, expected",
    [
        (["It is 3", ".5", "% more. Good."], ["It is 3.5% more. ", "Good."]),
        (["That is $3.", "5 each. Fine."], ["That is $3.5 each. ", "Fine."]),
        (["About 1", ",000", ",000 people came. Yes."], ["About 1,000,000 people came. ", "Yes."]),
        (["Ask Dr.", " Smith now. Then go."], ["Ask Dr. Smith now. ", "Then go."]),
        (["Use e.g. this one. Or that."], ["Use e.g. this one. ", "Or that."]),
        (["The U.S. Army is big. Yes."], ["The U.S. Army is big. ", "Yes."]),
        (["Walk down St. James Street. Turn."], ["Walk down St. James Street. ", "Turn."]),
        (["J. R. R. Tolkien wrote it. True."], ["J. R. R. Tolkien wrote it. ", "True."]),
        (["See https://example.com/a.b?c=1 for more. Ok."], ["See https://example.com/a.b?c=1 for more. ", "Ok."]),
        (["Mail me at jo.doe@mail.example.org today. Ok."], ["Mail me at jo.doe@mail.example.org today. ", "Ok."]),
        (["It starts at 5:30. Be early."], ["It starts at 5:30. ", "Be early."]),
        (["Pi is 3.14159 or so. Right?"], ["Pi is 3.14159 or so. ", "Right?"]),
        (["Really? Yes! Great… Then we go."], ["Really? ", "Yes! ", "Great… ", "Then we go."]),
        (["Well... and then? Fine."], ["Well... and then? ", "Fine."]),
        (['He said "stop." Then left.'], ['He said "stop." ', "Then left."]),
        (["Sentence one.Sentence two."], ["Sentence one.Sentence two."]),
        (["See No. 5 on p. 12 please. Ok."], ["See No. 5 on p. 12 please. ", "Ok."]),
        (["The answer is no. We can't."], ["The answer is no. ", "We can't."]),
        (["Apples, pears, etc. and more. Then go."], ["Apples, pears, etc. and more. ", "Then go."]),
        (["Apples, pears, etc. Then go."], ["Apples, pears, etc. ", "Then go."]),
        (["Todo ", "listo."], ["Todo listo."]),
        (["Hel", "lo the", "re."], ["Hello there."]),
    ],
)
def test_sentence_ends(fragments, expected):
    assert texts(fragments) == expected


def test_an_end_waits_for_the_next_character():
    segmenter = Segmenter(PLAIN)
    assert segmenter.push("It costs $3.", 0.0) == []  # "$3." + "5" must stay whole
    assert segmenter.push(" ", 0.0) == []  # whitespace, but the next word decides ("Dr." + " Smith")
    (first,) = segmenter.push("T", 0.0)
    assert first.text == "It costs $3. "
    assert segmenter.pending == "T"


def test_cjk_sentences_end_without_spaces():
    assert texts(["今日は晴れです。明日は", "雨です！本当？", "はい"]) == [
        "今日は晴れです。",
        "明日は雨です！",
        "本当？",
        "はい",
    ]


def test_whitespace_is_kept_and_segments_cover_the_raw_text():
    raw = "  Hello   there.  \n\n How are   you?  Fine.   "
    segs = segments([raw])
    assert_covers(segs, raw)
    assert [s.text for s in segs] == ["  Hello   there.  \n\n ", "How are   you?  ", "Fine.   "]


@pytest.mark.parametrize("fragment", ["", " ", "..."])
def test_fragments_with_nothing_to_say(fragment):
    segs = segments([fragment])
    assert all(not s.speakable for s in segs)
    assert "".join(s.text for s in segs) == fragment


def test_cut_at_every_position_gives_the_same_segments():
    raw = (
        "Dr. Smith paid $3.50 at 5:30, e.g. for U.S. stamps. J. R. R. Tolkien? Yes! "
        "See example.com… Then 1,000,000 people came.\n- **Bold** item\n今日は。明日も！ Done."
    )
    for config in (PLAIN, SegmenterConfig()):
        whole = [(s.raw_start, s.raw_end, s.text) for s in segments([raw], config)]
        assert len(whole) >= 8
        for cut in range(len(raw) + 1):
            split = [(s.raw_start, s.raw_end, s.text) for s in segments([raw[:cut], raw[cut:]], config)]
            assert split == whole, cut
        rng = random.Random(7)
        for _ in range(20):  # and in random pieces of 1-6 characters, as an LLM's tokens come
            pieces, at = [], 0
            while at < len(raw):
                size = rng.randint(1, 6)
                pieces.append(raw[at : at + size])
                at += size
            assert [(s.raw_start, s.raw_end, s.text) for s in segments(pieces, config)] == whole


def test_long_text_without_punctuation_is_cut_at_word_boundaries():
    words = [f"word{i}" for i in range(400)]
    raw = " ".join(words)
    assert len(raw) > 2000
    config = SegmenterConfig(eager_first=False, max_segment_chars=300)
    one_char_at_a_time = segments(list(raw), config)
    assert one_char_at_a_time == segments([raw], config)
    assert_covers(one_char_at_a_time, raw)
    assert len(one_char_at_a_time) >= 7
    for s in one_char_at_a_time:
        assert len(s.text.rstrip()) <= 300
        assert s.text.strip().split() == [w for w in s.text.split()]  # whole words only
        assert all(w in words for w in s.text.split())


def test_a_word_longer_than_a_segment_waits_for_its_end():
    segmenter = Segmenter(SegmenterConfig(max_segment_chars=20))
    assert segmenter.push("x" * 50, 0.0) == []
    (segment,) = segmenter.push(" next", 0.0)
    assert segment.text == "x" * 50 + " "


# -- the eager first segment ----------------------------------------------------------------


def test_the_first_segment_may_end_at_a_clause_after_enough_words():
    eager = SegmenterConfig(eager_min_words=4)
    assert texts(["Yes, of course, I can book that table for you. It is done."], eager) == [
        "Yes, of course, I can book that table for you. ",  # 1 and 3 words: too few
        "It is done.",
    ]
    assert texts(["Well, I think that we should go, right after lunch. Then eat."], eager) == [
        "Well, I think that we should go, ",
        "right after lunch. ",
        "Then eat.",
    ]
    assert texts(["First of all the thing - then more. Next, second part, ok."], eager) == [
        "First of all the thing - ",
        "then more. ",
        "Next, second part, ok.",  # only the utterance's first segment is eager
    ]
    assert texts(["We counted about 1,000,000 people today. Ok."], eager)[0].startswith("We counted about 1,000,000")


def test_eager_off_waits_for_the_sentence():
    assert texts(["Well, I think that we should go, right after lunch."], PLAIN) == [
        "Well, I think that we should go, right after lunch."
    ]


# -- waiting, flush, client segmentation ---------------------------------------------------------


def test_text_that_waits_too_long_is_spoken_up_to_its_last_word():
    segmenter = Segmenter(SegmenterConfig(eager_first=False, max_delay_seconds=1.0))
    assert segmenter.push("Let me check the availab", 10.0) == []
    assert segmenter.deadline() == 11.0
    assert segmenter.poll(10.9) == []
    (segment,) = segmenter.poll(11.0)
    assert segment.text == "Let me check the "  # never inside a word
    assert segmenter.pending == "availab"
    assert segmenter.deadline() == 12.0  # what is left waits again
    assert [s.text for s in segmenter.push("ility. Ok", 11.5)] == ["availability. "]
    assert segmenter.deadline() == 12.5


def test_flush_speaks_everything_buffered():
    segmenter = Segmenter(PLAIN)
    assert [s.text for s in segmenter.push("One. Two. Three and a half", 0.0)] == ["One. ", "Two. "]
    assert [s.text for s in segmenter.flush(0.0)] == ["Three and a half"]  # mid-sentence
    assert [s.text for s in segmenter.push("Four. Five.", 0.0)] == ["Four. "]  # "Five." waits for what follows
    assert [s.text for s in segmenter.flush(0.0)] == ["Five."]
    assert segmenter.flush(0.0) == [] and segmenter.deadline() is None


def test_client_segmentation_cuts_only_at_flush():
    segmenter = Segmenter(SegmenterConfig(client_segments=True))
    assert segmenter.push("Hello there. How ", 0.0) == []
    assert segmenter.push("are you? Good", 0.0) == []
    assert segmenter.deadline() is None and segmenter.poll(1e9) == []
    assert [s.text for s in segmenter.flush(0.0)] == ["Hello there. How are you? Good"]
    assert segmenter.push("Next.", 0.0) == []
    assert [s.text for s in segmenter.flush(0.0)] == ["Next."]


# -- hygiene ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("**Arg #1** is *key*.", "Arg #1 is key."),
        ("# Plan\n## Step two\n", "Plan\nStep two\n"),
        ("- first\n* second\n+ third\n1. numbered\n", "first\nsecond\nthird\n1. numbered\n"),
        ("Read [the docs](https://x.example/a_b) now.", "Read the docs now."),
        ("![a cat](cat.png) sits.", "a cat sits."),
        ("```python\nprint(1)\n```\nDone.", "print(1)\nDone."),
        ("Use `make test` here.", "Use make test here."),
        ("__really__ and ~~not~~ snake_case", "really and not snake_case"),
        ("Great 👍🏽 job 👨‍👩‍👧 team ❤️ 1️⃣ 🇫🇷!", "Great  job  team  1 !"),  # a keycap keeps its digit
        ("> quoted line", "quoted line"),
    ],
)
def test_markup_and_emoji_are_not_spoken(raw, spoken):
    assert clean(raw).text == spoken


def test_spoken_characters_point_into_the_raw_text():
    raw = "**Arg #1** and [the docs](http://x.y) 👍🏽 ok"
    result = clean(raw)
    assert all(raw[p] == c for p, c in zip(result.positions, result.text))
    start = result.text.index("the docs")
    assert result.raw_span(start, start + len("the docs")) == (raw.index("the docs"), raw.index("the docs") + 8)


def test_an_emoji_split_across_fragments_is_still_removed():
    family = "👨‍👩‍👧"
    raw = f"Hi {family} there. Bye."
    for cut in range(len(raw) + 1):
        spoken = [s.text for s in segments([raw[:cut], raw[cut:]], SegmenterConfig())]
        assert spoken == ["Hi  there. ", "Bye."], cut


def test_markup_cleaning_can_be_switched_off():
    assert texts(["**Bold** 👍"], SegmenterConfig(clean_markup=False)) == ["**Bold** 👍"]


def test_config_is_checked():
    with pytest.raises(ValueError, match="max_delay_seconds"):
        SegmenterConfig(max_delay_seconds=0)
    with pytest.raises(ValueError, match="eager_min_words"):
        SegmenterConfig(eager_min_words=0)


SSML = SegmenterConfig(eager_first=False, ssml=True, clean_markup=False)


def test_ssml_segments_end_only_outside_elements():
    fragments = [
        "Call <say-as interpret-",
        'as="telephone">555. 0100</say-as>. Then <sub alias="Doctor',
        '">Dr.</sub> Who. Bye.',
    ]
    got = texts(fragments, SSML)
    assert got == [
        'Call <say-as interpret-as="telephone">555. 0100</say-as>. ',
        'Then <sub alias="Doctor">Dr.</sub> Who. ',
        "Bye.",
    ]
    assert_covers(segments(fragments, SSML), "".join(fragments))


def test_ssml_element_split_across_fragments_is_held_until_complete():
    segmenter = Segmenter(SSML)
    assert [s.text for s in segmenter.push("One. <prosody rate='slow'>Two. Three", 0.0)] == ["One. "]
    assert segmenter.flush(0.0) == []  # a flush speaks what is complete, and holds the open element
    assert segmenter.poll(1e9) == []  # nor does waiting cut inside it
    assert [s.text for s in segmenter.push(".</prosody> Four. ", 0.0)] == [
        "<prosody rate='slow'>Two. Three.</prosody> "
    ]


def test_ssml_left_open_at_the_utterance_end_is_still_spoken_so_its_error_shows():
    segmenter = Segmenter(SSML)
    assert [s.text for s in segmenter.push("Fine. <break time='1s'", 0.0)] == ["Fine. "]
    assert segmenter.flush(0.0) == []
    assert [s.text for s in segmenter.flush(0.0, last=True)] == ["<break time='1s'"]


def test_speak_tags_do_not_hold_segments():
    assert texts(["<speak>One. Two. ", "Three.</speak>"], SSML) == ["<speak>One. ", "Two. ", "Three.</speak>"]
