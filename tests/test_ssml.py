"""The SSML reader and pronunciation lexicons: pure text logic, no model, no gRPC."""

from __future__ import annotations

import pytest

from syrinx.server.text.lexicon import Lexicon, LexiconError, parse_lexicon_file, parse_riva_dictionary
from syrinx.server.text.speech import Pause, Pronounced, SentenceEnd, Speech, Spelled, Words
from syrinx.server.text.ssml import MAX_BREAK_SECONDS, SsmlError, parse_ssml


def spoken(source: str, fragment: bool = False) -> list:
    """The pieces of ``source``, text pieces as (kind, text, the request characters they came from, rate)."""
    out = []
    for piece in parse_ssml(source, fragment).pieces:
        if isinstance(piece, Words | Spelled):
            origin = "".join(source[a:b] for a, b in dict.fromkeys(piece.sources))
            out.append((type(piece).__name__, piece.text, origin, piece.rate))
        elif isinstance(piece, Pronounced):
            out.append(("Pronounced", piece.ipa, source[piece.source[0] : piece.source[1]], piece.rate))
        else:
            out.append(piece)
    return out


def test_text_keeps_the_request_characters_it_came_from():
    source = "<speak>Fish &amp; chips,\n caf&#233;.</speak>"
    ((kind, text, origin, rate),) = spoken(source)
    assert (kind, text, rate) == ("Words", "Fish & chips,\n café.", 1.0)
    assert origin == "Fish &amp; chips,\n caf&#233;."  # entities map to the whole reference


def test_paragraphs_and_sentences_end_sentences():
    pieces = spoken("<speak><p><s>One</s><s>two</s></p>three</speak>")
    assert [p if isinstance(p, SentenceEnd) else p[1] for p in pieces] == [
        SentenceEnd(),
        SentenceEnd(),
        "One",
        SentenceEnd(),
        SentenceEnd(),
        "two",
        SentenceEnd(),
        SentenceEnd(),
        "three",
    ]


@pytest.mark.parametrize(
    ("attributes", "seconds"),
    [('time="250ms"', 0.25), ('time="1.5s"', 1.5), ('strength="none"', 0.0), ('strength="x-strong"', 1.0), ("", 0.4)],
)
def test_breaks(attributes, seconds):
    assert spoken(f"<speak>a<break {attributes}/>b</speak>")[1] == Pause(seconds)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ('<break time="11s"/>', f"longer than the {MAX_BREAK_SECONDS:g} s"),
        ('<break time="soon"/>', "is not a duration"),
        ('<break strength="huge"/>', "is not one of"),
        ('<say-as interpret-as="poem">x</say-as>', "is not supported"),
        ('<say-as interpret-as="date">31/31/2020</say-as>', "cannot read"),
        ('<say-as interpret-as="digits">none</say-as>', "holds no digits"),
        ("<sub>WWW</sub>", "needs an alias"),
        ('<phoneme alphabet="x-sampa" ph="h@">hello</phoneme>', 'alphabet="ipa"'),
        ("<phoneme>hello</phoneme>", "needs ph="),
        ('<prosody rate="warp">x</prosody>', "is not a rate"),
        ("<speak>x</speak>", "cannot be nested"),
    ],
)
def test_bad_elements_name_where_they_are(element, message):
    with pytest.raises(SsmlError, match=message) as caught:
        parse_ssml(f"<speak>\n  Before. {element}</speak>")
    assert "line 2, column 11" in str(caught.value)


def test_markup_inside_say_as_is_refused_where_it_is():
    with pytest.raises(SsmlError, match="line 1, column 43: <say-as> may hold only text, not <break>"):
        parse_ssml('<speak><say-as interpret-as="characters">a<break/>b</say-as></speak>')


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("<speak>unclosed <s>text</speak>", "line 1, column 26: mismatched tag"),
        ("<speak>\n<break time='1s'>", "line 2"),
        ("plain text", "line 1, column 1"),
        ("<voice>x</voice>", "root element must be <speak>"),
        ('<!DOCTYPE speak [<!ENTITY big "x">]><speak>&big;</speak>', "document type declarations"),
    ],
)
def test_malformed_ssml_is_refused_with_its_position(source, where):
    with pytest.raises(SsmlError, match=where):
        parse_ssml(source)


def test_unknown_elements_speak_their_text_and_marks_say_nothing():
    pieces = spoken('<speak><emphasis level="strong">really</emphasis> <mark name="m"/>good</speak>')
    assert [p[1] for p in pieces] == ["really good"]


def test_say_as_spelling_keeps_each_characters_source():
    source = (
        '<speak><say-as interpret-as="characters">I B M</say-as> <say-as interpret-as="digits">4-2</say-as></speak>'
    )
    pieces = parse_ssml(source).pieces
    spelled = [p for p in pieces if isinstance(p, Spelled)]
    assert [p.text for p in spelled] == ["IBM", "42"]
    assert [source[a:b] for a, b in spelled[0].sources] == ["I", "B", "M"]
    assert [source[a:b] for a, b in spelled[1].sources] == ["4", "2"]


@pytest.mark.parametrize(
    ("kind", "content", "said"),
    [
        ("cardinal", "1,234", "1234"),
        ("ordinal", "22", "22nd"),
        ("ordinal", "13", "13th"),
        ("date", "2024-03-05", "March 5th, 2024"),
        ('date" format="dmy', "5/3/2024", "the 5th of March, 2024"),
        ('date" format="md', "12/25", "December 25th"),
        ("time", "14:30", "14:30"),
        ("time", "9am", "9 AM"),
        ("time", "7:00", "7 o'clock"),
    ],
)
def test_say_as_wording(kind, content, said):
    source = f'<speak><say-as interpret-as="{kind}">{content}</say-as></speak>'
    ((_, text, origin, _),) = spoken(source)
    assert (text, origin) == (said, content)


def test_telephone_numbers_are_digits_in_groups():
    pieces = spoken('<speak><say-as interpret-as="telephone">+1 (555) 010</say-as></speak>')
    assert pieces == [
        ("Words", "plus ", "+", 1.0),
        ("Spelled", "1", "1", 1.0),
        Pause(0.2),
        ("Spelled", "555", "555", 1.0),
        Pause(0.2),
        ("Spelled", "010", "010", 1.0),
    ]


def test_sub_and_phoneme_stand_for_their_content():
    source = (
        '<speak><sub alias="World Wide Web">WWW</sub> <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme></speak>'
    )
    assert spoken(source) == [
        ("Words", "World Wide Web ", "WWW ", 1.0),
        ("Pronounced", "təˈmɑːtoʊ", "tomato", 1.0),
    ]


def test_prosody_rates_multiply_and_stay_in_range():
    source = '<speak><prosody rate="200%">fast <prosody rate="x-fast">faster <prosody rate="400%">most</prosody></prosody></prosody> normal</speak>'
    assert [(p[1], p[3]) for p in spoken(source)] == [("fast ", 2.0), ("faster ", 3.0), ("most", 4.0), (" normal", 1.0)]


def test_fragments_have_an_implied_root_and_ignore_speak_tags():
    assert spoken("Hi <break/>there", fragment=True) == [
        ("Words", "Hi ", "Hi ", 1.0),
        Pause(0.4),
        ("Words", "there", "there", 1.0),
    ]
    pieces = spoken("<speak>Hi.", fragment=True)
    assert [p[1].strip() for p in pieces] == ["Hi."]
    with pytest.raises(SsmlError, match="line 1"):
        parse_ssml('Hi <say-as interpret-as="digits">12', fragment=True)


# -- lexicons ----------------------------------------------------------------------------------


def _said(speech: Speech, text: str) -> list[tuple[str, str]]:
    return [
        ("ipa", p.ipa) if isinstance(p, Pronounced) else ("text", p.text)
        for p in speech.pieces
        if isinstance(p, Pronounced | Words)
    ]


def test_lexicon_matches_whole_words_case_insensitively():
    lexicon = Lexicon.of([("Syrinx", "ˈsɪɹɪŋks"), ("node.js", "noʊd dʒeɪ ɛs")])
    text = "SYRINX, syrinx! Syrinxes use Node.js."
    speech = lexicon.apply(Speech.plain(text))
    assert _said(speech, text) == [
        ("ipa", "ˈsɪɹɪŋks"),
        ("text", ", "),
        ("ipa", "ˈsɪɹɪŋks"),
        ("text", "! Syrinxes use "),
        ("ipa", "noʊd dʒeɪ ɛs"),
        ("text", "."),
    ]
    sources = [p.source for p in speech.pieces if isinstance(p, Pronounced)]
    assert [text[a:b] for a, b in sources] == ["SYRINX", "syrinx", "Node.js"]


def test_lexicon_leaves_markup_readings_alone():
    speech = parse_ssml('<speak><sub alias="x">Syrinx</sub> <phoneme ph="a">Syrinx</phoneme> Syrinx</speak>')
    applied = Lexicon.of([("syrinx", "ˈsɪɹɪŋks")]).apply(speech)
    assert [p.ipa for p in applied.pieces if isinstance(p, Pronounced)] == ["a", "ˈsɪɹɪŋks"]


def test_request_entries_win_over_file_entries():
    files = Lexicon.of([("tomato", "təˈmeɪtoʊ"), ("potato", "pəˈteɪtoʊ")])
    request = Lexicon.of([("Tomato", "təˈmɑːtoʊ")])
    assert request.over(files).entries == {"tomato": "təˈmɑːtoʊ", "potato": "pəˈteɪtoʊ"}


@pytest.mark.parametrize(("word", "ipa"), [("two words", "tuː"), ("", "x"), ("-dash", "x"), ("word", " ")])
def test_bad_entries_are_refused(word, ipa):
    with pytest.raises(LexiconError):
        Lexicon.of([(word, ipa)])


def test_lexicon_files_name_the_bad_line():
    text = "# brand names\nSyrinx  ˈsɪɹɪŋks\n\nlonely\n"
    with pytest.raises(LexiconError, match="en.lexicon, line 4"):
        parse_lexicon_file(text, "en.lexicon")
    assert parse_lexicon_file(text.replace("lonely", "Piper  ˈpaɪpɚ"), "x").entries == {
        "syrinx": "ˈsɪɹɪŋks",
        "piper": "ˈpaɪpɚ",
    }


def test_riva_dictionary_format():
    assert parse_riva_dictionary("Syrinx  ˈsɪɹɪŋks,NVIDIA  ɛnˈvɪdiə").entries == {
        "syrinx": "ˈsɪɹɪŋks",
        "nvidia": "ɛnˈvɪdiə",
    }
    assert not parse_riva_dictionary("")
    with pytest.raises(LexiconError, match="custom_dictionary"):
        parse_riva_dictionary("lonely")
