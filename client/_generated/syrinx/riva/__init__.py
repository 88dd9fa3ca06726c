"""Stubs generated from protos/syrinx/riva/ (`make proto`): NVIDIA Riva's TTS API as Syrinx serves it."""
