"""The audio layer's one error: what a client asked for cannot be produced here."""

from __future__ import annotations


class UnsupportedAudioError(ValueError):
    """The requested encoding, rate or chunking cannot be produced; the message says what can."""
