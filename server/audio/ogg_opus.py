"""Opus in Ogg pages, written so that every page ends where a chunk ends.

libopus (through PyAV's FFmpeg build) does the coding; this module only
frames its packets as RFC 7845 asks: a first page with the ``OpusHead``
header, a second with ``OpusTags``, then audio pages whose granule position
counts 48 kHz samples, the last one marked end-of-stream with the exact
length (so decoders drop the encoder's padding). Each call to
:meth:`OggOpusEncoder.encode` returns whole pages only, so a client can hand
the first chunk to a player and every chunk after it as it comes.
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import UnsupportedAudioError

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # what the Opus codec accepts
FRAME_MS = 20  # Opus frame length used: the usual choice for speech and WebRTC
GRANULE_RATE = 48000  # Ogg Opus counts time in 48 kHz samples whatever the input rate
_VENDOR = b"syrinx (libopus via FFmpeg)"


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def _crc32(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, no reflection, initial value 0 (not zlib's)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


class OggPageWriter:
    """Ogg pages of one logical stream (RFC 3533)."""

    BEGIN, END = 0x02, 0x04

    def __init__(self, serial: int) -> None:
        self._serial = serial
        self._sequence = 0

    def page(self, packets: list[bytes], granule: int, flags: int = 0) -> bytes:
        """One page holding ``packets`` whole (at most 255 lacing values: about 64 kB)."""
        lacing = bytearray()
        for packet in packets:
            lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
        if len(lacing) > 255:
            raise ValueError("too many packets for one Ogg page")
        header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, self._serial, self._sequence, 0, len(lacing))
        page = bytearray(header + lacing + b"".join(packets))
        struct.pack_into("<I", page, 22, _crc32(bytes(page)))
        self._sequence += 1
        return bytes(page)


def _pyav():
    """PyAV, imported on first use: the import takes 0.17 s of start-up, and only Opus output needs it."""
    try:
        import av
    except ImportError:
        raise UnsupportedAudioError("OGG_OPUS output needs PyAV (the 'av' package), which this server lacks") from None
    return av


class OggOpusEncoder:
    """Mono 16-bit PCM at one of :data:`OPUS_RATES` in, Ogg Opus pages out."""

    def __init__(self, sample_rate: int, bitrate: int = 32000, complexity: int = 5, serial: int = 0x5359524E) -> None:
        if sample_rate not in OPUS_RATES:
            raise ValueError(f"Opus takes {OPUS_RATES} Hz, not {sample_rate}")
        av = _pyav()
        self._frame_type = av.AudioFrame
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = sample_rate
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bitrate
        # Complexity 5 of 10: 6 ms of CPU per second of 48 kHz audio instead of 17 ms at 10,
        # on the event loop's thread; for speech at 32 kbit/s the difference is hard to hear.
        codec.options = {"compression_level": str(complexity)}
        codec.open()
        self._codec = codec
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self._to_granule = GRANULE_RATE // sample_rate
        self._pages = OggPageWriter(serial)
        self._head = bytes(codec.extradata)  # FFmpeg writes the OpusHead packet, pre-skip included
        self.pre_skip = struct.unpack_from("<H", self._head, 10)[0]
        self._granule = 0  # 48 kHz samples of all packets written so far
        self.samples_in = 0  # real samples taken into frames so far (padding excluded)
        self._pending = np.zeros(0, dtype=np.int16)  # less than a frame, waiting for more

    def headers(self) -> bytes:
        tags = b"OpusTags" + struct.pack("<I", len(_VENDOR)) + _VENDOR + struct.pack("<I", 0)
        return self._pages.page([self._head], 0, OggPageWriter.BEGIN) + self._pages.page([tags], 0)

    def encode(self, samples: np.ndarray) -> bytes:
        """Pages for every whole frame now available (empty if none); the rest waits for more audio."""
        pcm = np.concatenate([self._pending, samples.astype(np.int16)])
        whole = len(pcm) - len(pcm) % self.frame_samples
        self._pending = pcm[whole:]
        packets = [self._packet(pcm[at : at + self.frame_samples]) for at in range(0, whole, self.frame_samples)]
        self.samples_in += whole
        return self._page(packets, 0)

    def finish(self) -> bytes:
        """The last (short) frame, the encoder's flush and the end-of-stream page."""
        packets = []
        if len(self._pending):  # padded with silence; the end granule cuts it off again
            self.samples_in += len(self._pending)
            packets.append(self._packet(np.pad(self._pending, (0, self.frame_samples - len(self._pending)))))
            self._pending = np.zeros(0, dtype=np.int16)
        packets += [bytes(p) for p in self._codec.encode(None)]
        # The exact end, not the packets' total: decoders trim the last frame's padding by it.
        exact_end = self.pre_skip + self.samples_in * self._to_granule
        return self._pages.page(packets, exact_end, OggPageWriter.END)

    def _packet(self, frame: np.ndarray) -> bytes:
        audio = self._frame_type.from_ndarray(np.ascontiguousarray(frame)[None, :], format="s16", layout="mono")
        audio.sample_rate = self.sample_rate
        (packet,) = self._codec.encode(audio)  # libopus: one packet per frame, no lookahead queue
        self._granule += self.frame_samples * self._to_granule
        return bytes(packet)

    def _page(self, packets: list[bytes], flags: int) -> bytes:
        pages = b""
        for at in range(0, len(packets), 50):  # 50 x 20 ms per page keeps lacing well under 255
            pages += self._pages.page(packets[at : at + 50], self._granule_after(at + 50, len(packets)), flags)
        return pages

    def _granule_after(self, end: int, count: int) -> int:
        return self._granule - max(0, count - end) * self.frame_samples * self._to_granule
