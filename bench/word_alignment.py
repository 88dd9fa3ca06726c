"""How well word timestamps find each word's phonemes, on the parity corpus (prints figures only).

For every word, the phonemes the aligner gave it (in its sentence, as the
voice speaks them) are compared with the word phonemized on its own:
``difflib`` similarity 1.0 means exactly the same sounds. Also prints how far
word boundaries can be off in time at most: one latent frame, since the
model's durations are whole frames.

    python -m bench.word_alignment
"""

from __future__ import annotations

import difflib
import statistics

from syrinx.server.engine import EngineConfig, default_voice_files, load_voice
from syrinx.server.engine.words import _is_sound, sound_ids
from tests.corpus import CORPUS


def main() -> None:
    voice = load_voice(default_voice_files(), EngineConfig())
    phonemizer = voice.phonemizer
    scores, shown = [], []
    for text in CORPUS:
        for sentence in phonemizer.sentences(text, with_words=True):
            sounds = sound_ids(sentence.phonemes, phonemizer._id_map)
            for word in sentence.words:
                in_context = [p for p, first, _ in sounds if word.first_id <= first < word.end_id]
                written = text[word.char_start : word.char_end]
                alone = [p for p in phonemizer._word_phonemes(written) if _is_sound(p)]
                score = difflib.SequenceMatcher(None, in_context, alone).ratio()
                scores.append(score)
                if score < 0.75:
                    shown.append(
                        f"  {written!r}: in context {''.join(in_context)!r}, alone {''.join(alone)!r} ({score:.2f})"
                    )
    exact = sum(s == 1.0 for s in scores) / len(scores)
    most = sum(s >= 0.75 for s in scores) / len(scores)
    print(f"{len(CORPUS)} texts, {len(scores)} words")
    print(
        f"words with exactly their own phonemes: {exact:.1%}; with at least 75% of them: {most:.1%}; "
        f"median similarity {statistics.median(scores):.2f}, lowest {min(scores):.2f}"
    )
    print("words below 0.75:")
    print("\n".join(shown) or "  none")
    print(
        f"time resolution: one latent frame = {voice.hop_length} samples = {voice.hop_length / voice.info.sample_rate * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
