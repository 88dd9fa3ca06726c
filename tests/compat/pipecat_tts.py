"""Pipecat's NVIDIA TTS service pointed at Syrinx (run by `make compat` in its own venv).

    python pipecat_tts.py ADDRESS MODE TEXT OUT.pcm      MODE: per_sentence or stitched
Writes the audio Pipecat produced (s16le mono) and prints its rate and length as JSON.
"""

import asyncio
import json
import sys

from pipecat.frames.frames import EndFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.nvidia.tts import NvidiaTTSService, NvidiaTTSSettings, NvidiaTTSSynthesisMode

RATE = 24000


class Capture(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.audio = bytearray()
        self.sample_rate = None

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.audio += frame.audio
            self.sample_rate = frame.sample_rate
        await self.push_frame(frame, direction)


async def main(address: str, mode: str, text: str, out: str) -> None:
    tts = NvidiaTTSService(
        server=address,
        use_ssl=False,
        sample_rate=RATE,
        settings=NvidiaTTSSettings(voice="Piper.EN-US.joe-medium", synthesis_mode=NvidiaTTSSynthesisMode(mode)),
    )
    capture = Capture()
    task = PipelineTask(Pipeline([tts, capture]), params=PipelineParams(audio_out_sample_rate=RATE))
    await task.queue_frames([TTSSpeakFrame(text), EndFrame()])
    await PipelineRunner(handle_sigint=False).run(task)
    with open(out, "wb") as f:
        f.write(capture.audio)
    print(json.dumps({"sample_rate": capture.sample_rate, "bytes": len(capture.audio)}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
