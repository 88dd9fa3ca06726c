"""What a voice's network looks like: convolution settings and parameter shapes.

The architecture is read from a voice file (see ``onnx_voice``) and handed to
the module constructors, which build exactly those layers; the weights are then
loaded with ``load_state_dict``. Keeping the description separate from the
tensors lets modules stay free of any file format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .convs import Conv1d, ConvTranspose1d, PointwiseConv1d


class ArchitectureError(ValueError):
    """The voice file lacks a layer the network needs, or has one of the wrong shape."""


@dataclass(frozen=True)
class ConvSpec:
    """One 1-D convolution (or transposed convolution) as the voice file defines it."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    dilation: int = 1
    padding: int = 0
    groups: int = 1
    transposed: bool = False
    bias: bool = True

    def build(self) -> Conv1d | PointwiseConv1d:
        """The convolution (a 1x1 one without padding or groups runs as a matrix product)."""
        if self.transposed:
            raise ArchitectureError("a transposed convolution where a plain one belongs")
        cls = PointwiseConv1d if self.kernel_size == 1 and self.groups == 1 and self.padding == 0 else Conv1d
        return cls(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias,
        )

    def build_transposed(self) -> ConvTranspose1d:
        if not self.transposed:
            raise ArchitectureError("a plain convolution where a transposed one belongs")
        return ConvTranspose1d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias,
        )


@dataclass(frozen=True)
class Architecture:
    """Convolutions by module path (``dec.ups.0``) and other parameter shapes by name."""

    convs: Mapping[str, ConvSpec]
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def conv(self, path: str) -> ConvSpec:
        try:
            return self.convs[path]
        except KeyError:
            raise ArchitectureError(f"missing convolution layer '{path}'") from None

    def shape(self, name: str) -> tuple[int, ...]:
        try:
            return self.shapes[name]
        except KeyError:
            raise ArchitectureError(f"missing parameter '{name}'") from None

    def has_conv(self, path: str) -> bool:
        return path in self.convs

    def has(self, name: str) -> bool:
        return name in self.shapes or name in self.convs

    def indices(self, prefix: str) -> list[int]:
        """Sorted indices ``i`` for which some layer or parameter lives under ``prefix.i``."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)(?:\.|$)")
        found = {int(m.group(1)) for name in (*self.convs, *self.shapes) if (m := pattern.match(name))}
        return sorted(found)
