"""The tokens file and the watched-file reload, as pure code (no server, no gRPC)."""

from __future__ import annotations

import hashlib
import os

import pytest

from syrinx.server.security.tokens import parse_tokens, read_tokens
from syrinx.server.security.watched_file import CredentialFileError, WatchedFiles

RAW = "raw-token-0123456789"
HASHED = "hashed-token-abcdefgh"


def sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def test_raw_and_hashed_tokens_match_and_others_do_not():
    table = parse_tokens(f"# ops team\n\n{RAW}\n  {sha(HASHED)} max_streams=3  \n")
    assert [e.line for e in table.entries] == [3, 4]
    assert table.match([RAW]).line == 3
    hashed = table.match(["Bearer", HASHED])
    assert (hashed.line, hashed.max_streams) == (4, 3)
    assert table.match([]) is None
    assert table.match([RAW + "x", RAW[:-1], sha(HASHED), ""]) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no tokens"),
        ("# only a comment\n", "no tokens"),
        ("ok-token-0123456789\nshort\n", "line 2: a token must have at least 16 characters"),
        ("sha256:abc\n", "line 1: sha256: must be followed by 64 hex digits"),
        (f"{RAW} max_streams=0\n", "line 1: unknown option"),
        (f"{RAW} limit=4\n", "line 1: unknown option"),
    ],
)
def test_a_bad_file_names_the_line_but_never_quotes_it(text, problem):
    with pytest.raises(CredentialFileError) as error:
        parse_tokens(text)
    message = str(error.value)
    assert problem in message
    for secret in ("short", RAW, "sha256:abc", "limit=4"):
        assert secret not in message


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_good(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(RAW + "\n")
    watched = WatchedFiles("tokens", [path], read_tokens)
    assert watched.current().match([RAW])
    assert watched.current() is watched.current()  # unchanged: not parsed again

    replacement = tmp_path / "new"
    replacement.write_text(HASHED + "\n")
    os.replace(replacement, path)
    assert watched.current().match([HASHED]) and not watched.current().match([RAW])
    assert watched.reloads == 1

    path.write_text("tiny\n")
    assert watched.current().match([HASHED])  # kept
    path.unlink()
    assert watched.current().match([HASHED])  # kept while the file is gone
    path.write_text(RAW + "\n")
    assert watched.current().match([RAW])
    assert watched.reloads == 2


def test_an_unreadable_file_fails_at_once(tmp_path):
    with pytest.raises(CredentialFileError, match="cannot read"):
        WatchedFiles("tokens", [tmp_path / "absent"], read_tokens)
