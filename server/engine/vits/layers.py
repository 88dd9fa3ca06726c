"""Layers shared by several VITS parts: channel layer norm, WaveNet, dilated depth-separable conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ArchitectureError
from .containers import module_list
from .convs import Conv1d, PointwiseConv1d


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of a ``(batch, channels, time)`` tensor."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.time_major(x.transpose(1, -1)).transpose(1, -1)

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """The same norm for ``(batch, time, channels)``: no transposed copies in and out."""
        return F.layer_norm(x, self.gamma.shape, self.gamma, self.beta, self.eps)


def conv_radius(conv: nn.Conv1d) -> int:
    """Positions of context on each side that one output of a 'same'-padded conv reads."""
    return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2


def conditioning(arch: Architecture, path: str) -> Conv1d | PointwiseConv1d | None:
    """The speaker-conditioning 1x1 conv at ``path`` if the voice has one (multi-speaker voices)."""
    return arch.conv(path).build() if arch.has_conv(path) else None


class WaveNet(nn.Module):
    """Gated non-causal WaveNet stack (VITS ``WN``) used inside the coupling flow."""

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        layer_ids = arch.indices(f"{path}.in_layers")
        self.in_layers = module_list(arch.conv(f"{path}.in_layers.{i}").build() for i in layer_ids)
        for conv in self.in_layers:  # large weights over short windows (see convs._PackedWeights)
            conv.prepacked = True
        self.res_skip_layers = module_list(arch.conv(f"{path}.res_skip_layers.{i}").build() for i in layer_ids)
        self.hidden = self.in_layers[0].in_channels
        self.cond_layer = conditioning(arch, f"{path}.cond_layer")

    @property
    def radius(self) -> int:
        return sum(conv_radius(conv) for conv in self.in_layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.hidden
        output = torch.zeros_like(x)
        cond = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            x_in = in_layer(x)
            if cond is not None:
                x_in = x_in + cond[:, i * 2 * hidden : (i + 1) * 2 * hidden]
            acts = torch.tanh(x_in[:, :hidden]) * torch.sigmoid(x_in[:, hidden:])
            res_skip = res_skip_layer(acts)
            if i < last:
                x = (x + res_skip[:, :hidden]) * mask
                output = output + res_skip[:, hidden:]
            else:
                output = output + res_skip
        return output * mask


class DilatedDepthSeparableConv(nn.Module):
    """VITS ``DDSConv``: depth-wise dilated convs with 1x1 mixing, used by the duration predictor.

    It works on time-major ``(batch, time, channels)`` tensors: its layer norms
    and 1x1 convs then read contiguous rows, where the channel-major layout cost
    two transposed copies per norm. Most of the duration predictor's time went
    to such element-wise work, not to arithmetic.
    """

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        layer_ids = arch.indices(f"{path}.convs_sep")
        channels = arch.conv(f"{path}.convs_sep.0").out_channels
        self.convs_sep = module_list(arch.conv(f"{path}.convs_sep.{i}").build() for i in layer_ids)
        self.convs_1x1 = module_list(arch.conv(f"{path}.convs_1x1.{i}").build() for i in layer_ids)
        self.norms_1 = module_list(ChannelLayerNorm(channels) for _ in layer_ids)
        self.norms_2 = module_list(ChannelLayerNorm(channels) for _ in layer_ids)
        for conv in self.convs_sep:
            if conv.groups != channels or conv.stride[0] != 1:
                raise ArchitectureError(f"'{path}.convs_sep' must be depth-wise with stride 1")

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` and ``g`` are ``(batch, time, channels)``; ``mask`` is ``(batch, time, 1)``."""
        if g is not None:
            x = x + g
        for conv_sep, conv_1x1, norm_1, norm_2 in zip(self.convs_sep, self.convs_1x1, self.norms_1, self.norms_2):
            y = _depthwise_time_major(conv_sep, x * mask)
            y = F.gelu(norm_1.time_major(y))
            y = F.gelu(norm_2.time_major(conv_1x1.time_major(y)))
            x = x + y
        return x * mask


def _depthwise_time_major(conv: Conv1d | PointwiseConv1d, x: torch.Tensor) -> torch.Tensor:
    """A depth-wise conv over time-major ``x (batch, time, channels)`` as one multiply-add per tap.

    With a few taps and one weight per channel this is element-wise work: it ran in
    a third to a half of oneDNN's time for these shapes (whose dilated depth-wise
    kernel was slowest), and it runs as it is on any device.

    Each tap adds into the output rows whose input it reads, instead of reading a
    zero-padded copy of ``x``; taps are added in kernel order, so the sums are the
    padded conv's bit for bit. The taps are made contiguous first: broadcasting a
    strided tap vector kept the multiply-add from vectorizing (13 against 5 us at
    112 rows). Together: the duration predictor took 0.94 of its time at 112 ids.
    """
    pad, dilation, kernel = conv.padding[0], conv.dilation[0], conv.kernel_size[0]
    batch, steps, channels = x.shape
    length = steps + 2 * pad - dilation * (kernel - 1)
    taps = conv.weight[:, 0, :].t().contiguous()  # (kernel, channels)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(taps[0])
    y = bias.expand(batch, length, channels).contiguous()
    for j in range(kernel):
        shift = j * dilation - pad  # output row t reads input row t + shift
        lo, hi = max(0, -shift), min(length, steps - shift)
        if lo < hi:
            y[:, lo:hi].addcmul_(x[:, lo + shift : hi + shift], taps[j])
    return y
