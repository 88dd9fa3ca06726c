"""LiveKit Agents' NVIDIA TTS plugin pointed at Syrinx (run by `make compat` in its own venv).

    python livekit_tts.py ADDRESS TEXT OUT.pcm
Writes the audio LiveKit produced (s16le mono) and prints its rate and length as JSON.
"""

import asyncio
import json
import sys

from livekit.plugins import nvidia


async def main(address: str, text: str, out: str) -> None:
    tts = nvidia.TTS(server=address, use_ssl=False, voice="Piper.EN-US.joe-medium")
    voices = tts.list_voices()  # GetRivaSynthesisConfig, as the plugin reads it
    audio, rate = bytearray(), None
    async with tts.synthesize(text) as stream:
        async for event in stream:
            audio += event.frame.data.tobytes()
            rate = event.frame.sample_rate
    with open(out, "wb") as f:
        f.write(audio)
    print(json.dumps({"sample_rate": rate, "bytes": len(audio), "voices": voices}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
