"""piper-tts's espeak-ng bridge, made to let go of the GIL and of the clauses it returns.

piper-tts phonemizes through ``piper.espeakbridge.get_phonemes(text)``: one C call that
asks espeak-ng for the text's clauses one after another, holding the GIL throughout. For a
long text that is tens of milliseconds (about 25-35 ms for 1,600 characters) during which no
other Python thread runs: not the event loop that answers every call, not the gRPC handlers
of other streams. In a burst of calls, each admitted stream's first step stalled the loop
like this, and the calls it refused waited behind it (docs/reliability.md).

The bridge's library exports espeak-ng's own API, so the same function is called here
through ctypes, one clause per call, exactly as the bridge calls it. ctypes releases the GIL
for each foreign call, so the loop runs between (and during) clauses. The result is the
bridge's, item for item; piper's own phonemize keeps doing everything around it, so what
the model hears is unchanged. espeak-ng keeps one global state (its voice, its buffers), so
callers must hold :data:`ESPEAK_LOCK` around a whole phonemize (voice set, then clauses).

The bridge also leaked: piper-tts 1.8.0's ``get_phonemes`` returns its clauses each with one
reference too many. Clauses built here are ordinary tuples. Where the library does not
export the function, the bridge's own call is kept and only its extra references are
dropped (:func:`leak_free`).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable

# espeak-ng's state is global: one phonemize at a time, process-wide. Re-entrant: a caller
# holds it around piper's whole phonemize, which calls the replacement, which takes it too
# (so a caller that forgets it, such as piper's phonemize called directly, is still safe).
ESPEAK_LOCK = threading.RLock()

Clauses = Callable[[str], list[tuple[str, str, bool]]]

# speak_lib.h: espeakCHARS_AUTO, and phoneme mode bit 1 (IPA as UTF-8).
_CHARS_AUTO = 0
_PHONEMES_IPA = 0x02
# The clause flags piper's bridge tells apart, and what it calls each (espeak-ng's
# readclause.h): a pause length, an intonation and whether the clause ends a sentence.
_CLAUSE_FLAGS = 0x000FFFFF
_FULL_STOP, _COMMA, _QUESTION, _EXCLAMATION = 0x0000, 0x1000, 0x2000, 0x3000
_CLAUSE, _SENTENCE = 0x00040000, 0x00080000
_TERMINATORS = {
    40 | _FULL_STOP | _SENTENCE: ".",
    40 | _QUESTION | _SENTENCE: "?",
    45 | _EXCLAMATION | _SENTENCE: "!",
    20 | _COMMA | _CLAUSE: ",",
    30 | _FULL_STOP | _CLAUSE: ":",
    30 | _COMMA | _CLAUSE: ";",
}

_plug_lock = threading.Lock()
_bridge_own: Clauses | None = None  # the bridge's get_phonemes, once plug() has replaced it


def library_clauses(library_path: str) -> Clauses | None:
    """The bridge's ``get_phonemes`` as ctypes calls into its library (which releases the GIL
    during each), or None where the library does not export espeak-ng's function."""
    library = ctypes.CDLL(library_path)  # the same handle as the loaded extension: one espeak state
    try:
        to_phonemes = library.espeak_TextToPhonemesWithTerminator
    except AttributeError:
        return None
    to_phonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    to_phonemes.restype = ctypes.c_char_p

    def get_phonemes(text: str) -> list[tuple[str, str, bool]]:
        if "\0" in text:  # as the bridge's argument parsing refuses it
            raise ValueError("embedded null character")
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        position = ctypes.c_void_p(ctypes.addressof(buffer))  # espeak moves it on, to NULL at the end
        terminator = ctypes.c_int()
        clauses = []
        with ESPEAK_LOCK:
            while position.value is not None:
                phonemes = to_phonemes(ctypes.byref(position), _CHARS_AUTO, _PHONEMES_IPA, ctypes.byref(terminator))
                flags = terminator.value & _CLAUSE_FLAGS
                clauses.append(
                    (
                        (phonemes or b"").decode("utf-8"),
                        _TERMINATORS.get(flags, ""),
                        flags & _SENTENCE == _SENTENCE,
                    )
                )
        return clauses

    return get_phonemes


def leak_free(original: Clauses) -> Clauses | None:
    """``original`` wrapped to drop the extra reference it leaves on each clause, or None when
    a probe shows it leaves none (measured, not assumed: a fixed bridge is left alone)."""
    normal = _references_to_item([tuple([object()])], 0)  # a list's item with no other owner
    probe = original("probe, with two clauses.")
    if not probe or any(_references_to_item(probe, i) != normal + 1 for i in range(len(probe))):
        return None
    decref = ctypes.pythonapi.Py_DecRef
    decref.argtypes, decref.restype = [ctypes.py_object], None
    for index in range(len(probe)):
        decref(probe[index])

    def get_phonemes(text: str) -> list[tuple[str, str, bool]]:
        clauses = original(text)
        for index in range(len(clauses)):
            if _references_to_item(clauses, index) == normal + 1:
                decref(clauses[index])
        return clauses

    return get_phonemes


def plug() -> None:
    """Put :func:`library_clauses` (or else :func:`leak_free`) in place of the bridge's
    ``get_phonemes``, which piper's phonemize calls. Espeak-ng must already be started (piper
    starts it on its first phonemize). Idempotent, process-wide."""
    global _bridge_own
    from piper import espeakbridge

    with _plug_lock, ESPEAK_LOCK:
        if _bridge_own is not None:
            return
        _bridge_own = espeakbridge.get_phonemes
        replacement = library_clauses(espeakbridge.__file__) or leak_free(_bridge_own)
        if replacement is not None:
            espeakbridge.get_phonemes = replacement  # type: ignore[assignment]


def bridge_own() -> Clauses:
    """The bridge's own ``get_phonemes`` (tests compare the replacement with it)."""
    from piper import espeakbridge

    return _bridge_own or espeakbridge.get_phonemes


def _references_to_item(items: list, index: int) -> int:
    """``sys.getrefcount`` of ``items[index]``, always taken the same way so counts compare."""
    return sys.getrefcount(items[index])
