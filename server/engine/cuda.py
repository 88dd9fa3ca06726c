"""CUDA specifics: float32 that means float32, and CUDA graphs for launch-bound steps.

A sentence's encode step is some 3,000 small operations and a first decode
window about 1,000. On a GPU each costs a few microseconds of Python and a
kernel launch while the kernel itself runs for less, so at batch 1 the host,
not the GPU, sets the time to first audio. A CUDA graph records a step's
kernels once and replays them with one launch. Graphs need fixed shapes and
no host synchronisation inside; the engine buckets its shapes already, so
single-sentence encodes and single-window decodes repeat the same few shapes,
and those are the calls that get graphs. Large batched steps keep running
eagerly: their kernels are long enough to hide the launches, and their shapes
rarely repeat.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

Inputs = Sequence[torch.Tensor | None]
Outputs = tuple[torch.Tensor, ...]


def use_ieee_float32() -> None:
    """Make float32 on CUDA mean IEEE float32 in convolutions and matrix products.

    cuDNN runs float32 convolutions in TF32 (a 10-bit mantissa) unless told not
    to, which would spend most of the 1e-3 parity budget on rounding. Callers
    who want faster and rougher numbers select float16 or bfloat16 instead.
    Process-wide, like torch's thread count, so the engine sets it when it is
    built for CUDA.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@dataclass
class CapturedCall:
    """A recorded call: its input buffers, its output buffers and how to replay it."""

    inputs: tuple[torch.Tensor | None, ...]
    outputs: Outputs
    replay: Callable[[], None]


# capture(fn, inputs, pool) -> (the recorded call, the memory pool it used)
Capture = Callable[[Callable[..., Outputs], Inputs, object], tuple[CapturedCall, object]]


def capture_cuda_graph(fn: Callable[..., Outputs], inputs: Inputs, pool: Any) -> tuple[CapturedCall, Any]:
    """Record ``fn(*inputs)`` as a CUDA graph, its memory in ``pool`` (``None``: a new pool).

    A pool is torch's opaque handle (``graph.pool()``), typed only in a private module."""
    static = tuple(None if x is None else x.clone() for x in inputs)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # a first run outside the graph: cuBLAS/cuDNN set-up is not capturable
        fn(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):  # other threads may use CUDA meanwhile
        outputs = tuple(fn(*static))
    return CapturedCall(static, outputs, graph.replay), graph.pool()


class GraphCache:
    """Replays recorded calls by key, recording each new key once (least recently used go first).

    All recordings share one memory pool, which is safe because replays run one at a
    time on the engine's thread and **the caller consumes each call's outputs before
    the next call**: the returned tensors are the recording's own buffers, which the
    next replay of any recording may overwrite. A call that cannot be recorded runs
    eagerly from then on, with one warning.
    """

    def __init__(self, max_graphs: int, capture: Capture = capture_cuda_graph) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.max_graphs = max_graphs
        self._capture = capture
        self._calls: OrderedDict[Hashable, CapturedCall | None] = OrderedDict()
        self._pool: object = None
        self.captures = 0
        self.replays = 0

    def __len__(self) -> int:
        return len(self._calls)

    def run(self, key: Hashable, fn: Callable[..., Outputs], inputs: Inputs) -> Outputs:
        """``fn(*inputs)``, replayed from a recording when ``key`` has one.

        ``key`` must capture everything that changes the work besides the input values:
        shapes, which inputs are ``None``, and any Python numbers ``fn`` closes over.
        """
        if key in self._calls:
            self._calls.move_to_end(key)
            call = self._calls[key]
        else:
            call = self._record(key, fn, inputs)
        if call is None:
            return tuple(fn(*inputs))
        if len(inputs) != len(call.inputs):
            raise ValueError(f"graph key {key!r}: {len(inputs)} inputs, recorded with {len(call.inputs)}")
        for buffer, value in zip(call.inputs, inputs):
            if buffer is None or value is None or buffer.shape != value.shape:
                if buffer is None and value is None:
                    continue
                raise ValueError(f"graph key {key!r} does not determine its inputs' shapes")
            buffer.copy_(value)
        call.replay()
        self.replays += 1
        return call.outputs

    def _record(self, key: Hashable, fn: Callable[..., Outputs], inputs: Inputs) -> CapturedCall | None:
        try:
            call, self._pool = self._capture(fn, inputs, self._pool)
            self.captures += 1
        except Exception as exc:  # an uncapturable call still has to run
            log.warning("running %r eagerly: it could not be recorded as a CUDA graph (%s)", key, exc)
            call = None
        self._calls[key] = call
        while len(self._calls) > self.max_graphs:
            self._calls.popitem(last=False)
        return call
