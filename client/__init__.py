"""Python client for Syrinx: generated stubs (``syrinx.v1``) plus a small helper and the ``syrinx`` CLI."""

from .client import AudioStream, SyrinxClient
from .live import LiveEvent, LiveSession
from .security import Security

__all__ = ["AudioStream", "LiveEvent", "LiveSession", "Security", "SyrinxClient"]
