"""The engine layer: Piper voices run by our own torch VITS, streaming as it decodes.

This package never imports gRPC or protobuf; the transport maps its domain
types and errors.
"""

from .config import ChunkPolicy, EngineConfig
from .engine import (
    AudioChunk,
    DecodeWindow,
    EncodedSentence,
    Engine,
    SentenceRequest,
    SentenceStart,
    SynthesisOptions,
)
from .errors import InvalidOptionError, InvalidTextError, SyrinxError, VoiceLoadError, VoiceNotFoundError
from .vits.model import ReceptiveField
from .voice import DEFAULT_VOICE, Voice, VoiceCatalog, VoiceFiles, VoiceInfo, default_voice_files, load_voice
from .words import WordSpan

__all__ = [
    "AudioChunk",
    "ChunkPolicy",
    "DEFAULT_VOICE",
    "DecodeWindow",
    "EncodedSentence",
    "Engine",
    "EngineConfig",
    "InvalidOptionError",
    "InvalidTextError",
    "ReceptiveField",
    "SentenceRequest",
    "SentenceStart",
    "SynthesisOptions",
    "SyrinxError",
    "Voice",
    "VoiceCatalog",
    "VoiceFiles",
    "VoiceInfo",
    "VoiceLoadError",
    "WordSpan",
    "VoiceNotFoundError",
    "default_voice_files",
    "load_voice",
]
