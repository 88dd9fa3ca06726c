"""Domain errors of the engine layer.

The transport maps each class to one gRPC status code in a single table; the
messages here are what a client reads, so they say what was wrong and what is
allowed.

A message travels in a gRPC trailer, and clients refuse trailers over 16 KiB in
all (the caller then sees RESOURCE_EXHAUSTED, not the error), so what a message
quotes of a request, or lists, is bounded (``quoted``, ``listed``).
"""

from __future__ import annotations

from collections.abc import Sequence

QUOTE_CHARS = 80  # of a client's string, quoted in a message
LIST_ITEMS = 20  # names listed in a message before "and N more"


def quoted(text: str) -> str:
    """``text`` as a message quotes it: whole when short, else its start and its length."""
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}... ({len(text)} characters)"


def listed(items: Sequence[str], separator: str = ", ") -> str:
    """The first ``LIST_ITEMS`` of ``items`` joined, and how many more there are."""
    shown = separator.join(quoted(item) for item in items[:LIST_ITEMS])
    return shown if len(items) <= LIST_ITEMS else f"{shown}{separator}and {len(items) - LIST_ITEMS} more"


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
        super().__init__(f"unknown voice '{quoted(name)}'; available voices: {listed(self.available) or 'none'}")


class VoiceLoadError(SyrinxError):
    """A voice file is missing, corrupt, truncated or does not match its config."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot load voice file {path}: {problem}")


class StartupError(SyrinxError):
    """The server cannot start as configured (a port taken, a file unreadable): one line for the operator."""
