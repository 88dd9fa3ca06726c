"""The audio layer: resampling, chunking and encoding what the engine produces.

It knows nothing of gRPC or the engine: float samples at the voice's rate in,
bytes in the client's format out.
"""

from .errors import UnsupportedAudioError
from .formats import AudioRequest, Encoding, OutputFormat
from .pcm import pcm16, to_int16, wav_file
from .stream import AudioEncoderStream, EncodedChunk, encode_whole

__all__ = [
    "AudioEncoderStream",
    "AudioRequest",
    "EncodedChunk",
    "Encoding",
    "OutputFormat",
    "UnsupportedAudioError",
    "encode_whole",
    "pcm16",
    "to_int16",
    "wav_file",
]
