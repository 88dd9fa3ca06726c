"""Sample-rate conversion as a stream, with soxr (the SoX resampler library).

The resampler keeps its filter state between chunks, so a streamed result
equals resampling the whole audio at once (no clicks at chunk boundaries),
and the total length is exactly ``round(samples_in * rate_out / rate_in)``:
no drift however long the stream. The price is the filter's delay: a part of
each chunk's output comes with the next chunk (the rest at :meth:`finish`).
"""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32") if rate_in != rate_out else None

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Resampled audio for ``samples`` that is ready now (float32)."""
        samples = np.asarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples)

    def finish(self) -> np.ndarray:
        """The rest, held back by the filter until the input ended."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
