"""Bearer tokens: the operator's file of tokens (or their SHA-256 hashes), checked in constant time.

The file has one entry per line; blank lines and ``#`` comments are skipped::

    # a raw token (16 characters or more, no spaces)
    9f2c0d6e4b1a47c8a3e5d7f9b1c3e5a7
    # or its hash, so the Secret never holds the token itself: printf %s TOKEN | sha256sum
    sha256:5d41402abc4b2a76b9719d911017c592ae6d2bd5c6b1b1f4c5f0f6d0a7b9c1e2
    # a per-token cap on concurrent calls, over the server-wide --max-streams-per-token
    sha256:... max_streams=4

Nothing here logs or returns a token: a match is named by the entry's line number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .watched_file import CredentialFileError

MIN_TOKEN_CHARS = 16
_HASH_PREFIX = "sha256:"


@dataclass(frozen=True)
class TokenEntry:
    digest: bytes  # SHA-256 of the token
    line: int
    max_streams: int | None = None  # None: the server-wide default


@dataclass(frozen=True)
class TokenTable:
    entries: tuple[TokenEntry, ...]

    def match(self, presented: Iterable[str]) -> TokenEntry | None:
        """The entry of the first presented token that is valid, or None.

        Every presented token is compared with every entry by ``hmac.compare_digest`` over
        SHA-256 digests, with no early exit, so the time taken does not tell how close a guess came.
        """
        found: TokenEntry | None = None
        for token in presented:
            digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
            for entry in self.entries:
                if hmac.compare_digest(digest, entry.digest) and found is None:
                    found = entry
        return found


def _entry(line_number: int, fields: list[str]) -> TokenEntry:
    secret, options = fields[0], fields[1:]
    if secret.startswith(_HASH_PREFIX):
        hex_digest = secret[len(_HASH_PREFIX) :]
        try:
            digest = bytes.fromhex(hex_digest)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise CredentialFileError(f"line {line_number}: sha256: must be followed by 64 hex digits")
    else:
        if len(secret) < MIN_TOKEN_CHARS:
            raise CredentialFileError(f"line {line_number}: a token must have at least {MIN_TOKEN_CHARS} characters")
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
    max_streams = None
    for option in options:
        key, _, value = option.partition("=")
        if key != "max_streams" or not value.isdigit() or int(value) < 1:
            raise CredentialFileError(f"line {line_number}: unknown option (the only one is max_streams=N, N >= 1)")
        max_streams = int(value)
    return TokenEntry(digest, line_number, max_streams)


def parse_tokens(text: str) -> TokenTable:
    """The table of a tokens file's text; :class:`CredentialFileError` names the first bad line
    (by number: the line itself may be a token)."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "" if raw.lstrip().startswith("#") else raw.strip()
        if line:
            entries.append(_entry(number, line.split()))
    if not entries:
        raise CredentialFileError("no tokens in the file (every call would be refused)")
    return TokenTable(tuple(entries))


def read_tokens(paths: Sequence[Path]) -> TokenTable:
    (path,) = paths
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialFileError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return parse_tokens(text)
    except CredentialFileError as error:
        raise CredentialFileError(f"{path}: {error}") from None
