"""Domain errors of the engine layer.

The transport maps each class to one gRPC status code in a single table; the
messages here are what a client reads, so they say what was wrong and what is
allowed.
"""

from __future__ import annotations


class SyrinxError(Exception):
    """Base class of errors a caller can act on."""


class InvalidTextError(SyrinxError):
    """The text cannot be spoken (empty, nothing pronounceable, over a limit)."""


class InvalidOptionError(SyrinxError):
    """A synthesis option or engine setting is out of range or unsupported."""


class VoiceNotFoundError(SyrinxError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = sorted(available)
        super().__init__(f"unknown voice '{name}'; available voices: {', '.join(self.available) or 'none'}")


class VoiceLoadError(SyrinxError):
    """A voice file is missing, corrupt, truncated or does not match its config."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot load voice file {path}: {problem}")
