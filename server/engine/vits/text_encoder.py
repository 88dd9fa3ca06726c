"""Text encoder: phoneme embedding + transformer with windowed relative-position attention."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ArchitectureError
from .containers import module_list
from .convs import PackedLinear
from .layers import ChannelLayerNorm, conv_radius

# Masked attention logits get this value (as in VITS) rather than -inf: exp()
# of it is 0 all the same, and nothing can turn it into a NaN.
_MASKED_LOGIT = -1e4


@functools.lru_cache(maxsize=64)
def _band_cells(rows: int, length: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the relative band's cells that fall inside a ``Q x T`` matrix live (the scores of
    the first ``Q`` queries against ``T`` keys).

    Returns flat indices into ``(Q, T)`` (cell ``(i, i + r - w)``) and, in the same order,
    into ``(Q, 2w + 1)`` (cell ``(i, r)``). Moving ``T * (2w + 1)`` values through them
    costs nothing next to padding and re-reading ``T x T`` buffers, as this did before:
    at 557 ids, filling those with zeros took longer than the softmax, and without it a
    12 s sentence's first audio came 5% sooner.
    """
    query = torch.arange(rows).unsqueeze(1)
    offsets = torch.arange(-window, window + 1)
    cols = query + offsets
    inside = (cols >= 0) & (cols < length)
    full = (query * length + cols)[inside]
    band = (query * (2 * window + 1) + offsets + window)[inside]
    return full.to(device), band.to(device)


class RelativeAttention(nn.Module):
    """Multi-head self-attention with learned relative-position keys and values.

    Positions further apart than ``window`` get no relative term, as in VITS. The
    relative terms live on a band of ``2 * window + 1`` diagonals; they are added to
    and read from the ``T x T`` scores through the flat indices of that band alone.
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
        biases = [c.bias for c in convs if c.bias is not None]
        if len(biases) != len(convs):
            raise ArchitectureError("attention projections without biases")
        self._fused_qkv = PackedLinear(weight, torch.cat(biases).contiguous())

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._fused_qkv is None:
            return self.conv_q.time_major(x), self.conv_k.time_major(x), self.conv_v.time_major(x)
        return torch.split(self._fused_qkv(x), self.conv_q.out_channels, dim=-1)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None, queries: int | None = None) -> torch.Tensor:
        """``x`` is time-major ``(batch, T, channels)``; ``key_bias`` is ``(batch, 1, T)``:
        0 at real positions and ``_MASKED_LOGIT`` at padded ones, or ``None`` when nothing
        is padded. With ``queries``, only the first ``queries`` positions attend (every
        position is still a key): the output is ``(batch, queries, channels)``.

        Only keys are masked: a padded query row's output is garbage that the caller masks
        away, and no valid row reads it, so masking it too (as VITS does) changes nothing."""
        batch, length, channels = x.shape
        heads, head_channels = self.n_heads, self.head_channels
        rows = batch * heads
        attending = length if queries is None else queries

        def split_heads(t: torch.Tensor, positions: int) -> torch.Tensor:  # (batch * heads, positions, head_channels)
            return (
                t.reshape(batch, positions, heads, head_channels)
                .transpose(1, 2)
                .reshape(rows, positions, head_channels)
            )

        query, key, value = self._qkv(x)
        query = split_heads(query[:, :attending], attending) / math.sqrt(head_channels)
        key, value = split_heads(key, length), split_heads(value, length)

        # The key mask rides in as the product's addend: cheaper than masking afterwards.
        if key_bias is None:
            scores = torch.bmm(query, key.transpose(1, 2))
        else:
            scores = torch.baddbmm(key_bias.repeat_interleave(heads, dim=0), query, key.transpose(1, 2))
        full_cells, band_cells = _band_cells(attending, length, self.window, x.device)
        rel_logits = (query @ self.emb_rel_k[0].transpose(0, 1)).view(rows, -1)  # (rows, Q * (2w + 1))
        scores.view(rows, -1).index_add_(1, full_cells, rel_logits.index_select(1, band_cells))
        weights = torch.softmax(scores, dim=-1)

        band = weights.new_zeros(rows, attending * (2 * self.window + 1))
        band.index_copy_(1, band_cells, weights.view(rows, -1).index_select(1, full_cells))
        rel_values = band.view(rows, attending, -1) @ self.emb_rel_v[0]
        output = torch.baddbmm(rel_values, weights, value)
        output = output.view(batch, heads, attending, head_channels).transpose(1, 2).reshape(batch, attending, channels)
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
        self.attn_layers = module_list(RelativeAttention(arch, f"{path}.attn_layers.{i}") for i in layer_ids)
        self.ffn_layers = module_list(FeedForward(arch, f"{path}.ffn_layers.{i}") for i in layer_ids)
        self.norm_layers_1 = module_list(ChannelLayerNorm(channels) for _ in layer_ids)
        self.norm_layers_2 = module_list(ChannelLayerNorm(channels) for _ in layer_ids)

    @property
    def top_radius(self) -> int:
        """Positions of context each side that the last block's feed-forward convs read."""
        ffn = self.ffn_layers[-1]
        return conv_radius(ffn.conv_1) + conv_radius(ffn.conv_2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """``x`` is ``(batch, time, channels)``, ``mask`` ``(batch, 1, time)``.

        ``padded`` (whether ``mask`` has zeros) is the caller's to say: reading it off the mask
        would wait for the device, which a CUDA graph cannot do."""
        return self.top(self.below_top(x, mask, padded), mask, padded)

    def below_top(self, x: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """Every block but the last, over every position: the last block's input (time-major)."""
        key_bias, mask = _masks(mask, padded)
        x = x * mask
        for i in range(len(self.attn_layers) - 1):
            x = self._block(i, x, key_bias, mask)
        return x

    def top(self, x: torch.Tensor, mask: torch.Tensor, padded: bool = True, rows: int | None = None) -> torch.Tensor:
        """The last block over ``below_top``'s output; with ``rows``, only for the first ``rows``
        positions (attending to all). Those outputs are exact up to ``rows - top_radius``: the
        feed-forward convs read zeros past the cut."""
        key_bias, mask = _masks(mask, padded)
        return self._block(len(self.attn_layers) - 1, x, key_bias, mask, rows) * mask[:, :rows]

    def _block(
        self, i: int, x: torch.Tensor, key_bias: torch.Tensor | None, mask: torch.Tensor, rows: int | None = None
    ) -> torch.Tensor:
        attended = self.attn_layers[i](x, key_bias, rows)
        if rows is not None:
            x, mask = x[:, :rows], mask[:, :rows]
        x = self.norm_layers_1[i].time_major(x + attended)
        return self.norm_layers_2[i].time_major(x + self.ffn_layers[i](x, mask))


def _masks(mask: torch.Tensor, padded: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The attention's key bias (``None`` when nothing is padded) and the time-major mask."""
    return ((1 - mask) * _MASKED_LOGIT if padded else None), mask.transpose(1, 2)


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
        return self.top(self.below_top(ids, mask, padded), mask, padded)

    def below_top(self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """Everything before the transformer's last block (see ``RelativeTransformer.below_top``)."""
        return self.encoder.below_top(self.emb(ids) * self.embed_scale, mask, padded)

    def top(
        self, hidden: torch.Tensor, mask: torch.Tensor, padded: bool = True, rows: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward``'s outputs from ``below_top``'s, for the first ``rows`` positions (all by
        default; exact up to ``rows - encoder.top_radius``)."""
        x = self.encoder.top(hidden, mask, padded, rows)
        stats = self.proj.time_major(x) * mask[..., :rows].transpose(1, 2)
        m, logs = torch.split(stats.transpose(1, 2), self.inter_channels, dim=1)
        return x.transpose(1, 2), m, logs
