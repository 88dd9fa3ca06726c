"""VITS inference split into the stages the streaming engine schedules separately.

``encode`` runs once per sentence (text encoder + duration predictor) and gives
per-phoneme priors and integer frame durations. ``flow.reverse`` and ``dec`` run
per window of latent frames, so audio can be produced while later frames are
still to come.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .architecture import Architecture, ArchitectureError
from .duration import StochasticDurationPredictor, build_duration_predictor
from .flow import ResidualCouplingFlow
from .generator import Generator
from .text_encoder import TextEncoder


@dataclass(frozen=True)
class ReceptiveField:
    """Latent frames of context a decode window needs on each side to be exact."""

    flow: int
    decoder_left: int
    decoder_right: int


@dataclass(frozen=True)
class EncodedBatch:
    """Per-phoneme priors and durations for a padded batch of sentences."""

    m: torch.Tensor  # (batch, inter_channels, phonemes)
    logs: torch.Tensor  # (batch, inter_channels, phonemes)
    durations: torch.Tensor  # (batch, phonemes), int64 frames (0 on padding)


class VitsModel(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.enc_p = TextEncoder(arch)
        self.dp = build_duration_predictor(arch)
        self.flow = ResidualCouplingFlow(arch)
        self.dec = Generator(arch)
        self.emb_g: nn.Embedding | None = None
        if arch.has("emb_g.weight"):
            num_speakers, channels = arch.shape("emb_g.weight")
            self.emb_g = nn.Embedding(num_speakers, channels)
        self.inter_channels = self.enc_p.inter_channels
        self.receptive_field = ReceptiveField(self.flow.radius, *self.dec.receptive_field())
        if self.flow.flows[str(self.flow.layer_ids[0])].half_channels * 2 != self.inter_channels:
            raise ArchitectureError("flow channels do not match the text encoder's output")

    def prepare_for_inference(self) -> None:
        """Precompute fused weights; call once after loading weights and moving the model."""
        for layer in self.enc_p.encoder.attn_layers:
            layer.fuse()

    @property
    def num_vocab(self) -> int:
        return self.enc_p.emb.num_embeddings

    @property
    def num_speakers(self) -> int:
        return self.emb_g.num_embeddings if self.emb_g is not None else 1

    @property
    def hop_length(self) -> int:
        return self.dec.hop_length

    @property
    def stochastic_durations(self) -> bool:
        return isinstance(self.dp, StochasticDurationPredictor)

    def speaker_embedding(self, speaker_ids: torch.Tensor) -> torch.Tensor | None:
        """Conditioning ``(batch, gin, 1)`` for multi-speaker voices, else ``None``."""
        if self.emb_g is None:
            return None
        return self.emb_g(speaker_ids).unsqueeze(-1)

    @property
    def head_margin(self) -> int:
        """Phoneme ids past a head's last one that its durations and priors depend on."""
        return self.dp.radius + self.enc_p.encoder.top_radius

    def encode(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        duration_noise: torch.Tensor,
        length_scales: torch.Tensor,
        g: torch.Tensor | None = None,
        padded: bool = True,
    ) -> EncodedBatch:
        """Text encoder and duration predictor for padded ``ids (batch, phonemes)``.

        ``mask`` is ``(batch, 1, phonemes)``; ``length_scales`` is ``(batch, phonemes)`` (a
        sentence's scale, times any rate set on its ids); ``duration_noise`` is already scaled by
        each sentence's noise width (zeros for the plain predictor). ``padded``: whether
        any id is padding (``False`` saves the attention masks).
        """
        hidden = self.enc_p.below_top(ids, mask, padded)
        return self.encode_top(hidden, mask, duration_noise, length_scales, g, padded)

    def encode_top(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        duration_noise: torch.Tensor,
        length_scales: torch.Tensor,
        g: torch.Tensor | None = None,
        padded: bool = True,
        head: int | None = None,
    ) -> EncodedBatch:
        """:meth:`encode` from the text encoder's state below its last block (``enc_p.below_top``).

        With ``head``, only the first ``head`` phoneme ids' priors and durations, computed from
        ``head + head_margin`` positions: the encoder's last block and the duration predictor
        are local past the attention, so those values equal the whole sentence's, for a
        fraction of the work on a long sentence.
        """
        rows = None if head is None else head + self.head_margin
        x, m, logs = self.enc_p.top(hidden, mask, padded, rows)
        if rows is not None:
            known = rows - self.enc_p.encoder.top_radius  # outputs past this read the cut
            x, mask, duration_noise = x[..., :known], mask[..., :known], duration_noise[..., :known]
            length_scales = length_scales[..., :known]
        logw = self.dp(x, mask, duration_noise, g=g)
        widths = torch.exp(logw) * mask * length_scales[:, None, :]
        durations = torch.ceil(widths)[:, 0].long()
        if head is not None:
            m, logs, durations = m[..., :head], logs[..., :head], durations[..., :head]
        return EncodedBatch(m=m, logs=logs, durations=durations)
