"""The shared VITS layers' hand-written kernels against torch's reference convolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syrinx.server.engine.vits.layers import _depthwise_time_major


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (3, 3), (3, 9), (5, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_conv_matches_the_reference_at_every_length(kernel, dilation, bias):
    """Lengths shorter than the conv's reach too, where some taps read no input row at all."""
    torch.manual_seed(kernel * dilation)
    channels = 24
    conv = nn.Conv1d(
        channels, channels, kernel, groups=channels, dilation=dilation, padding=dilation * (kernel - 1) // 2, bias=bias
    )
    with torch.inference_mode():
        for length in (1, 2, dilation, dilation + 1, 2 * dilation * kernel, 97):
            x = torch.randn(2, length, channels)
            out = _depthwise_time_major(conv, x)
            reference = conv(x.transpose(1, 2)).transpose(1, 2)
            assert out.shape == reference.shape
            torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
