"""Each voice's output level, measured once at load: the gain that brings it to the target loudness.

Piper voices come out of their models at different levels (the bundled voice at about
-26 LUFS), and ``piper-tts`` peak-normalizes each sentence, which lands near -20 LUFS
with peaks at full scale. Syrinx instead measures each voice's integrated loudness
(BS.1770) over a fixed, seeded passage and applies one fixed gain to everything it says:
the level is then the same from sentence to sentence, and a stream stays a stream.
"""

from __future__ import annotations

import logging
import math

from .audio.loudness import integrated_loudness
from .engine import Engine, SynthesisOptions, Voice

log = logging.getLogger(__name__)

# Ordinary sentences of mixed length and tone: statements, a question, numbers, an exclamation.
CALIBRATION_TEXT = (
    "The weather today will be mostly sunny, with a light breeze from the west. "
    "Could you tell me when the next train to the city leaves? "
    "Your order of three books and a lamp will arrive on Tuesday. "
    "Please hold the line while I look up your account. "
    "That is wonderful news, thank you so much! "
    "We open at nine in the morning and close at six in the evening."
)
CALIBRATION_SEED = 0


def calibration_gain_db(engine: Engine, voice: Voice, target_lufs: float) -> float:
    """The gain (dB) that brings ``voice`` to ``target_lufs``; run it on the engine thread."""
    audio = engine.synthesize(voice, CALIBRATION_TEXT, SynthesisOptions(seed=CALIBRATION_SEED))
    measured = integrated_loudness(audio, voice.info.sample_rate)
    if not math.isfinite(measured):  # a voice that says nothing audible: leave it alone
        log.warning("voice %s: its calibration passage is silent; its level is left as it is", voice.info.name)
        return 0.0
    gain = target_lufs - measured
    log.info("voice %s: %.1f LUFS as made, %+.1f dB to %.1f LUFS", voice.info.name, measured, gain, target_lufs)
    return gain
