"""What the eager first segment costs in intelligibility, and what it wins in first audio.

LiveSynthesize may end an utterance's first segment at a clause mark (after at least four
words), so the first audio does not wait for the end of a long first sentence. The sentence is
then spoken as two segments, each with its own prosody. This script measures both sides on our
own corpus, with the real engine in this process:

* intelligibility: each sentence spoken whole and spoken as its two eager segments (same seed),
  both transcribed by an offline recogniser (pocketsphinx, its bundled US English model), and
  the word error rate against the text, summed over the corpus;
* first audio: the engine's first chunk for the whole sentence and for its first segment,
  alternating in one process (medians), and how much earlier an LLM at 20/50/100 tokens a second
  gets to the clause mark than to the sentence's end (characters between them, at 4 characters
  a token).

    python -m bench.eager_asr            (needs `pip install pocketsphinx`: make bench-eager)
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import numpy as np
import soxr

from syrinx.server.engine import AudioChunk, Engine, EngineConfig, SynthesisOptions, VoiceCatalog
from syrinx.server.text import Segmenter, SegmenterConfig

# Voice-bot first sentences with a clause after four or more words, and the test corpus's own.
SENTENCES = (
    "I have checked the booking system for you, and your table for two is confirmed for tonight.",
    "Let me look at the status of your order, which left our warehouse early this morning.",
    "Thanks for waiting while I searched the flights, and I have found three of them for you.",
    "Your appointment with the doctor is on Monday morning, so please arrive a little early.",
    "I am sorry to hear that the package arrived damaged, and I will send a replacement today.",
    "The weather in Boston looks mild this weekend, with some rain on Sunday afternoon.",
    "Before we continue with the payment, could you confirm the last digits of your card?",
    "If you would like to change your seat, I can move you to a window on the left side.",
    "The store on Main Street closes at nine tonight, but the one downtown stays open later.",
    "Your refund has been approved by our billing team, and it should reach your account soon.",
    "I could not find an account under that name, so let me try your email address instead.",
    "We have two rooms left for those dates, one with a garden view and one facing the sea.",
    "Although the weather forecast had promised nothing but clear skies and gentle breezes for the entire "
    "weekend, the hikers found themselves caught in a sudden storm.",
    "Whether it rains or shines, the show must go on; that is what the director always says.",
    "I can not believe they have already left; we will have to catch up with them later.",
    "To reset your password, open the settings page and choose the security section.",
)
EAGER = SegmenterConfig()
SEED = 3


def eager_split(sentence: str) -> tuple[str, str]:
    """The sentence's eager first segment and the rest, as LiveSynthesize cuts it."""
    segmenter = Segmenter(EAGER)
    segments = segmenter.push(sentence, 0.0) + segmenter.flush(0.0)
    assert len(segments) == 2, (sentence, [s.text for s in segments])
    return segments[0].text, segments[1].text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


class Synth:
    def __init__(self) -> None:
        config = EngineConfig()
        self.voice = VoiceCatalog.load(config).get(None)
        self.engine = Engine(config)
        self.engine.warm_up(self.voice)

    def audio(self, text: str) -> np.ndarray:
        chunks = self.engine.stream(self.voice, text, SynthesisOptions(seed=SEED))
        return np.concatenate([c.samples for c in chunks if isinstance(c, AudioChunk)])

    def first_audio_ms(self, text: str) -> float:
        started = time.perf_counter()
        for event in self.engine.stream(self.voice, text, SynthesisOptions(seed=SEED)):
            if isinstance(event, AudioChunk):
                return (time.perf_counter() - started) * 1e3
        raise RuntimeError("no audio")


def transcribe(decoder, audio: np.ndarray, rate: int) -> list[str]:
    pcm = np.clip(soxr.resample(audio, rate, 16000) * 32767, -32768, 32767).astype(np.int16)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return words(hypothesis.hypstr) if hypothesis is not None else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="first-audio rounds per sentence")
    args = parser.parse_args()
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000)
    synth = Synth()
    rate = synth.voice.info.sample_rate
    totals = {"whole": 0, "eager": 0}
    reference_words = 0
    whole_ms, first_ms, chars_saved = [], [], []
    print(f"{'errors whole':>12} {'errors eager':>12}  first segment | rest")
    for sentence in SENTENCES:
        first, rest = eager_split(sentence)
        reference = words(sentence)
        reference_words += len(reference)
        whole = word_errors(reference, transcribe(decoder, synth.audio(sentence), rate))
        split = word_errors(
            reference, transcribe(decoder, np.concatenate([synth.audio(first), synth.audio(rest)]), rate)
        )
        totals["whole"] += whole
        totals["eager"] += split
        print(f"{whole:>12} {split:>12}  {first.strip()} | {rest.strip()}")
        for _ in range(args.rounds):  # alternating, so the machine's drift lands on both
            whole_ms.append(synth.first_audio_ms(sentence))
            first_ms.append(synth.first_audio_ms(first))
        chars_saved.append(len(sentence) - len(first))
    print(
        f"\nword error rate over {len(SENTENCES)} sentences ({reference_words} words): "
        f"whole {totals['whole'] / reference_words:.1%}, eager split {totals['eager'] / reference_words:.1%}"
    )
    print(
        f"engine first audio, median: whole sentence {statistics.median(whole_ms):.1f} ms, "
        f"first segment {statistics.median(first_ms):.1f} ms"
    )
    chars = statistics.median(chars_saved)
    for tokens_per_s in (20, 50, 100):
        print(
            f"an LLM at {tokens_per_s} tokens/s (4 characters each) reaches the clause mark "
            f"{chars / 4 / tokens_per_s * 1e3:.0f} ms before the sentence's end (median)"
        )


if __name__ == "__main__":
    main()
