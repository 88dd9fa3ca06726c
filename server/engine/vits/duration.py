"""Duration predictors: the stochastic one (normalizing flow, run in reverse) and the plain one."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ArchitectureError
from .containers import module_dict
from .layers import ChannelLayerNorm, DilatedDepthSeparableConv, conditioning, conv_radius

# Constants of VITS's ConvFlow spline; they are code, not weights, in every Piper voice.
SPLINE_TAIL_BOUND = 5.0
_MIN_BIN_WIDTH = 1e-3
_MIN_BIN_HEIGHT = 1e-3
_MIN_DERIVATIVE = 1e-3


def _bin_edges(
    unnormalized: torch.Tensor, lower: float, upper: float, min_size: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative bin edges (``bins + 1``) and bin sizes of a monotone spline axis."""
    num_bins = unnormalized.shape[-1]
    sizes = min_size + (1 - min_size * num_bins) * torch.softmax(unnormalized, dim=-1)
    edges = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    edges = (upper - lower) * edges + lower
    edges = torch.cat(
        [edges[..., :1].clamp(min=lower, max=lower), edges[..., 1:-1], edges[..., -1:].clamp(min=upper, max=upper)],
        dim=-1,
    )
    return edges, edges[..., 1:] - edges[..., :-1]


def inverse_rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    tail_bound: float = SPLINE_TAIL_BOUND,
) -> torch.Tensor:
    """Inverse of a monotone rational-quadratic spline on ``[-B, B]`` with identity (linear) tails."""
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    x = inputs.clamp(-tail_bound, tail_bound)

    edge_derivative = math.log(math.exp(1 - _MIN_DERIVATIVE) - 1)
    derivatives = F.pad(unnormalized_derivatives, (1, 1), value=edge_derivative)
    derivatives = _MIN_DERIVATIVE + F.softplus(derivatives)

    cumwidths, widths = _bin_edges(unnormalized_widths, -tail_bound, tail_bound, _MIN_BIN_WIDTH)
    cumheights, heights = _bin_edges(unnormalized_heights, -tail_bound, tail_bound, _MIN_BIN_HEIGHT)

    # Which bin each input falls in, on the output (height) axis; the last edge is nudged
    # up so that an input equal to the top lands in the last bin.
    search_edges = torch.cat([cumheights[..., :-1], cumheights[..., -1:] + 1e-6], dim=-1)
    bin_idx = (torch.sum(x[..., None] >= search_edges, dim=-1, keepdim=True) - 1).clamp(0, widths.shape[-1] - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, bin_idx)[..., 0]

    in_cumwidth, in_width = pick(cumwidths), pick(widths)
    in_cumheight, in_height = pick(cumheights), pick(heights)
    in_delta = in_height / in_width
    d_left, d_right = pick(derivatives), pick(derivatives[..., 1:])

    offset = x - in_cumheight
    curvature = d_left + d_right - 2 * in_delta
    a = offset * curvature + in_height * (in_delta - d_left)
    b = in_height * d_left - offset * curvature
    c = -in_delta * offset
    discriminant = (b.pow(2) - 4 * a * c).clamp(min=0)
    root = (2 * c) / (-b - torch.sqrt(discriminant))
    outputs = root * in_width + in_cumwidth
    return torch.where(inside, outputs, inputs)


class ElementwiseAffine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.logs = nn.Parameter(torch.zeros(channels, 1))

    def reverse(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x - self.m) * torch.exp(-self.logs) * mask


class ConvFlow(nn.Module):
    """Coupling layer whose transform is a rational-quadratic spline predicted by a DDSConv."""

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        self.pre = arch.conv(f"{path}.pre").build()
        self.convs = DilatedDepthSeparableConv(arch, f"{path}.convs")
        self.proj = arch.conv(f"{path}.proj").build()
        self.half_channels = self.pre.in_channels
        self.filter_channels = self.pre.out_channels
        params_per_channel = self.proj.out_channels // self.half_channels
        self.num_bins = (params_per_channel + 1) // 3

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor, mask_tm: torch.Tensor) -> torch.Tensor:
        """``x (batch, 2 * half, time)`` with its ``mask``; ``g`` is time-major conditioning, ``mask_tm`` its mask."""
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.convs(self.pre.time_major(x0.transpose(1, 2)), mask_tm, g=g)
        h = self.proj.time_major(h) * mask_tm  # (batch, time, half * params)
        batch, _, length = x0.shape
        h = h.reshape(batch, length, self.half_channels, -1).transpose(1, 2)
        scale = math.sqrt(self.filter_channels)
        bins = self.num_bins
        x1 = inverse_rational_quadratic_spline(
            x1, h[..., :bins] / scale, h[..., bins : 2 * bins] / scale, h[..., 2 * bins :]
        )
        return torch.cat([x0, x1], dim=1) * mask


class StochasticDurationPredictor(nn.Module):
    """VITS ``dp`` with ``use_sdp``: log-durations drawn by running its flow backwards from noise."""

    NOISE_CHANNELS = 2

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.pre = arch.conv("dp.pre").build()
        self.convs = DilatedDepthSeparableConv(arch, "dp.convs")
        self.proj = arch.conv("dp.proj").build()
        self.cond = conditioning(arch, "dp.cond")
        # flows.0 is the element-wise affine; odd indices are ConvFlows, even ones Flips.
        # In reverse VITS skips flows.1 (a "useless vflow"), so Piper exports omit it.
        self.flow_ids = [i for i in arch.indices("dp.flows") if i > 1]
        self.flows = module_dict({"0": ElementwiseAffine(self.NOISE_CHANNELS)})
        for i in self.flow_ids:
            self.flows[str(i)] = ConvFlow(arch, f"dp.flows.{i}")

    @property
    def radius(self) -> int:
        return receptive_radius(self)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Log-durations ``(batch, 1, phonemes)`` from encoder states and scaled noise ``(batch, 2, phonemes)``."""
        mask_tm = mask.transpose(1, 2)
        x = self.pre.time_major(x.transpose(1, 2))
        if g is not None and self.cond is not None:
            x = x + self.cond(g).transpose(1, 2)
        x = self.proj.time_major(self.convs(x, mask_tm)) * mask_tm
        z = noise
        for i in sorted(self.flow_ids, reverse=True):
            z = torch.flip(z, [1])
            z = cast(ConvFlow, self.flows[str(i)]).reverse(z, mask, x, mask_tm)
        z = torch.flip(z, [1])
        z = cast(ElementwiseAffine, self.flows["0"]).reverse(z, mask)
        return z[:, :1]


class DurationPredictor(nn.Module):
    """The plain (deterministic) VITS duration predictor."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.conv_1 = arch.conv("dp.conv_1").build()
        self.conv_2 = arch.conv("dp.conv_2").build()
        self.norm_1 = ChannelLayerNorm(self.conv_1.out_channels)
        self.norm_2 = ChannelLayerNorm(self.conv_2.out_channels)
        self.proj = arch.conv("dp.proj").build()
        self.cond = conditioning(arch, "dp.cond")

    @property
    def radius(self) -> int:
        return receptive_radius(self)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        if g is not None and self.cond is not None:
            x = x + self.cond(g)
        x = self.norm_1(torch.relu(self.conv_1(x * mask)))
        x = self.norm_2(torch.relu(self.conv_2(x * mask)))
        return self.proj(x * mask) * mask


def receptive_radius(predictor: nn.Module) -> int:
    """Phonemes of context each side that one duration can depend on: the sum of every
    convolution's reach, a bound for any way they are chained (for the stochastic
    predictor it is exact: its conditioning stack, then each flow's stack in turn,
    ±52 phonemes for Piper's voices)."""
    return sum(conv_radius(m) for m in predictor.modules() if isinstance(m, nn.Conv1d))


def build_duration_predictor(arch: Architecture) -> StochasticDurationPredictor | DurationPredictor:
    if arch.indices("dp.flows"):
        return StochasticDurationPredictor(arch)
    if arch.has_conv("dp.conv_1"):
        return DurationPredictor(arch)
    raise ArchitectureError("no duration predictor ('dp') found")
