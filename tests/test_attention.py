"""The text encoder's relative attention against a plain T x T definition of it (VITS's)."""

from __future__ import annotations

import math

import pytest
import torch

from syrinx.server.engine.vits.text_encoder import RelativeAttention


def _reference(attn: RelativeAttention, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Relative keys and values gathered into full ``T x T`` tables, queries and keys both masked."""
    batch, length, channels = x.shape
    heads, head_channels, window = attn.n_heads, attn.head_channels, attn.window
    q, k, v = (
        conv.time_major(x).reshape(batch, length, heads, head_channels).transpose(1, 2)
        for conv in (attn.conv_q, attn.conv_k, attn.conv_v)
    )
    offsets = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # j - i
    inside = offsets.abs() <= window
    index = offsets.clamp(-window, window) + window
    rel_k = attn.emb_rel_k[0][index] * inside[..., None]  # (T, T, head_channels), zero outside the band
    rel_v = attn.emb_rel_v[0][index] * inside[..., None]
    scores = (q @ k.transpose(-2, -1) + torch.einsum("bhid,ijd->bhij", q, rel_k)) / math.sqrt(head_channels)
    valid = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]  # (batch, T)
    pair = valid[:, None, :, None] & valid[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(~pair, -1e4), dim=-1)
    out = weights @ v + torch.einsum("bhij,ijd->bhid", weights, rel_v)
    return attn.conv_o.time_major(out.transpose(1, 2).reshape(batch, length, channels))


@pytest.mark.parametrize("lengths", [[1], [3], [9], [57], [40, 23, 5]])
def test_relative_attention_matches_the_full_table_definition(voice, lengths):
    """Lengths shorter than the window, around it, and a padded batch (only real rows are compared)."""
    attn = voice.model.enc_p.encoder.attn_layers[2]
    longest = max(lengths)
    torch.manual_seed(len(lengths) * 100 + longest)
    x = torch.randn(len(lengths), longest, attn.conv_q.in_channels)
    mask = (torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]).float()
    x = x * mask[..., None]
    padded = min(lengths) != longest
    key_bias = (1 - mask[:, None, :]) * -1e4 if padded else None
    with torch.inference_mode():
        ours = attn(x, key_bias)
        reference = _reference(attn, x, lengths)
    for row, n in enumerate(lengths):
        torch.testing.assert_close(ours[row, :n], reference[row, :n], rtol=1e-4, atol=1e-5)
