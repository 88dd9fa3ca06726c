"""HiFi-GAN generator (``dec``): latent frames to waveform samples.

Batching windows of different lengths needs care: the convolutions have no
mask in VITS, so a right-padded item would see its neighbours' padding instead
of the zeros a lone item sees at its end. The generator therefore takes each
item's valid length and zeroes every convolution's input past it, which makes
a padded batch compute exactly what each item computes alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture, ArchitectureError
from .containers import module_list

if TYPE_CHECKING:
    from .containers import ModuleList
from .convs import Conv1d, ConvTranspose1d
from .layers import conditioning, conv_radius

LRELU_SLOPE = 0.1


def _length_mask(lengths: torch.Tensor | None, offset: int, size: int, scale: int) -> torch.Tensor | None:
    """Which of ``size`` positions from ``offset`` (at ``scale`` x the frame rate) lie inside each item."""
    if lengths is None:
        return None
    positions = torch.arange(offset, offset + size, device=lengths.device)
    return (positions[None, :] < (lengths[:, None] * scale)).unsqueeze(1)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


class ResBlock(nn.Module):
    """HiFi-GAN residual block; each chain of convs is added back to ``x`` in turn.

    Piper's resblock "2" has one conv per chain (``convs.j``); resblock "1" has two
    (``convs1.j`` then ``convs2.j``). Parameter names follow VITS so weights load by name.
    """

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        if arch.indices(f"{path}.convs1"):  # resblock "1"
            ids = arch.indices(f"{path}.convs1")
            self.convs1 = module_list(arch.conv(f"{path}.convs1.{i}").build() for i in ids)
            self.convs2 = module_list(arch.conv(f"{path}.convs2.{i}").build() for i in ids)
            self.chains = [tuple(pair) for pair in zip(self.convs1, self.convs2)]
        else:  # resblock "2"
            self.convs = module_list(arch.conv(f"{path}.convs.{i}").build() for i in arch.indices(f"{path}.convs"))
            self.chains = [(conv,) for conv in self.convs]
        if not self.chains:
            raise ArchitectureError(f"residual block '{path}' has no convolutions")

    @property
    def radius(self) -> int:
        return sum(conv_radius(conv) for chain in self.chains for conv in chain)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, activated: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``activated`` is ``x`` through the leaky ReLU and the mask, when the caller has it
        already: every block of a stage starts from the same input."""
        for chain in self.chains:
            xt = activated if activated is not None else _masked(F.leaky_relu(x, LRELU_SLOPE), mask)
            activated = None  # later chains start from their own sums
            for position, conv in enumerate(chain):
                if position:
                    xt = _masked(F.leaky_relu(xt, LRELU_SLOPE), mask)
                xt = conv(xt)
            x = xt + x
        return x


class Generator(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.conv_pre = arch.conv("dec.conv_pre").build()
        up_ids = arch.indices("dec.ups")
        self.ups = module_list(arch.conv(f"dec.ups.{i}").build_transposed() for i in up_ids)
        block_ids = arch.indices("dec.resblocks")
        if not up_ids or not block_ids or len(block_ids) % len(up_ids):
            raise ArchitectureError("decoder upsampling and residual blocks do not match")
        self.resblocks = module_list(ResBlock(arch, f"dec.resblocks.{i}") for i in block_ids)
        self.blocks_per_stage = len(block_ids) // len(up_ids)
        self.conv_post = arch.conv("dec.conv_post").build()
        self.cond = conditioning(arch, "dec.cond")
        self.hop_length = 1
        for up in self.ups:
            self.hop_length *= up.stride[0]
        # Time-major activations throughout the decoder: faster oneDNN kernels (see Conv1d),
        # on weights kept in oneDNN's layout: a first window's decode took about 10% less.
        for module in self.modules():
            if isinstance(module, (Conv1d, ConvTranspose1d)):
                module.channels_last = True
                module.prepacked = True

    def forward(
        self,
        z: torch.Tensor,
        lengths: torch.Tensor | None = None,
        g: torch.Tensor | None = None,
        keep: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Audio ``(batch, samples)`` for latents ``(batch, channels, frames)``.

        ``lengths`` (frames per item) is needed only when items are right-padded.
        ``keep`` (a frame range, default all) limits the output to those frames; each
        stage then computes only the activations the remaining layers need for them
        (the needed range shrinks towards the output), which is exact and saves most
        of the high-rate work when the window carries context frames.
        """
        frames = z.shape[-1]
        keep_lo, keep_hi = keep if keep is not None else (0, frames)
        needed = self._needed_ranges(keep_lo * self.hop_length, keep_hi * self.hop_length)

        x = self.conv_pre(_masked(z, _length_mask(lengths, 0, frames, 1)))
        if g is not None and self.cond is not None:
            x = x + self.cond(g)
        offset, scale = 0, 1  # x[..., 0] is sample `offset` at `scale` x the frame rate
        x, offset = _crop(x, offset, needed[0])
        for stage, up in enumerate(self.ups):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = up(_masked(x, _length_mask(lengths, offset, x.shape[-1], scale)))
            scale *= up.stride[0]
            offset *= up.stride[0]
            x, offset = _crop(x, offset, needed[stage + 1])
            mask = _length_mask(lengths, offset, x.shape[-1], scale)
            x = self._run_stage_blocks(stage, x, mask)
        x = F.leaky_relu(x)  # default slope 0.01 here, as in VITS
        x = self.conv_post(_masked(x, _length_mask(lengths, offset, x.shape[-1], scale)))
        x = torch.tanh(x)[:, 0]
        return x[:, keep_lo * self.hop_length - offset : keep_hi * self.hop_length - offset]

    def _stage_blocks(self, stage: int) -> ModuleList[ResBlock]:
        return self.resblocks[stage * self.blocks_per_stage : (stage + 1) * self.blocks_per_stage]

    def _run_stage_blocks(self, stage: int, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The mean of the stage's residual blocks over ``x``. Their shared first activation is
        computed once, and the outputs are summed in place: the same bits with fewer passes
        over the stage's largest activations."""
        activated = _masked(F.leaky_relu(x, LRELU_SLOPE), mask)
        blocks = iter(self._stage_blocks(stage))
        total = next(blocks)(x, mask, activated)  # a stage has blocks (see __init__)
        for block in blocks:
            total = total.add_(block(x, mask, activated))
        return total.div_(self.blocks_per_stage)

    def _needed_ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """For output samples ``[lo, hi]`` (inclusive), the activation ranges each stage must produce.

        Worked backwards by interval arithmetic: entry 0 is the ``conv_pre`` output the first
        upsampler reads, entry ``k + 1`` the output of upsampler ``k`` its residual blocks read
        (positions at that stage's rate, inclusive), and the last entry the latent frames read.
        """
        hi -= 1
        lo, hi = lo - conv_radius(self.conv_post), hi + conv_radius(self.conv_post)
        ranges = []
        for stage in reversed(range(len(self.ups))):
            reach = max(block.radius for block in self._stage_blocks(stage))
            lo, hi = lo - reach, hi + reach
            ranges.append((lo, hi))
            up = self.ups[stage]
            stride, kernel, pad = up.stride[0], up.kernel_size[0], up.padding[0]
            # Output n of a transposed conv reads inputs i with 0 <= n + pad - i * stride < kernel.
            lo = -((-(lo + pad - kernel + 1)) // stride)
            hi = (hi + pad) // stride
        ranges.append((lo, hi))
        ranges.reverse()
        ranges.append((lo - conv_radius(self.conv_pre), hi + conv_radius(self.conv_pre)))
        return ranges

    def receptive_field(self) -> tuple[int, int]:
        """Latent frames of left and right context that any output sample of a frame needs.

        Computed for all samples of one frame far from the edges (so every upsampling
        phase is covered); the result does not depend on which frame.
        """
        frame = 10_000
        lo, hi = self._needed_ranges(frame * self.hop_length, (frame + 1) * self.hop_length)[-1]
        return frame - lo, hi - frame


def _crop(x: torch.Tensor, offset: int, needed: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Cut ``x`` (starting at global position ``offset``) down to the inclusive range ``needed``."""
    lo = max(needed[0], offset)
    hi = min(needed[1] + 1, offset + x.shape[-1])
    if lo == offset and hi == offset + x.shape[-1]:
        return x, offset
    return x[..., lo - offset : hi - offset], lo
