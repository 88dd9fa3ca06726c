"""The streaming VITS engine: batched sentence encoding and batched windowed decoding.

Work comes in two kinds of step, each batched across sentences and streams:

* ``encode``: text encoder + duration predictor for whole sentences (one padded
  forward pass), then expansion of the priors to latent frames and the prior
  noise. Attention is global, so this part cannot be windowed; but past the
  attention of the encoder's last block everything is local, so a long sentence
  can be encoded *head first*: its first phonemes' frames, enough for the first
  decode window, and the rest (``finish``) once that window's audio is out.
* ``decode``: flow (reverse) + HiFi-GAN for windows of latent frames. Each
  window is computed with enough context on both sides (the receptive fields
  below) that concatenating windows gives exactly the whole-sentence audio.

Randomness is drawn per sentence from its own generator on the CPU, so a seed
gives the same audio whatever else shares the batch and on any device.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .config import EngineConfig
from .cuda import GraphCache, Inputs, Outputs, use_ieee_float32
from .errors import InvalidOptionError, StartupError
from .phonemizer import PhonemizedSentence
from .vits.model import ReceptiveField
from .voice import Voice
from .words import WordSpan

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request controls; ``None`` means the voice's own default."""

    length_scale: float | None = None  # > 1 speaks slower
    noise_scale: float | None = None
    noise_w: float | None = None
    speaker_id: int | None = None
    seed: int | None = None
    word_timestamps: bool = False  # also map the text's words to phoneme ids (SentenceStart.words)

    def __post_init__(self) -> None:
        if self.length_scale is not None and not 0.1 <= self.length_scale <= 10.0:
            raise InvalidOptionError(f"length scale must be between 0.1 and 10, got {self.length_scale}")
        for name in ("noise_scale", "noise_w"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 2.0:
                raise InvalidOptionError(f"{name} must be between 0 and 2, got {value}")


@dataclass
class SentenceRequest:
    """One sentence to encode, with its resolved controls and its own random stream."""

    voice: Voice
    sentence: PhonemizedSentence
    length_scale: float
    noise_scale: float
    noise_w: float
    speaker_id: int | None
    generator: torch.Generator


class _PriorNoise:
    """A sentence's prior noise, drawn from its generator in blocks of frames, in time order.

    So the frames a sentence encoded head first gets first are the ones it would get
    encoded whole, and the seed alone fixes the audio.
    """

    BLOCK_FRAMES = 16  # small: the frames drawn past the last one taken are wasted work

    def __init__(self, generator: torch.Generator, channels: int) -> None:
        self._generator = generator
        self._left = torch.empty(channels, 0)  # drawn, not yet taken

    def take(self, frames: int) -> torch.Tensor:
        """The next ``frames`` frames of noise, ``(channels, frames)``."""
        parts = [self._left]
        drawn = self._left.shape[1]
        while drawn < frames:
            parts.append(torch.randn(self.BLOCK_FRAMES, self._left.shape[0], generator=self._generator).t())
            drawn += self.BLOCK_FRAMES
        noise = torch.cat(parts, dim=1)
        self._left = noise[:, frames:]
        return noise[:, :frames]


@dataclass(frozen=True)
class _EncodeInputs:
    """A padded batch of sentences as the model takes it (noise already drawn)."""

    ids: torch.Tensor
    mask: torch.Tensor
    duration_noise: torch.Tensor
    scales: torch.Tensor
    g: torch.Tensor | None
    padded: bool
    lengths: list[int]


@dataclass(frozen=True)
class _Rest:
    """What finishing a sentence encoded head first takes."""

    hidden: torch.Tensor  # the text encoder's state below its last block
    inputs: _EncodeInputs
    noise: _PriorNoise
    noise_scale: float


@dataclass
class EncodedSentence:
    voice: Voice
    sentence: PhonemizedSentence
    z_p: torch.Tensor  # (inter_channels, frames), float32 on the voice's device
    durations: np.ndarray  # frames per phoneme id (of the head only, while the rest is to come)
    speaker_id: int | None
    rest: _Rest | None = None  # set while only the head is encoded (see Engine.finish)

    @property
    def complete(self) -> bool:
        return self.rest is None

    @property
    def num_frames(self) -> int:
        """Frames known so far: the whole sentence's once ``complete``."""
        return int(self.z_p.shape[-1])

    @property
    def num_samples(self) -> int:
        return self.num_frames * self.voice.hop_length


@dataclass(frozen=True)
class DecodeWindow:
    """Frames ``[start, end)`` of a sentence's audio (``hop_length`` samples per frame)."""

    sentence: EncodedSentence
    start: int
    end: int


@dataclass(frozen=True)
class SentenceStart:
    """Emitted before a sentence's audio: what it says and how long each phoneme id lasts."""

    index: int
    phonemes: tuple[str, ...]
    phoneme_ids: tuple[int, ...]
    phoneme_samples: np.ndarray  # samples per phoneme id, sums to the sentence's sample count
    start_sample: int  # offset of the sentence in the whole stream
    num_samples: int
    words: tuple[WordSpan, ...] = ()  # the words this sentence starts, if asked for

    def word_samples(self, word: WordSpan) -> tuple[int, int]:
        """Where ``word`` is in the stream: samples [start, end) at the voice's rate."""
        before = int(self.phoneme_samples[: word.first_id].sum())
        return self.start_sample + before, self.start_sample + before + int(
            self.phoneme_samples[word.first_id : word.end_id].sum()
        )

    @classmethod
    def of(cls, encoded: EncodedSentence, index: int, start_sample: int) -> SentenceStart:
        if not encoded.complete:
            raise ValueError("a sentence encoded head first has no SentenceStart until Engine.finish")
        return cls(
            index=index,
            phonemes=encoded.sentence.phonemes,
            phoneme_ids=encoded.sentence.phoneme_ids,
            phoneme_samples=encoded.durations * encoded.voice.hop_length,
            start_sample=start_sample,
            num_samples=encoded.num_samples,
            words=encoded.sentence.words,
        )


@dataclass(frozen=True)
class AudioChunk:
    samples: np.ndarray  # float32 in [-1, 1] at the voice's sample rate
    sentence_index: int
    start_sample: int  # offset in the whole stream
    last_in_sentence: bool
    last_in_stream: bool = False


# Lengths are rounded up to these multiples. oneDNN builds a convolution kernel per
# input shape (about as costly as running it on a short window) and keeps it, and our
# prepacked weights are looked up by shape; rounding makes shapes repeat across
# sentences and windows, so those kernels are reused and the memory they hold is bounded.
ID_BUCKET = 16
# Frame lengths: multiples of 8 up to 64 frames, then a quarter of the octave they are in
# (16 up to 128, 32 up to 256, 64 up to 512...), so the number of lengths grows with the
# logarithm of the longest, at most 25% extra frames (see ``_frame_bucket``).
FRAME_BUCKET = 8
# What warm_up speaks: a sentence long enough to reach the decoder's larger windows.
WARM_UP_TEXT = "Warming up the voice so the first caller hears it at once."

# Non-streaming synthesis still decodes in windows of this many frames, one after
# another: on the CPU a 1000-frame decode took 1.7x longer than the same frames
# in 128-512-frame windows (its activations no longer fit in cache).
WHOLE_WINDOW_FRAMES = 256

# CUDA graphs kept (single-item steps; their shapes are bucketed, so few repeat often).
MAX_CUDA_GRAPHS = 64


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _frame_bucket(n: int) -> int:
    """``n`` frames rounded up to one of a few lengths (see ``FRAME_BUCKET``)."""
    step = max(FRAME_BUCKET, (1 << (max(n, 1) - 1).bit_length()) // 8)
    return _round_up(n, step)


def _keep_bucket(lo: int, hi: int, length: int) -> tuple[int, int]:
    """``[lo, hi)`` of ``length`` frames widened to multiples of ``FRAME_BUCKET``: a step's
    ``keep`` is part of its shapes, and computing a few more frames than kept is exact."""
    return lo - lo % FRAME_BUCKET, min(length, _round_up(hi, FRAME_BUCKET))


def _widen(lo: int, hi: int, frames: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` towards a bucketed length (``_frame_bucket``) with real frames,
    right side first.

    Extra context never changes the exact core of a window; where the sentence is
    too short the batch is padded (and masked) instead.
    """
    extra = _frame_bucket(hi - lo) - (hi - lo)
    right = min(extra, frames - hi)
    left = min(extra - right, lo)
    return lo - left, hi + right


def _window_spans(start: int, end: int, frames: int, field: ReceptiveField) -> tuple[int, int, int, int]:
    """The frames the decoder and the flow run over for core frames ``[start, end)`` of a
    sentence of ``frames``: ``(decoder_lo, decoder_hi, flow_lo, flow_hi)``."""
    dec_lo, dec_hi = _widen(max(0, start - field.decoder_left), min(frames, end + field.decoder_right), frames)
    return dec_lo, dec_hi, *_widen(max(0, dec_lo - field.flow), min(frames, dec_hi + field.flow), frames)


def _id_scales(request: SentenceRequest) -> torch.Tensor:
    """Each id's length scale: the sentence's, divided by any rate set on the id (SSML prosody)."""
    ids = len(request.sentence.phoneme_ids)
    if not request.sentence.rates:
        return torch.full((ids,), request.length_scale, dtype=torch.float32)
    return request.length_scale / torch.tensor(request.sentence.rates, dtype=torch.float32)


def _with_pauses(durations: torch.Tensor, sentence: PhonemizedSentence, voice: Voice, first: int = 0) -> torch.Tensor:
    """``durations`` (frames of ids ``first`` on) with the sentence's set pauses in place of the
    predicted ones: a pause of set length is exact to a frame, whatever the model would say."""
    if not sentence.pauses:
        return durations
    frames_per_second = voice.info.sample_rate / voice.hop_length
    durations = durations.clone()
    for index, seconds in sentence.pauses:
        if first <= index < first + len(durations):
            durations[index - first] = round(seconds * frames_per_second)
    return durations


def _stack_padded(items: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    return torch.stack([F.pad(t, (0, length - t.shape[-1])) for t in items])


def _length_mask(lengths: Sequence[int], total: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    positions = torch.arange(total, device=device)
    limits = torch.tensor(list(lengths), device=device)
    return (positions[None, :] < limits[:, None]).unsqueeze(1).to(dtype)


class Engine:
    def __init__(self, config: EngineConfig, graphs: GraphCache | None = None) -> None:
        """``graphs`` replaces the CUDA graph cache the config asks for (tests record calls on the CPU)."""
        self.config = config
        if config.device != "cpu" and not torch.cuda.is_available():
            built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise StartupError(
                f"--device {config.device}: no CUDA device is available (torch {torch.__version__}, {built}); "
                "run on a GPU node with the NVIDIA driver, or use --device cpu"
            )
        if config.threads:
            torch.set_num_threads(config.threads)  # process-wide: torch has one intra-op pool
        if config.device == "cpu":
            keep_freed_memory()
        else:
            use_ieee_float32()
        if graphs is None and config.device != "cpu" and config.cuda_graphs:
            graphs = GraphCache(MAX_CUDA_GRAPHS)
        self._graphs = graphs

    def _run_step(self, key: Hashable, items: int, fn: Callable[..., Outputs], inputs: Inputs) -> Outputs:
        """``fn(*inputs)`` for a step of ``items`` sentences or windows; on CUDA a single item's
        step is replayed from a CUDA graph (see ``cuda``). Outputs must be used up before the next step."""
        if self._graphs is None or items != 1:
            return tuple(fn(*inputs))
        return self._graphs.run(key, fn, inputs)

    # -- requests -------------------------------------------------------------------------

    def sentence_requests(
        self, voice: Voice, sentences: Sequence[PhonemizedSentence], options: SynthesisOptions
    ) -> list[SentenceRequest]:
        """Resolve controls and give each sentence its random stream (seeded or fresh)."""
        defaults = voice.info.defaults
        speaker_id = voice.speaker_id(options.speaker_id)
        base_seed = options.seed if options.seed is not None else secrets.randbits(62)
        requests = []
        for index, sentence in enumerate(sentences):
            generator = torch.Generator().manual_seed((base_seed * 1_000_003 + index) % (2**63))
            requests.append(
                SentenceRequest(
                    voice=voice,
                    sentence=sentence,
                    length_scale=defaults.length_scale if options.length_scale is None else options.length_scale,
                    noise_scale=defaults.noise_scale if options.noise_scale is None else options.noise_scale,
                    noise_w=defaults.noise_w if options.noise_w is None else options.noise_w,
                    speaker_id=speaker_id,
                    generator=generator,
                )
            )
        return requests

    # -- encode step --------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, requests: Sequence[SentenceRequest]) -> list[EncodedSentence]:
        """Encode sentences in padded batches (one per voice); results follow ``requests``' order.

        With ``config.head_first``, a long sentence comes back encoded head first (not
        ``complete``): its first ids' frames, enough to decode its first window exactly (see
        ``_head_ids``). :meth:`finish` encodes the rest. Sentences whose words are to be timed
        are always encoded whole: their word timings go out with the first chunk.
        """
        return _per_voice(requests, lambda r: r.voice, self._encode_voice)

    @torch.inference_mode()
    def finish(self, sentences: Sequence[EncodedSentence]) -> list[EncodedSentence]:
        """The whole of each sentence encoded head first (complete ones come back as they are).

        The head's frames are kept as they were, so audio already decoded from them stays valid.
        """
        return [s if s.complete else self._finish(s) for s in sentences]

    def _encode_voice(self, voice: Voice, batch: Sequence[SentenceRequest]) -> list[EncodedSentence]:
        heads = [self._head_ids(request) for request in batch]
        whole = iter(self._encode_batch(voice, [r for r, head in zip(batch, heads) if head is None]))
        return [next(whole) if head is None else self._encode_head(voice, r, head) for r, head in zip(batch, heads)]

    def _first_window_reach(self, voice: Voice) -> int:
        """Frames a head must have for its first window to decode as it would from the whole
        sentence: one more than the flow's span for that window in an endless sentence
        (``decode`` refuses a head's window whose span reaches the head's end)."""
        *_, flow_hi = _window_spans(0, self.config.chunks.first_frames, sys.maxsize, voice.model.receptive_field)
        return flow_hi + 1

    def _head_ids(self, request: SentenceRequest) -> int | None:
        """How many of the sentence's first ids to encode first, or ``None`` to encode it whole.

        Every id lasts at least one frame (its duration is the ceiling of a positive width), so
        this many ids cover the first window's reach. The head's last block and duration
        predictor run over ``head + head_margin`` positions, a multiple of ``ID_BUCKET``; the
        split is made only where that is at most half the sentence, as it then saves 10-20%
        of a long sentence's encode before its first audio, and its cost (those positions,
        encoded again with the rest) is small against the sentence's.
        """
        if not self.config.head_first or request.sentence.words:
            return None
        margin = request.voice.model.head_margin
        rows = _round_up(self._first_window_reach(request.voice) + margin, ID_BUCKET)
        if 2 * rows > len(request.sentence.phoneme_ids):
            return None
        return rows - margin

    def _encode_inputs(self, voice: Voice, batch: Sequence[SentenceRequest]) -> _EncodeInputs:
        """The batch padded to a multiple of ``ID_BUCKET`` ids, with each sentence's duration noise."""
        device, model = voice.device, voice.model
        lengths = [len(r.sentence.phoneme_ids) for r in batch]
        longest = _round_up(max(lengths), ID_BUCKET)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        for row, request in enumerate(batch):
            ids[row, : lengths[row]] = torch.tensor(request.sentence.phoneme_ids)
        noise_channels = 2 if model.stochastic_durations else 1
        duration_noise = _stack_padded(
            [torch.randn(noise_channels, n, generator=r.generator) * r.noise_w for r, n in zip(batch, lengths)], longest
        )
        return _EncodeInputs(
            ids=ids.to(device),
            mask=_length_mask(lengths, longest, device, torch.float32),
            duration_noise=duration_noise.to(device),
            scales=_stack_padded([_id_scales(r) for r in batch], longest).to(device),
            g=self._speakers(voice, [r.speaker_id for r in batch], torch.float32),
            padded=min(lengths) != longest,
            lengths=lengths,
        )

    def _encode_batch(self, voice: Voice, batch: Sequence[SentenceRequest]) -> list[EncodedSentence]:
        if not batch:
            return []
        model = voice.model
        inputs = self._encode_inputs(voice, batch)
        padded = inputs.padded

        def encode_step(ids, mask, noise, scales, g):
            encoded = model.encode(ids, mask, noise, scales, g, padded=padded)
            return encoded.m, encoded.logs, encoded.durations

        m_all, logs_all, durations = self._run_step(
            ("encode", model, len(batch), inputs.ids.shape[1], padded, inputs.g is not None),
            len(batch),
            encode_step,
            (inputs.ids, inputs.mask, inputs.duration_noise, inputs.scales, inputs.g),
        )
        durations = durations.cpu()
        sentences = []
        for row, request in enumerate(batch):
            n = inputs.lengths[row]
            d = _with_pauses(durations[row, :n], request.sentence, voice)
            noise = _PriorNoise(request.generator, model.inter_channels)
            if int(d.sum()) > 0:
                z_p = self._prior(voice, m_all[row, :, :n], logs_all[row, :, :n], d, noise, request.noise_scale)
            else:  # VITS still makes one (silent-prior) frame
                z_p = (noise.take(1) * request.noise_scale).to(voice.device)
            sentences.append(
                EncodedSentence(voice, request.sentence, z_p, d.numpy().astype(np.int64), request.speaker_id)
            )
        return sentences

    def _encode_head(self, voice: Voice, request: SentenceRequest, head: int) -> EncodedSentence:
        """The sentence's first ``head`` ids (a batch of one; never a CUDA graph: ``hidden`` is kept)."""
        model = voice.model
        inputs = self._encode_inputs(voice, [request])
        hidden = model.enc_p.below_top(inputs.ids, inputs.mask, inputs.padded)
        part = model.encode_top(
            hidden, inputs.mask, inputs.duration_noise, inputs.scales, inputs.g, inputs.padded, head=head
        )
        d = _with_pauses(part.durations[0].cpu(), request.sentence, voice)
        noise = _PriorNoise(request.generator, model.inter_channels)
        sentence = EncodedSentence(
            voice,
            request.sentence,
            self._prior(voice, part.m[0], part.logs[0], d, noise, request.noise_scale),
            d.numpy().astype(np.int64),
            request.speaker_id,
            rest=_Rest(hidden, inputs, noise, request.noise_scale),
        )
        if sentence.num_frames < self._first_window_reach(voice):  # only if some width underflowed to 0
            return self._finish(sentence)
        return sentence

    def _finish(self, sentence: EncodedSentence) -> EncodedSentence:
        rest, voice = sentence.rest, sentence.voice
        assert rest is not None
        inputs = rest.inputs
        whole = voice.model.encode_top(
            rest.hidden, inputs.mask, inputs.duration_noise, inputs.scales, inputs.g, inputs.padded
        )
        head, n = len(sentence.durations), inputs.lengths[0]
        d = _with_pauses(whole.durations[0, head:n].cpu(), sentence.sentence, voice, first=head)
        z_rest = self._prior(voice, whole.m[0, :, head:n], whole.logs[0, :, head:n], d, rest.noise, rest.noise_scale)
        return EncodedSentence(
            voice,
            sentence.sentence,
            torch.cat([sentence.z_p, z_rest], dim=1),
            np.concatenate([sentence.durations, d.numpy().astype(np.int64)]),
            sentence.speaker_id,
        )

    @staticmethod
    def _prior(
        voice: Voice,
        m: torch.Tensor,
        logs: torch.Tensor,
        durations: torch.Tensor,
        noise: _PriorNoise,
        noise_scale: float,
    ) -> torch.Tensor:
        """Per-id priors ``(channels, ids)`` expanded to frames, plus their scaled noise: ``z_p``."""
        index = torch.repeat_interleave(torch.arange(len(durations)), durations).to(voice.device)
        m, logs = m[:, index], logs[:, index]
        return m + noise.take(m.shape[-1]).to(voice.device) * torch.exp(logs) * noise_scale

    @staticmethod
    def _speakers(voice: Voice, speaker_ids: Sequence[int | None], dtype: torch.dtype) -> torch.Tensor | None:
        if voice.model.emb_g is None:
            return None
        ids = torch.tensor([s or 0 for s in speaker_ids], device=voice.device)
        g = voice.model.speaker_embedding(ids)
        return None if g is None else g.to(dtype)

    # -- decode step --------------------------------------------------------------------

    @torch.inference_mode()
    def decode(self, windows: Sequence[DecodeWindow]) -> list[np.ndarray]:
        """Audio (float32) for each window, batching windows of the same voice together."""
        return _per_voice(windows, lambda w: w.sentence.voice, self._decode_batch)

    def _decode_batch(self, voice: Voice, batch: Sequence[DecodeWindow]) -> list[np.ndarray]:
        field = voice.model.receptive_field
        hop = voice.hop_length
        spans = []
        for w in batch:
            frames = w.sentence.num_frames
            if not 0 <= w.start < w.end <= frames:
                raise ValueError(f"window [{w.start}, {w.end}) outside sentence of {frames} frames")
            dec_lo, dec_hi, flow_lo, flow_hi = _window_spans(w.start, w.end, frames, field)
            if not w.sentence.complete and flow_hi >= frames:  # it would read the missing rest as silence
                raise ValueError(f"window [{w.start}, {w.end}) reads past the {frames} frames encoded so far")
            spans.append((dec_lo, dec_hi, flow_lo, flow_hi))

        g = self._speakers(voice, [w.sentence.speaker_id for w in batch], torch.float32)
        flow_lengths = [fh - fl for _, _, fl, fh in spans]
        longest = _frame_bucket(max(flow_lengths))
        z_p = _stack_padded([w.sentence.z_p[:, fl:fh] for w, (_, _, fl, fh) in zip(batch, spans)], longest)
        # The flow only has to produce the decoder's spans (relative to each flow span).
        flow_keep = _keep_bucket(
            min(dl - fl for dl, _, fl, _ in spans), max(dh - fl for _, dh, fl, _ in spans), longest
        )
        model = voice.model
        (z,) = self._run_step(
            ("flow", model, len(batch), longest, flow_keep, g is not None),
            len(batch),
            lambda z_p, mask, g: (model.flow.reverse(z_p, mask, g, flow_keep),),
            (z_p, _length_mask(flow_lengths, longest, voice.device, torch.float32), g),
        )

        dec_lengths = [dh - dl for dl, dh, _, _ in spans]
        longest = _frame_bucket(max(dec_lengths))
        z_dec = _stack_padded(
            [z[row, :, dl - fl - flow_keep[0] : dh - fl - flow_keep[0]] for row, (dl, dh, fl, _) in enumerate(spans)],
            longest,
        ).to(voice.dtype)
        padded = any(n != longest for n in dec_lengths)
        lengths = torch.tensor(dec_lengths, device=voice.device) if padded else None
        # Frames every item of the batch needs, relative to its decoder span.
        keep = _keep_bucket(
            min(w.start - dl for w, (dl, *_) in zip(batch, spans)),
            max(w.end - dl for w, (dl, *_) in zip(batch, spans)),
            longest,
        )
        g_dec = g.to(voice.dtype) if g is not None else None
        (audio,) = self._run_step(
            ("decode", model, len(batch), longest, keep, lengths is not None, g is not None),
            len(batch),
            lambda z, lengths, g: (model.dec(z, lengths, g, keep),),
            (z_dec, lengths, g_dec),
        )
        samples = audio.float().cpu().numpy()
        return [
            np.ascontiguousarray(samples[row, (w.start - dl - keep[0]) * hop : (w.end - dl - keep[0]) * hop])
            for row, (w, (dl, _, _, _)) in enumerate(zip(batch, spans))
        ]

    def warm_up(self, voice: Voice) -> None:
        """One real synthesis, so the first request does not pay for kernel selection."""
        for _ in self.stream(voice, WARM_UP_TEXT, SynthesisOptions(seed=0)):
            pass

    # -- single-request conveniences ----------------------------------------------------

    def stream(
        self, voice: Voice, text: str, options: SynthesisOptions = SynthesisOptions()
    ) -> Iterator[SentenceStart | AudioChunk]:
        """Yield each sentence's :class:`SentenceStart` and its audio chunks as they are decoded.

        A sentence's start comes before its audio, except for one encoded head first (see
        :meth:`encode`): its first chunk comes before the rest is encoded, then its start."""
        sentences = voice.phonemizer.sentences(text, with_words=options.word_timestamps)
        return self.stream_requests(voice, self.sentence_requests(voice, sentences, options))

    def stream_requests(
        self, voice: Voice, requests: Sequence[SentenceRequest]
    ) -> Iterator[SentenceStart | AudioChunk]:
        """:meth:`stream` for sentences already phonemized and resolved (see :meth:`sentence_requests`)."""
        offset = 0
        for index, request in enumerate(requests):
            encoded = self.encode([request])[0]
            done = 0  # frames already sent
            if not encoded.complete:
                start, done = self.config.chunks.windows(encoded.num_frames)[0]
                (audio,) = self.decode([DecodeWindow(encoded, start, done)])
                yield AudioChunk(audio, index, offset + start * voice.hop_length, last_in_sentence=False)
                (encoded,) = self.finish([encoded])
            yield SentenceStart.of(encoded, index, offset)
            for start, end in self.config.chunks.windows(encoded.num_frames):
                if start < done:
                    continue
                (audio,) = self.decode([DecodeWindow(encoded, start, end)])
                last_in_sentence = end == encoded.num_frames
                yield AudioChunk(
                    audio,
                    index,
                    offset + start * voice.hop_length,
                    last_in_sentence,
                    last_in_stream=last_in_sentence and index == len(requests) - 1,
                )
            offset += encoded.num_samples

    def synthesize(self, voice: Voice, text: str, options: SynthesisOptions = SynthesisOptions()) -> np.ndarray:
        """The whole text's audio (all sentences encoded in one batch)."""
        sentences = voice.phonemizer.sentences(text)
        parts = []
        for encoded in self.finish(self.encode(self.sentence_requests(voice, sentences, options))):
            for start in range(0, encoded.num_frames, WHOLE_WINDOW_FRAMES):
                end = min(start + WHOLE_WINDOW_FRAMES, encoded.num_frames)
                parts.extend(self.decode([DecodeWindow(encoded, start, end)]))
        return np.concatenate(parts)


def _per_voice(items: Sequence[T], voice_of: Callable[[T], Voice], run: Callable[[Voice, list[T]], list[R]]) -> list[R]:
    """Run ``run`` once per voice on that voice's items; results come back in ``items``' order."""
    groups: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(id(voice_of(item)), []).append(i)
    results: list[R | None] = [None] * len(items)
    for indices in groups.values():
        for i, result in zip(indices, run(voice_of(items[indices[0]]), [items[i] for i in indices])):
            results[i] = result
    return results  # type: ignore[return-value]
