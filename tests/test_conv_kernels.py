"""The engine's CPU convolution paths against torch's reference convolution."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from syrinx.server.engine.vits import convs
from syrinx.server.engine.vits.convs import Conv1d, ConvTranspose1d, PackedLinear

pytestmark = pytest.mark.skipif(convs._prepacking_ops() is None, reason="this torch build has no oneDNN prepacking")


def _prepacked_conv(dilation: int = 1, seed: int = 0) -> Conv1d:
    torch.manual_seed(seed)
    conv = Conv1d(48, 96, 5, padding=2 * dilation, dilation=dilation)
    conv.prepacked = True
    return conv


def _reference(conv: Conv1d, x: torch.Tensor) -> torch.Tensor:
    return F.conv1d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


@pytest.mark.parametrize("dilation", [1, 3])
def test_prepacked_conv_matches_the_reference_whatever_the_order_of_lengths(dilation):
    conv = _prepacked_conv(dilation)
    with torch.inference_mode():
        for length in (8, 40, 256, 8, 120, 40, 256, 1):  # lengths that get different weight layouts, interleaved
            x = torch.randn(1, 48, length)
            out = conv(x)
            assert out.shape == (1, 96, length)
            torch.testing.assert_close(out, _reference(conv, x), rtol=1e-5, atol=1e-5)


def test_time_major_conv_matches_the_reference_in_either_layout():
    conv = _prepacked_conv(dilation=2)
    with torch.inference_mode():
        for length in (40, 200, 40):
            x = torch.randn(1, 48, length)
            expected = _reference(conv, x)
            # The same input shape in both layouts: each gets the weight in its own layout.
            torch.testing.assert_close(
                conv.time_major(x.transpose(1, 2).contiguous()), expected.transpose(1, 2), rtol=1e-5, atol=1e-5
            )
            torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prepacked_time_major_layer_matches_the_reference(dtype):
    """The decoder's layers: time-major activations on packed weights, lengths interleaved."""
    conv = _prepacked_conv(dilation=3).to(dtype)
    conv.channels_last = True
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    with torch.inference_mode():
        for length in (12, 300, 12, 57):
            x = torch.randn(1, 48, length, dtype=dtype)
            torch.testing.assert_close(conv(x).float(), _reference(conv, x).float(), rtol=tolerance, atol=tolerance)


def _upsampler(seed: int = 0) -> ConvTranspose1d:
    torch.manual_seed(seed)
    up = ConvTranspose1d(32, 16, 16, stride=8, padding=4)  # the shape of the decoder's first upsampler, smaller
    up.channels_last = up.prepacked = True
    return up


def test_prepacked_polyphase_upsampler_matches_the_reference_and_follows_new_weights():
    up = _upsampler()

    def reference(x):
        return F.conv_transpose1d(x, up.weight, up.bias, up.stride, up.padding, up.output_padding)

    with torch.inference_mode():
        for length in (12, 90, 12):
            x = torch.randn(1, 32, length)
            torch.testing.assert_close(up(x), reference(x), rtol=1e-5, atol=1e-5)
    up.load_state_dict(_upsampler(seed=1).state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(up(x), reference(x), rtol=1e-5, atol=1e-5)


def test_prepacked_conv_follows_new_weights():
    conv = _prepacked_conv()
    x = torch.randn(1, 48, 40)
    with torch.inference_mode():
        conv(x)  # packs the first weights
    conv.load_state_dict(_prepacked_conv(seed=1).state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), _reference(conv, x), rtol=1e-5, atol=1e-5)


def test_a_copy_of_a_used_conv_works_in_another_precision():
    conv = _prepacked_conv()
    x = torch.randn(1, 48, 40)
    with torch.inference_mode():
        conv(x)
    double = copy.deepcopy(conv).double()  # packs are oneDNN tensors, which cannot be copied
    with torch.inference_mode():
        torch.testing.assert_close(double(x.double()), _reference(double, x.double()))


def test_packed_linear_matches_the_reference_whatever_the_number_of_rows():
    torch.manual_seed(0)
    linear = PackedLinear(torch.randn(72, 24), torch.randn(72))
    with torch.inference_mode():
        for shape in ((1, 112, 24), (2, 40, 24), (1, 3, 24), (1, 112, 24)):  # rows that pack differently, interleaved
            x = torch.randn(shape)
            torch.testing.assert_close(linear(x), F.linear(x, linear.weight, linear.bias), rtol=1e-5, atol=1e-5)


def test_packs_with_equal_bytes_are_recognised():
    ops = convs._prepacking_ops()
    weight = torch.randn(96, 48, 1, 5)

    def pack(w: torch.Tensor) -> torch.Tensor:
        return ops.reorder(w, [0, 2], [1, 1], [1, 1], 1, [1, 48, 1, 40])

    assert convs._same_bytes(pack(weight), pack(weight.clone()))
    assert not convs._same_bytes(pack(weight), pack(weight + 1))
