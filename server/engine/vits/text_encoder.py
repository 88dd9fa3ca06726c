"""Text encoder: phoneme embedding + transformer with windowed relative-position attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ArchitectureError
from .convs import PackedLinear
from .layers import ChannelLayerNorm

# Masked attention logits get this value (as in VITS) rather than -inf, so a
# fully padded query row stays finite; its output is masked away afterwards.
_MASKED_LOGIT = -1e4


def _band_to_full(band: torch.Tensor, window: int) -> torch.Tensor:
    """``(..., T, 2w+1)`` relative band to ``(..., T, T)`` with ``out[i, j] = band[i, j - i + w]``.

    Zero where ``|j - i| > w``. Done by padding each row and re-reading the flat
    buffer with a row stride one shorter, which shifts row ``i`` right by ``i``.
    """
    length = band.shape[-2]
    width = length + 2 * window  # stride of the shifted view
    padded = F.pad(band, (0, length))  # rows of width + 1
    flat = padded.reshape(*band.shape[:-2], -1)[..., : length * width]
    return flat.reshape(*band.shape[:-2], length, width)[..., window : window + length]


def _full_to_band(full: torch.Tensor, window: int) -> torch.Tensor:
    """Inverse view of :func:`_band_to_full`: ``out[i, r] = full[i, i + r - w]`` (0 outside)."""
    length = full.shape[-1]
    padded = F.pad(full, (window, window + 1))  # rows of length + 2w + 1
    flat = F.pad(padded.reshape(*full.shape[:-2], -1), (0, length))
    return flat.reshape(*full.shape[:-2], length, length + 2 * window + 2)[..., : 2 * window + 1]


class RelativeAttention(nn.Module):
    """Multi-head self-attention with learned relative-position keys and values.

    Positions further apart than ``window`` get no relative term, as in VITS. The
    relative terms live on a band of ``2 * window + 1`` diagonals; they are moved
    between band and full layout by reshaping rather than by ``T x T`` gathers.
    """

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        self.conv_q = arch.conv(f"{path}.conv_q").build()
        self.conv_k = arch.conv(f"{path}.conv_k").build()
        self.conv_v = arch.conv(f"{path}.conv_v").build()
        self.conv_o = arch.conv(f"{path}.conv_o").build()
        rel_shape = arch.shape(f"{path}.emb_rel_k")  # (1, 2 * window + 1, head_channels)
        self.emb_rel_k = nn.Parameter(torch.zeros(rel_shape))
        self.emb_rel_v = nn.Parameter(torch.zeros(arch.shape(f"{path}.emb_rel_v")))
        self.head_channels = rel_shape[2]
        self.n_heads = self.conv_q.out_channels // self.head_channels
        self.window = (rel_shape[1] - 1) // 2
        self._fused_qkv: PackedLinear | None = None

    def fuse(self) -> None:
        """Stack the query, key and value projections into one matrix (after weights are loaded)."""
        convs = (self.conv_q, self.conv_k, self.conv_v)
        weight = torch.cat([c.weight for c in convs])[:, :, 0].contiguous()
        self._fused_qkv = PackedLinear(weight, torch.cat([c.bias for c in convs]).contiguous())

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._fused_qkv is None:
            return self.conv_q.time_major(x), self.conv_k.time_major(x), self.conv_v.time_major(x)
        return torch.split(self._fused_qkv(x), self.conv_q.out_channels, dim=-1)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` is time-major ``(batch, T, channels)``; ``attn_mask`` is ``(batch, 1, T, T)``
        boolean, or ``None`` when nothing is padded."""
        batch, length, channels = x.shape
        heads, head_channels = self.n_heads, self.head_channels

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, length, heads, head_channels).transpose(1, 2)

        query, key, value = (split_heads(t) for t in self._qkv(x))
        query = query / math.sqrt(head_channels)

        scores = query @ key.transpose(-2, -1)  # (b, h, t, t)
        scores = scores + _band_to_full(query @ self.emb_rel_k[0].transpose(0, 1), self.window)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, _MASKED_LOGIT)
        weights = torch.softmax(scores, dim=-1)

        output = weights @ value + _full_to_band(weights, self.window) @ self.emb_rel_v[0]
        output = output.transpose(1, 2).reshape(batch, length, channels)
        return self.conv_o.time_major(output)


class FeedForward(nn.Module):
    """Two 'same'-padded convolutions with a ReLU between them, masked at each input (time-major)."""

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        self.conv_1 = arch.conv(f"{path}.conv_1").build()
        self.conv_2 = arch.conv(f"{path}.conv_2").build()
        self.pad_1, self.pad_2 = _same_padding(self.conv_1), _same_padding(self.conv_2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` is ``(batch, time, channels)``, ``mask`` ``(batch, time, 1)``."""
        x = torch.relu(self.conv_1.time_major(_pad_time(x * mask, self.pad_1)))
        x = self.conv_2.time_major(_pad_time(x * mask, self.pad_2))
        return x * mask


def _same_padding(conv: nn.Conv1d) -> tuple[int, int] | None:
    """'Same' padding for ``conv``: moved into the conv itself when it is symmetric (odd
    kernels), which saves a padded copy of the activations (3-5% of an encode); else the
    ``(left, right)`` padding the caller must add."""
    if conv.padding[0] != 0:
        raise ArchitectureError("the feed-forward convs are expected unpadded (VITS pads them itself)")
    kernel = conv.kernel_size[0]
    if kernel % 2:
        conv.padding = (kernel // 2,)
        return None
    return (kernel - 1) // 2, kernel // 2


def _pad_time(x: torch.Tensor, pad: tuple[int, int] | None) -> torch.Tensor:
    return x if pad is None else F.pad(x, (0, 0, *pad))


class RelativeTransformer(nn.Module):
    """VITS ``attentions.Encoder``: post-norm transformer blocks over masked sequences.

    It runs time-major (``(batch, time, channels)``): the layer norms and projections
    then read contiguous rows, and the feed-forward convs use oneDNN's kernels for
    time-major data without transposed copies in between.
    """

    def __init__(self, arch: Architecture, path: str, channels: int) -> None:
        super().__init__()
        layer_ids = arch.indices(f"{path}.attn_layers")
        if not layer_ids:
            raise ArchitectureError(f"no attention layers under '{path}'")
        self.attn_layers = nn.ModuleList(RelativeAttention(arch, f"{path}.attn_layers.{i}") for i in layer_ids)
        self.ffn_layers = nn.ModuleList(FeedForward(arch, f"{path}.ffn_layers.{i}") for i in layer_ids)
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in layer_ids)
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in layer_ids)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """``x`` is ``(batch, time, channels)``, ``mask`` ``(batch, 1, time)``.

        ``padded`` (whether ``mask`` has zeros) is the caller's to say: reading it off the mask
        would wait for the device, which a CUDA graph cannot do."""
        attn_mask = (mask.unsqueeze(2) * mask.unsqueeze(-1)).bool() if padded else None
        mask = mask.transpose(1, 2)
        x = x * mask
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm_1.time_major(x + attn(x, attn_mask))
            x = norm_2.time_major(x + ffn(x, mask))
        return x * mask


class TextEncoder(nn.Module):
    """``enc_p``: phoneme ids to per-phoneme prior mean and log-scale."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        vocab, hidden = arch.shape("enc_p.emb.weight")
        self.emb = nn.Embedding(vocab, hidden)
        self.embed_scale = math.sqrt(hidden)
        self.encoder = RelativeTransformer(arch, "enc_p.encoder", hidden)
        self.proj = arch.conv("enc_p.proj").build()
        self.inter_channels = self.proj.out_channels // 2

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return hidden states ``x``, prior mean ``m`` and log-scale ``logs`` (all masked,
        ``(batch, channels, phonemes)``; views of time-major tensors)."""
        x = self.encoder(self.emb(ids) * self.embed_scale, mask, padded)
        stats = self.proj.time_major(x) * mask.transpose(1, 2)
        m, logs = torch.split(stats.transpose(1, 2), self.inter_channels, dim=1)
        return x.transpose(1, 2), m, logs
