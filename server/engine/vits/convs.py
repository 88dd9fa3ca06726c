"""The CPU convolution kernels of the network: oneDNN paths that torch's own choice misses.

Same parameters (and names) as torch's modules, so weights load unchanged and
every other device takes torch's own path. Each class says which case it
speeds up and by how much it was measured.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_applies(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and not torch.compiler.is_compiling()  # the compiler picks its own kernels
    )


def _as_channels_last_2d(x: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, time)`` as a ``(batch, channels, 1, time)`` image stored time-major."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` that always takes oneDNN on the CPU (float32 and bfloat16).

    For a batch of one, torch sends inputs under 20480 elements to its native
    kernels, and its native dilated convolution loops over channels: a 128-channel
    dilated conv over 149 frames took 1.2 ms there against about 0.2 ms in oneDNN.
    Short windows and crops hit exactly that case.

    With ``channels_last`` set, the conv runs as a 1-row 2-D conv on time-major
    data, where oneDNN uses its direct kernel instead of im2col + GEMM; the output
    stays time-major for the next such layer. In the decoder this made a 48-frame
    window 12% faster.

    With ``prepacked`` set, the weight is kept in oneDNN's own layout instead of
    being reordered at every call (see ``_PackedWeights``). A channel-major
    layer's output is then a time-major tensor seen channel-major.
    """

    channels_last = False
    prepacked = False  # keep the weight in oneDNN's layout (see _PackedWeights)
    padding: tuple[int, ...]  # never a string ('same'): the architecture gives numbers

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._packs = _PackedWeights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _onednn_applies(x):
            return super().forward(x)
        ops = _prepacking_ops() if self.prepacked else None
        if self.channels_last:
            image = _as_channels_last_2d(x)
            if ops is not None:
                return self._packed_conv(image, ops, time_major=True).squeeze(2)
            out = torch.mkldnn_convolution(
                image,
                self.weight.unsqueeze(2),
                self.bias,
                (0, *self.padding),
                (1, *self.stride),
                (1, *self.dilation),
                self.groups,
            )
            return out.squeeze(2)
        if ops is not None:
            return self._prepacked_forward(x, ops)
        return torch.mkldnn_convolution(
            x.contiguous(), self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """The same conv for ``(batch, time, channels)`` input, giving time-major output.

        On the CPU the weight stays in oneDNN's layout (see ``_PackedWeights``): the
        text encoder's feed-forward convs took 6-10% less time per encode this way
        than channel-major with per-call weight reorders.
        """
        ops = _prepacking_ops()
        if ops is None or not _onednn_applies(x):
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        image = x.contiguous().transpose(1, 2).unsqueeze(2)  # (batch, channels, 1, time), stored time-major
        return self._packed_conv(image, ops, time_major=True).squeeze(2).transpose(1, 2)

    def _prepacked_forward(self, x: torch.Tensor, ops: _PrepackingOps) -> torch.Tensor:
        out = self._packed_conv(x.contiguous().unsqueeze(2), ops, time_major=False)
        return out.squeeze(2)  # oneDNN writes it time-major: this is a transposed view, not a copy

    def _packed_conv(self, image: torch.Tensor, ops: _PrepackingOps, time_major: bool) -> torch.Tensor:
        """oneDNN's conv of a 1-row image with the weight packed for this input's shape and layout."""

        def image_weight() -> torch.Tensor:
            weight = self.weight.detach().unsqueeze(2)
            return weight.contiguous(memory_format=torch.channels_last) if time_major else weight

        return _packed_image_conv(
            ops,
            self._packs,
            self.weight,
            image_weight,
            self.bias,
            image,
            [0, *self.padding],
            [1, *self.stride],
            [1, *self.dilation],
            self.groups,
            time_major,
        )


def _packed_image_conv(
    ops: _PrepackingOps,
    packs: _PackedWeights,
    source: torch.Tensor,
    image_weight,
    bias: torch.Tensor | None,
    image: torch.Tensor,
    padding: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    time_major: bool,
) -> torch.Tensor:
    """oneDNN's conv of ``image`` with the layer's weight packed for this input's shape and layout.

    ``source`` is the layer's parameter (packs follow it); ``image_weight()`` gives
    the weight as the 2-D conv of ``image`` takes it, in plain layout.
    """

    def pack() -> torch.Tensor:
        return ops.reorder(image_weight(), padding, stride, dilation, groups, list(image.shape))

    packed = packs.for_input(source, (*image.shape, time_major), pack)
    return ops.convolution(image, packed, bias, padding, stride, dilation, groups, "none", [], "")


def _weight_state(t: torch.Tensor) -> tuple[int, int, torch.dtype]:
    """Changes when a layer gets new weights: ``.to()`` moves them, ``load_state_dict``
    writes in place (bumping the version; inference tensors have none)."""
    return t.data_ptr(), 0 if t.is_inference() else t._version, t.dtype


@dataclass(frozen=True)
class _PrepackingOps:
    reorder: Callable[..., torch.Tensor]  # weight, padding, stride, dilation, groups, input size -> packed weight
    convolution: Callable[..., torch.Tensor]
    reorder_linear: Callable[..., torch.Tensor]  # weight, rows -> weight in oneDNN's layout for a matrix product
    linear: Callable[..., torch.Tensor]
    nbytes: Callable[[torch.Tensor], int]
    data_ptr: Callable[[torch.Tensor], int]


@functools.cache
def _prepacking_ops() -> _PrepackingOps | None:
    """oneDNN's convolution on a weight already in its own layout (registered by torch for its compiler)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        ops = torch.ops.mkldnn
        return _PrepackingOps(
            ops._reorder_convolution_weight.default,
            ops._convolution_pointwise.default,
            ops._reorder_linear_weight.default,
            ops._linear_pointwise.default,
            ops._nbytes.default,
            ops.data_ptr.default,
        )
    except (AttributeError, RuntimeError):
        return None


class _PackedWeights:
    """One layer's weight in oneDNN's blocked layouts, made once instead of at every call.

    ``torch.mkldnn_convolution`` reorders a plain weight into the layout its kernel
    wants on every call. For the flow's 192-to-384-channel, kernel-5 convs (1.5 MB
    of weights) over a first window's 32-56 frames, that reorder costs as much as
    the arithmetic: prepacked, the first decode window took 9% less time. oneDNN
    picks the layout by input shape, and a weight packed for another shape is
    reordered again at each call (10 ms instead of 0.2 ms measured), so packs are
    looked up by exact input shape and layout. Inputs that get the same weight
    layout share one copy, compared byte for byte: one or two copies per conv in
    practice.
    """

    def __init__(self) -> None:
        self._source: tuple[int, int, torch.dtype] | None = None
        self._by_input: dict[tuple, torch.Tensor] = {}
        self._distinct: list[torch.Tensor] = []

    def __deepcopy__(self, memo: dict) -> _PackedWeights:
        return _PackedWeights()  # a cache, rebuilt on first use (oneDNN tensors cannot be copied)

    def for_input(self, source: torch.Tensor, key: tuple, pack) -> torch.Tensor:
        """The layer's weight packed for inputs described by ``key`` (shape and layout).

        ``source`` is the layer's parameter (packs are dropped when it changes);
        ``pack()`` makes a new pack.
        """
        state = _weight_state(source)
        if state != self._source:  # new weights (load_state_dict, .to()): old packs are stale
            self._source, self._by_input, self._distinct = state, {}, []
        packed = self._by_input.get(key)
        if packed is None:
            packed = pack()
            same = [p for p in self._distinct if _same_bytes(p, packed)]
            if same:
                packed = same[0]
            else:
                self._distinct.append(packed)
            self._by_input[key] = packed
        return packed


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two oneDNN tensors hold the same bytes (the same weight in the same layout).

    Equal bytes in different layouts (a weight of zeros) would only cost speed: the
    convolution reorders a weight whose layout is not the one it wants."""
    ops = _prepacking_ops()
    assert ops is not None, "only packed weights are compared"
    size = ops.nbytes(a)
    return size == ops.nbytes(b) and ctypes.string_at(ops.data_ptr(a), size) == ctypes.string_at(ops.data_ptr(b), size)


class PackedLinear:
    """``F.linear`` with a fixed weight that the CPU keeps in oneDNN's layout.

    ``F.linear`` repacks its weight at every call; for the text encoder's fused
    query/key/value projection (192 to 576 channels) over 100-560 rows, the packed
    product took 0.65-0.75 of its time, with the same bits.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias
        self._packs = _PackedWeights()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        ops = _prepacking_ops()
        if ops is None or not _onednn_applies(x) or x.dtype != self.weight.dtype:
            return F.linear(x, self.weight, self.bias)
        rows = x.numel() // x.shape[-1]
        packed = self._packs.for_input(self.weight, (rows,), lambda: ops.reorder_linear(self.weight, rows))
        return ops.linear(x, packed, self.bias, "none", [], "")


@functools.cache
def _mkldnn_transposed_conv():
    """oneDNN's transposed convolution (registered by torch for its compiler), if this build has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._convolution_transpose_pointwise.default
    except (AttributeError, RuntimeError):
        return None


class ConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` that always takes oneDNN on the CPU (float32 and bfloat16).

    As for convolutions, torch picks its native kernel below 20480 input elements,
    and that is slower (1.3 ms against 0.9 ms for 60 frames of the first
    upsampler). With ``channels_last`` set it runs as a polyphase convolution,
    whose weight ``prepacked`` keeps in oneDNN's layout as for ``Conv1d``.
    """

    channels_last = False  # as for Conv1d
    prepacked = False  # as for Conv1d (polyphase path only)
    padding: tuple[int, ...]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._packs = _PackedWeights()

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        kernel = _mkldnn_transposed_conv()
        if kernel is None or output_size is not None or not _onednn_applies(x):
            return super().forward(x, output_size)
        if self.channels_last and self.groups == 1 and self.dilation[0] == 1:
            return self._polyphase(x)
        return kernel(
            x.contiguous(),
            self.weight,
            self.bias,
            list(self.padding),
            list(self.output_padding),
            list(self.stride),
            list(self.dilation),
            self.groups,
            "none",
            [],
            None,
        )

    def _polyphase(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed conv as a stride-1 conv with one output group per phase.

        Output sample ``m = q * stride + r`` (before cropping the padding) is
        ``sum_j x[q - j] . w[j * stride + r]``: for each phase ``r`` a conv of
        ``taps`` over the input. Stored time-major, the phases of one input step
        lie next to each other, so interleaving them is a free reshape. It ran
        15-30% faster than oneDNN's own transposed kernel on the decoder's shapes.
        """
        stride, size, pad = self.stride[0], self.kernel_size[0], self.padding[0]
        batch, _, frames = x.shape
        out_channels = self.out_channels
        weight, bias, taps = self._phase_weights()
        image = _as_channels_last_2d(x)
        if self.prepacked and (ops := _prepacking_ops()) is not None:
            out = _packed_image_conv(
                ops, self._packs, self.weight, lambda: weight, bias, image, [0, taps - 1], [1, 1], [1, 1], 1, True
            )
        else:
            out = torch.mkldnn_convolution(image, weight, bias, (0, taps - 1), (1, 1), (1, 1), 1)
        # out: (batch, stride * out, 1, frames + taps - 1), time-major
        steps = frames + taps - 1
        audio = out.permute(0, 3, 1, 2).reshape(batch, steps * stride, out_channels).transpose(1, 2)
        length = (frames - 1) * stride - 2 * pad + size + self.output_padding[0]
        return audio[:, :, pad : pad + length]

    def _phase_weights(self) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Weight and bias of the polyphase conv, rebuilt when the layer's weights change."""
        key = _weight_state(self.weight)
        cached = getattr(self, "_phase_cache", None)
        if cached is None or cached[0] != key:
            stride, size = self.stride[0], self.kernel_size[0]
            taps = -(-size // stride)
            w = F.pad(self.weight.detach(), (0, taps * stride - size))  # (in, out, taps*stride)
            w = w.reshape(self.in_channels, self.out_channels, taps, stride)  # [c, o, j, r] = w[c, o, j*stride + r]
            w = w.flip(2).permute(3, 1, 0, 2)  # (r, o, c, t) with t = taps - 1 - j
            w = w.reshape(stride * self.out_channels, self.in_channels, 1, taps)
            bias = None if self.bias is None else self.bias.detach().repeat(stride)
            cached = (key, w.contiguous(memory_format=torch.channels_last), bias, taps)
            self._phase_cache = cached
        return cached[1:]


class PointwiseConv1d(nn.Conv1d):
    """A 1x1 convolution computed as a batched matrix product.

    Same parameters (and names) as ``nn.Conv1d``; on the CPU torch sends 1x1
    convs through im2col + GEMM, which is about 3x slower than one ``baddbmm``
    for a thousand frames.
    """

    padding: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight[:, :, 0].expand(x.shape[0], -1, -1)
        if self.bias is None:
            return torch.bmm(weight, x)
        return torch.baddbmm(self.bias[None, :, None], weight, x)

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """The same conv for ``(batch, time, channels)`` input, giving time-major output."""
        return F.linear(x, self.weight[:, :, 0], self.bias)
