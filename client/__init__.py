"""Python client for Syrinx: generated stubs (``syrinx.v1``) plus a small helper and the ``syrinx`` CLI."""

from .client import AudioStream, SyrinxClient
from .live import LiveEvent, LiveSession

__all__ = ["AudioStream", "LiveEvent", "LiveSession", "SyrinxClient"]
