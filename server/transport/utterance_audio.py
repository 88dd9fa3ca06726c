"""A live utterance's audio as a client hears it: encoded as one stream, each word with the piece where it starts.

Shared by the transports that speak live utterances (``syrinx.v1.LiveSynthesize``, Riva's
``SynthesizeOnline``); each turns the pieces into its own messages.
"""

from __future__ import annotations

from ..audio import AudioEncoderStream, EncodedChunk, OutputFormat
from ..service import WordTiming, split_words_before


class UtteranceEncoder:
    def __init__(self, output: OutputFormat) -> None:
        self._encoder = AudioEncoderStream(output)
        self._words: list[WordTiming] = []

    def push(self, samples, words: tuple[WordTiming, ...]) -> list[tuple[EncodedChunk, list[WordTiming]]]:
        """Encoded pieces of ``samples``; ``words`` (known so far) go with the piece where each starts."""
        self._words += words
        return [self._with_words(piece, last=False) for piece in self._encoder.push(samples)]

    def finish(self) -> list[tuple[EncodedChunk, list[WordTiming]]]:
        """The encoder's tail; the last piece takes every word left."""
        pieces = self._encoder.finish()
        return [self._with_words(piece, last=i == len(pieces) - 1) for i, piece in enumerate(pieces)]

    def _with_words(self, piece: EncodedChunk, last: bool) -> tuple[EncodedChunk, list[WordTiming]]:
        words, self._words = split_words_before(self._words, None if last else piece.start_sample + piece.num_samples)
        return piece, words
