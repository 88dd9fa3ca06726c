"""The residual coupling flow (``flow``), run in reverse to turn prior samples into latents."""

from __future__ import annotations

import torch
from torch import nn

from .architecture import Architecture, ArchitectureError
from .containers import module_dict
from .layers import WaveNet


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: one half of the channels shifts the other."""

    def __init__(self, arch: Architecture, path: str) -> None:
        super().__init__()
        self.pre = arch.conv(f"{path}.pre").build()
        self.enc = WaveNet(arch, f"{path}.enc")
        self.post = arch.conv(f"{path}.post").build()
        self.half_channels = self.pre.in_channels

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.enc(self.pre(x0) * mask, mask, g=g)
        mean = self.post(h) * mask
        return torch.cat([x0, (x1 - mean) * mask], dim=1)


class ResidualCouplingFlow(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        # Coupling layers sit at even indices; the odd ones are parameter-free Flips.
        self.layer_ids = arch.indices("flow.flows")
        if not self.layer_ids:
            raise ArchitectureError("no coupling layers found under 'flow.flows'")
        self.flows = module_dict({str(i): ResidualCouplingLayer(arch, f"flow.flows.{i}") for i in self.layer_ids})

    @property
    def radius(self) -> int:
        """Latent frames of context each side that one output frame depends on."""
        return sum(layer.enc.radius for layer in self.flows.values())

    def reverse(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        g: torch.Tensor | None = None,
        keep: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Latents from prior samples ``z``; with ``keep`` only frames ``[lo, hi)`` are returned.

        Each coupling layer reads ``radius`` frames of context on each side, so the
        layers run over spans that shrink towards ``keep`` (exact, and cheaper when a
        window carries context frames).
        """
        length = z.shape[-1]
        lo, hi = keep if keep is not None else (0, length)
        remaining = self.radius
        offset = 0
        for i in reversed(self.layer_ids):
            layer = self.flows[str(i)]
            start, end = max(lo - remaining, offset), min(hi + remaining, offset + z.shape[-1])
            z, mask = z[..., start - offset : end - offset], mask[..., start - offset : end - offset]
            offset = start
            z = layer.reverse(torch.flip(z, [1]), mask, g)
            remaining -= layer.enc.radius
        return z[..., lo - offset : hi - offset]
