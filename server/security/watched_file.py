"""A file read again whenever it changes on disk, keeping the last good contents while it is half-written.

cert-manager and Kubernetes rotate a mounted Secret in place: the kubelet writes the new files
into a fresh directory and swaps a symlink, so a path's ``stat`` (followed through the links)
changes. Readers call :meth:`WatchedFiles.current` where they need the contents (each TLS
handshake, each authenticated call): one ``stat`` per file, and a parse only after a change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

Signature = tuple[tuple[int, int, int, int], ...]


class UnusableFileError(Exception):
    """A watched file that cannot be read or does not hold what it should."""


class CredentialFileError(UnusableFileError):
    """A credentials file that cannot be read or does not hold what its flag expects."""


def _signature(paths: Sequence[Path]) -> Signature:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((-1, -1, -1, -1))
        else:
            out.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class WatchedFiles(Generic[T]):
    """``parse(paths)`` of some files, parsed again when any of them changes.

    The first parse happens at construction and its :class:`UnusableFileError` propagates
    (start-up fails with it). A later parse that fails keeps the previous value and logs one
    warning per changed state of the files: a rotation caught between writing the certificate
    and its key is retried on the next call, and the server goes on with what it had.
    """

    def __init__(self, what: str, paths: Sequence[Path], parse: Callable[[Sequence[Path]], T]) -> None:
        self._what = what
        self._paths = tuple(paths)
        self._parse = parse
        self._signature = _signature(self._paths)
        self._value = parse(self._paths)
        self.reloads = 0  # successful reloads since start-up

    def current(self) -> T:
        signature = _signature(self._paths)
        if signature != self._signature:
            self._signature = signature
            try:
                self._value = self._parse(self._paths)
            except UnusableFileError as error:
                log.warning("%s changed but cannot be used, keeping the previous one: %s", self._what, error)
            else:
                self.reloads += 1
                log.info("%s reloaded", self._what)
        return self._value
