"""Text logic without a model or gRPC: segmenting streamed text, LLM output hygiene."""

from .hygiene import Spoken, clean
from .segmenter import Segment, Segmenter, SegmenterConfig

__all__ = ["Segment", "Segmenter", "SegmenterConfig", "Spoken", "clean"]
