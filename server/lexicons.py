"""Server-wide pronunciation lexicons: files beside the voices, read again when they change.

For a voice named ``en_US-joe-medium`` (language ``en_US``) the lexicons directory may hold
``en.lexicon``, ``en_US.lexicon`` and ``en_US-joe-medium.lexicon``; a more specific file's
entries win, and a request's own ``pronunciations`` win over all of them. In Kubernetes the
directory is a mounted ConfigMap: the kubelet swaps it in place, and the next request sees
the new entries. Every entry's IPA is checked against the voice's phonemes: at start-up a
bad file stops the server with a line naming it; later, a bad edit is logged and the last
good lexicon stays in use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from .engine import Voice
from .engine.errors import InvalidTextError
from .security.watched_file import UnusableFileError, WatchedFiles
from .text.lexicon import Lexicon, LexiconError, parse_lexicon_file

SUFFIX = ".lexicon"


class LexiconFileError(UnusableFileError):
    pass


def lexicon_paths(directory: Path, voice: Voice) -> list[Path]:
    """The files that may hold ``voice``'s lexicon, least specific first."""
    language = voice.info.language
    names = dict.fromkeys([language.split("_")[0].split("-")[0], language, voice.info.name])
    return [directory / f"{name}{SUFFIX}" for name in names if name]


class VoiceLexicons:
    """Each voice's file lexicon (empty where there are no files)."""

    def __init__(self, directory: Path | None, voices: Sequence[Voice]) -> None:
        self._watched: dict[str, WatchedFiles[Lexicon]] = {}
        if directory is None:
            return
        for voice in voices:
            paths = lexicon_paths(directory, voice)
            self._watched[voice.info.name] = WatchedFiles(
                f"lexicon of voice {voice.info.name}", paths, functools.partial(_read, voice=voice)
            )

    def of(self, voice: Voice) -> Lexicon:
        watched = self._watched.get(voice.info.name)
        return watched.current() if watched is not None else Lexicon({})


def _read(paths: Sequence[Path], voice: Voice) -> Lexicon:
    lexicon = Lexicon({})
    for path in paths:  # least specific first: later files win
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as error:
            raise LexiconFileError(f"{path}: cannot be read: {error}") from None
        try:
            found = parse_lexicon_file(text, str(path))
        except LexiconError as error:
            raise LexiconFileError(str(error)) from None
        for word, ipa in found.entries.items():
            try:
                voice.phonemizer.ipa_phonemes(ipa)
            except InvalidTextError as error:
                raise LexiconFileError(f'{path}: "{word}": {error}') from None
        lexicon = found.over(lexicon)
    return lexicon
