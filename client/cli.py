"""``syrinx``: serve, or talk to a Syrinx server from the command line."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import sys
import time

import grpc

from syrinx.v1 import synthesizer_pb2 as pb

from .client import DEFAULT_ADDRESS, SyrinxClient
from .live import LiveSession
from .security import Security

UTTERANCE = "stdin"  # `syrinx live` speaks its input as one utterance


def _security(args: argparse.Namespace) -> Security:
    """TLS from the flags; the token from --token-file or SYRINX_TOKEN (never a flag: argv is visible to all)."""
    token = os.environ.get("SYRINX_TOKEN") or None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    return Security(
        tls=args.tls, ca_file=args.tls_ca_file, cert_file=args.tls_cert_file, key_file=args.tls_key_file, token=token
    )


def _client(args: argparse.Namespace) -> SyrinxClient:
    return SyrinxClient(args.address, security=_security(args))


def _serve(args: argparse.Namespace, rest: list[str]) -> int:
    from syrinx.server.app import main as serve_main

    return serve_main(rest)


def _say(args: argparse.Namespace, rest: list[str]) -> int:
    with _client(args) as client:
        reply = client.synthesize(
            args.text,
            voice=args.voice,
            speaking_rate=args.rate,
            seed=args.seed,
            wav=True,
            sample_rate_hz=args.sample_rate,
        )
    with open(args.output, "wb") as f:
        f.write(reply.audio)
    seconds = reply.num_samples / reply.format.sample_rate_hz
    print(f"{seconds:.2f} s of audio -> {args.output}", file=sys.stderr)
    return 0


def _audio_config(args: argparse.Namespace) -> pb.AudioConfig:
    return pb.AudioConfig(
        encoding=f"AUDIO_ENCODING_{args.encoding.upper()}",
        sample_rate_hz=args.sample_rate,
        chunk_duration_ms=args.chunk_ms,
    )


def _stream(args: argparse.Namespace, rest: list[str]) -> int:
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    started = time.perf_counter()
    first = None
    try:
        with _client(args) as client:
            stream = client.stream(
                args.text, voice=args.voice, speaking_rate=args.rate, seed=args.seed, audio_config=_audio_config(args)
            )
            for audio in stream:
                if first is None:
                    first = time.perf_counter() - started
                    print(f"first audio after {first * 1e3:.1f} ms", file=sys.stderr)
                out.write(audio)
                out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    fmt = stream.format
    if fmt is not None:  # None: the stream ended before any audio
        print(f"{pb.AudioEncoding.Name(fmt.encoding)}, {fmt.sample_rate_hz} Hz mono -> {args.output}", file=sys.stderr)
    return 0


def _live(args: argparse.Namespace, rest: list[str]) -> int:
    return asyncio.run(_live_session(args))


async def _live_session(args: argparse.Namespace) -> int:
    """Standard input, as it arrives, spoken as one utterance; the audio goes out as it comes."""
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    loop = asyncio.get_running_loop()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span two reads
    first_text: float | None = None
    live = await LiveSession.open(
        args.address,
        security=_security(args),
        voice=args.voice,
        audio_config=_audio_config(args),
        speaking_rate=args.rate,
        seed=args.seed,
        segmentation=pb.Segmentation(
            client_segments=args.client_segments,
            no_eager_first_segment=args.no_eager,
            max_delay_ms=args.max_delay_ms,
            keep_markup=args.keep_markup,
        ),
    )

    async def feed() -> None:
        nonlocal first_text
        fd = sys.stdin.fileno()
        while data := await loop.run_in_executor(None, os.read, fd, 4096):
            first_text = first_text or time.perf_counter()
            await live.say(UTTERANCE, decoder.decode(data))
        await live.say(UTTERANCE, decoder.decode(b"", final=True), end=True)
        await live.done_sending()

    feeding = loop.create_task(feed())
    first_audio = None
    try:
        async for event in live:
            if event.audio:
                if first_audio is None and first_text is not None:
                    first_audio = time.perf_counter() - first_text
                    print(f"first audio {first_audio * 1e3:.1f} ms after the first text", file=sys.stderr)
                out.write(event.audio)
                out.flush()
        await feeding
    finally:
        feeding.cancel()
        await live.close()
        if out is not sys.stdout.buffer:
            out.close()
    fmt = live.formats.get(UTTERANCE)
    if fmt is not None:
        print(f"{pb.AudioEncoding.Name(fmt.encoding)}, {fmt.sample_rate_hz} Hz mono -> {args.output}", file=sys.stderr)
    return 0


def _voices(args: argparse.Namespace, rest: list[str]) -> int:
    with _client(args) as client:
        reply = client.voices()
    for voice in reply.voices:
        mark = " (default)" if voice.name == reply.default_voice else ""
        speakers = f", {len(voice.speakers)} speakers" if voice.speakers else ""
        print(f"{voice.name}{mark}: {voice.language}, {voice.sample_rate_hz} Hz, {voice.quality}{speakers}")
    return 0


def _health(args: argparse.Namespace, rest: list[str]) -> int:
    with _client(args) as client:
        status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syrinx", description=__doc__)
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"server address (default {DEFAULT_ADDRESS})")
    parser.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's CAs")
    parser.add_argument("--tls-ca-file", help="connect with TLS, trusting this PEM CA certificate")
    parser.add_argument("--tls-cert-file", help="PEM client certificate, for a server that wants mTLS")
    parser.add_argument("--tls-key-file", help="PEM private key of --tls-cert-file")
    parser.add_argument("--token-file", help="file holding a bearer token to send (or set SYRINX_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (flags: syrinx serve --help)", add_help=False).set_defaults(
        run=_serve
    )
    for name, run, help_text in (
        ("say", _say, "write a WAV file"),
        ("stream", _stream, "stream audio bytes; prints time to first audio"),
        ("live", _live, "speak standard input as it arrives (e.g. an LLM's output); stream the audio"),
    ):
        command = commands.add_parser(name, help=help_text)
        if name != "live":
            command.add_argument("text")
        command.add_argument("-o", "--output", default="out.wav" if name == "say" else "-")
        command.add_argument("--voice", default="")
        command.add_argument("--rate", type=float, default=0.0, help="speaking rate, 1.0 normal")
        command.add_argument("--seed", type=int, default=None)
        command.add_argument("--sample-rate", type=int, default=0, help="8000 to 48000 Hz; 0: the voice's own")
        if name != "say":
            command.add_argument("--encoding", default="linear16", choices=["linear16", "mulaw", "alaw", "ogg_opus"])
            command.add_argument(
                "--chunk-ms", type=int, default=0, help="exact chunk duration, e.g. 20; 0: as produced"
            )
        if name == "live":
            command.add_argument("--client-segments", action="store_true", help="no server-side segmentation")
            command.add_argument("--no-eager", action="store_true", help="no eager first segment")
            command.add_argument("--keep-markup", action="store_true", help="speak markdown and emoji as they are")
            command.add_argument("--max-delay-ms", type=int, default=0, help="0: the server's default (1500)")
        command.set_defaults(run=run)
    commands.add_parser("voices", help="list the server's voices").set_defaults(run=_voices)
    health = commands.add_parser("health", help="exit 0 if the server is SERVING")
    health.add_argument("--service", default="", help="'' (whole server) or syrinx.v1.Synthesizer")
    health.set_defaults(run=_health)

    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if rest and args.command != "serve":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command != "serve" and (args.tls_cert_file is None) != (args.tls_key_file is None):
        parser.error("--tls-cert-file and --tls-key-file go together")
    try:
        return args.run(args, rest)
    except OSError as error:  # a --token-file or TLS file that cannot be read
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
