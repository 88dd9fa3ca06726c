"""The engine's GPU figures, from a kit small enough to travel to a machine without the voice package or espeak.

The machine lent for CUDA runs (see ``docs/engine.md``) has torch, onnx and
numpy, but neither ``piper-tts`` (espeak-ng) nor the voice package, and what
travels there is capped at 64 MiB. ``export`` runs here and writes a kit:

  voice.onnx        the default voice, weights rounded to float16 (31 MB instead of 63);
                    the engine's own loader reads it as it reads any Piper voice
  voice.onnx.json   the voice's config
  texts.json        every text ``run`` speaks, phonemized here by the real phonemizer
  reference.npz     onnxruntime's audio for the parity corpus, noise off, computed
                    here from the same rounded weights (so rounding cancels out)

``run`` runs there (or here, on the CPU, as a check of the kit itself):

* parity: each sentence of the parity corpus decoded as one window, relative
  L2 error against onnxruntime for float32 (target 1e-3) and, on CUDA, for the
  float16 and bfloat16 decoder (target 1e-2);
* first audio: streamed, each text of ``bench.engine_bench``, median of ``--runs``
  (target on CUDA: 10 ms); on CUDA also with the CUDA graphs off, to show what
  they buy;
* throughput: B sentences (1.5-3 s each) encoded in one batch, then their
  decode windows under the server's chunk policy, the k-th window of every
  sentence in one batched call; audio seconds per wall second (target: 1000x
  real time at batch 64).

It prints a table and, with ``--json``, writes the figures. Not a test.

    python -m bench.gpu_kit export --kit gpukit
    python -m bench.gpu_kit run --kit gpukit --device cuda --json out.json
    python -m bench.gpu_kit serve --kit gpukit --device cuda --port 50051   # then bench.load_bench --address
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.engine_bench import _stream_run, machine
from syrinx.server.calibration import CALIBRATION_TEXT
from syrinx.server.engine import (
    DEFAULT_VOICE,
    Engine,
    EngineConfig,
    SynthesisOptions,
    Voice,
    VoiceCatalog,
    VoiceFiles,
    default_voice_files,
    load_voice,
)
from syrinx.server.engine.engine import WARM_UP_TEXT, DecodeWindow
from syrinx.server.engine.errors import InvalidTextError
from syrinx.server.engine.phonemizer import PhonemizedSentence
from syrinx.server.text.speech import Speech

KIT_VOICE = "voice.onnx"
KIT_TEXTS = "texts.json"
KIT_REFERENCE = "reference.npz"
NO_NOISE = SynthesisOptions(length_scale=1.0, noise_scale=0.0, noise_w=0.0)
TARGETS = {"parity_float32": 1e-3, "parity_half": 1e-2, "first_audio_ms_cuda": 10.0, "x_real_time_batch_64": 1000.0}


# ---------------------------------------------------------------- the kit's phonemizer


class KitPhonemizer:
    """The sentences the real phonemizer made at export time, looked up by text.

    Only for this benchmark, on a machine without espeak-ng: any other text is
    an error, never a guess.
    """

    def __init__(self, table: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self._table = {
            text: [PhonemizedSentence(tuple(s["phonemes"]), tuple(s["phoneme_ids"])) for s in sentences]
            for text, sentences in table.items()
        }

    def speak(self, speech: Speech, with_words: bool = False) -> list[PhonemizedSentence]:
        if speech.plain_text is None:
            raise InvalidTextError("the benchmark kit has plain text only (no SSML or lexicons)")
        return self.sentences(speech.plain_text, with_words)

    def ipa_phonemes(self, ipa: str) -> list[str]:
        raise InvalidTextError("the benchmark kit has no phonemizer for IPA")

    def sentences(self, text: str, with_words: bool = False) -> list[PhonemizedSentence]:
        if with_words:
            raise InvalidTextError("the benchmark kit has no word timestamps")
        try:
            return list(self._table[text])
        except KeyError:
            raise InvalidTextError(f"text not phonemized in the kit: {text[:60]!r}") from None


@dataclass(frozen=True)
class Kit:
    directory: Path
    texts: Mapping[str, Any]  # {"parity": [...], "latency": {name: text}, "load": [...], "sentences": {text: [...]}}

    @classmethod
    def open(cls, directory: Path) -> Kit:
        return cls(directory, json.loads((directory / KIT_TEXTS).read_text()))

    def voice_files(self) -> VoiceFiles:
        return VoiceFiles(DEFAULT_VOICE, self.directory / KIT_VOICE, self.directory / (KIT_VOICE + ".json"))

    def load(self, config: EngineConfig) -> Voice:
        table = self.texts["sentences"]
        return load_voice(self.voice_files(), config, make_phonemizer=lambda _config, _max: KitPhonemizer(table))

    def reference(self) -> dict[str, np.ndarray]:
        with np.load(self.directory / KIT_REFERENCE) as data:
            return {name: data[name] for name in data.files}


def _reference_key(text_index: int, sentence_index: int) -> str:
    return f"t{text_index}_s{sentence_index}"


# ---------------------------------------------------------------- export (here)


def _rounded_model(source: Path):
    """The voice's ONNX graph with every weight (float32, two or more values) rounded to float16.

    Scalars stay: they are graph constants (sqrt(d), epsilons) that our code
    writes as numbers, not weights it reads. Returns the graph twice: weights
    stored as float16 (for the kit) and as float32 (for onnxruntime).
    """
    import onnx
    from onnx import numpy_helper

    rounded = onnx.load(str(source))  # becomes the float32 copy of the rounded weights, for onnxruntime
    half = onnx.ModelProto()  # the same weights stored as float16, for the kit
    half.CopyFrom(rounded)
    for index, tensor in enumerate(rounded.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size >= 2:
            half.graph.initializer[index].CopyFrom(numpy_helper.from_array(array.astype(np.float16), tensor.name))
            rounded.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(array.astype(np.float16).astype(np.float32), tensor.name)
            )
    return half, rounded


def default_texts() -> dict[str, Any]:
    """What ``run`` speaks: the parity tests' corpus, the engine benchmark's texts, the load benchmark's sentences."""
    from bench.engine_bench import TEXTS
    from bench.load_bench import CORPUS as LOAD_CORPUS
    from tests.corpus import CORPUS as PARITY_CORPUS

    return {"parity": list(PARITY_CORPUS), "latency": dict(TEXTS), "load": list(LOAD_CORPUS)}


# What the gRPC server needs beyond the GPU machine's own packages (torch, onnx, numpy, typing-extensions),
# with their dependencies; the versions are the ones installed here. PyAV is left out: 35 MB, and only
# Opus output needs it (the server imports it on first use).
SERVER_PACKAGES = (
    "grpcio",
    "grpcio-health-checking",
    "grpcio-reflection",
    "grpcio-status",
    "protobuf",
    "soxr",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-prometheus",
    "prometheus-client",
)
DEVICE_HAS = ("numpy", "typing_extensions")
DEVICE_PYTHON = "3.12"


def download_wheels(directory: Path) -> None:
    """Wheels of :data:`SERVER_PACKAGES` for the GPU machine's Python (linux x86-64), from PyPI."""
    import subprocess
    import sys
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in SERVER_PACKAGES]
    platforms = [
        arg
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        for arg in ("--platform", tag)
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            DEVICE_PYTHON,
            "--implementation",
            "cp",
            *platforms,
            "--dest",
            str(directory),
            *pins,
        ],
        check=True,
    )
    for wheel in directory.glob("*.whl"):
        if wheel.name.split("-")[0].lower() in DEVICE_HAS:
            wheel.unlink()


def export(kit_dir: Path, texts: Mapping[str, Any] | None = None, wheels: bool = False) -> None:
    import onnxruntime
    from piper.config import PiperConfig, SynthesisConfig
    from piper.voice import PiperVoice

    kit_dir.mkdir(parents=True, exist_ok=True)
    files = default_voice_files()
    config_text = files.config_path.read_text()
    (kit_dir / (KIT_VOICE + ".json")).write_text(config_text)
    half, rounded = _rounded_model(files.model_path)
    (kit_dir / KIT_VOICE).write_bytes(half.SerializeToString())

    voice = load_voice(files, EngineConfig())
    texts = dict(texts or default_texts())
    every_text = [
        *texts["parity"],
        *texts["latency"].values(),
        *texts["load"],
        WARM_UP_TEXT,
        CALIBRATION_TEXT,
    ]  # the server warms up and measures its level with the last two
    texts["sentences"] = {
        text: [
            {"phonemes": list(s.phonemes), "phoneme_ids": list(s.phoneme_ids)} for s in voice.phonemizer.sentences(text)
        ]
        for text in every_text
    }
    (kit_dir / KIT_TEXTS).write_text(json.dumps(texts, ensure_ascii=False))

    session = onnxruntime.InferenceSession(rounded.SerializeToString(), providers=["CPUExecutionProvider"])
    piper = PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config_text)))
    no_noise = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.0)
    reference = {}
    for t, text in enumerate(texts["parity"]):
        for s, sentence in enumerate(texts["sentences"][text]):
            audio = piper.phoneme_ids_to_audio(sentence["phoneme_ids"], no_noise)
            reference[_reference_key(t, s)] = np.asarray(audio, dtype=np.float32)
    np.savez_compressed(kit_dir / KIT_REFERENCE, **reference)
    if wheels:
        download_wheels(kit_dir / "wheels")
    size = sum(p.stat().st_size for p in kit_dir.rglob("*") if p.is_file()) / 2**20
    print(f"kit written to {kit_dir}: {len(every_text)} texts, {len(reference)} reference sentences, {size:.1f} MiB")


# ---------------------------------------------------------------- run (there)


def relative_l2(ours: np.ndarray, reference: np.ndarray) -> float:
    if ours.shape != reference.shape:
        return float("inf")  # different durations: as far from parity as it gets
    ref = reference.astype(np.float64)
    return float(np.linalg.norm(ours.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-12))


def parity(kit: Kit, engine: Engine, voice) -> dict[str, float]:
    """Relative L2 error of every parity sentence (one window each) against onnxruntime."""
    reference = kit.reference()
    errors = []
    for t, text in enumerate(kit.texts["parity"]):
        sentences = voice.phonemizer.sentences(text)
        for s, encoded in enumerate(engine.finish(engine.encode(engine.sentence_requests(voice, sentences, NO_NOISE)))):
            (audio,) = engine.decode([DecodeWindow(encoded, 0, encoded.num_frames)])
            errors.append(relative_l2(audio, reference[_reference_key(t, s)]))
    return {"sentences": len(errors), "median": statistics.median(errors), "max": max(errors)}


def first_audio_ms(engine: Engine, voice, text: str, runs: int) -> float:
    """Median streamed first audio; the first run is discarded (it picks kernels)."""
    options = SynthesisOptions(seed=1)
    times = [_stream_run(engine, voice, text, options).first_audio_s * 1e3 for _ in range(runs + 1)]
    return statistics.median(times[1:])


def batched_x_real_time(engine: Engine, voice, texts: Sequence[str], batch: int) -> dict[str, float]:
    """Encode ``batch`` sentences in one call, then decode window k of every sentence in one call.

    Every engine call ends by copying its result to the host, so wall time covers the device's work.
    """
    sentences = [voice.phonemizer.sentences(texts[i % len(texts)])[0] for i in range(batch)]
    requests = engine.sentence_requests(voice, sentences, SynthesisOptions(seed=1))
    started = time.perf_counter()
    encoded = engine.finish(engine.encode(requests))  # (long sentences on the CPU come head first)
    schedules = [engine.config.chunks.windows(e.num_frames) for e in encoded]
    first_audio = None
    for k in range(max(len(s) for s in schedules)):
        windows = [DecodeWindow(e, *s[k]) for e, s in zip(encoded, schedules) if k < len(s)]
        engine.decode(windows)
        if first_audio is None:
            first_audio = time.perf_counter() - started
    elapsed = time.perf_counter() - started
    audio_s = sum(e.num_samples for e in encoded) / voice.info.sample_rate
    return {
        "batch": batch,
        "audio_s": audio_s,
        "wall_s": elapsed,
        "x_real_time": audio_s / elapsed,
        "first_window_ms": first_audio * 1e3,
    }


def run(kit: Kit, device: str, dtypes: Sequence[str], runs: int, batches: Sequence[int]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "targets": TARGETS, "by_dtype": {}}
    for dtype in dtypes:
        engine = Engine(EngineConfig(device=device, dtype=dtype))
        voice = kit.load(engine.config)
        row: dict[str, Any] = {"parity": parity(kit, engine, voice)}
        row["first_audio_ms"] = {
            name: first_audio_ms(engine, voice, text, runs) for name, text in kit.texts["latency"].items()
        }
        if device.startswith("cuda"):  # what the CUDA graphs buy
            eager = Engine(EngineConfig(device=device, dtype=dtype, cuda_graphs=False))
            row["first_audio_ms_without_graphs"] = {
                name: first_audio_ms(eager, voice, text, runs) for name, text in kit.texts["latency"].items()
            }
        batched_x_real_time(engine, voice, kit.texts["load"], max(batches))  # warm-up: kernels for every shape
        row["throughput"] = [batched_x_real_time(engine, voice, kit.texts["load"], b) for b in batches]
        results["by_dtype"][dtype] = row
        _print_row(dtype, row)
        del voice, engine
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return results


def serve(kit: Kit, server_args: Sequence[str]) -> int:
    """The gRPC server (``syrinx serve`` flags) with the kit's voice, for the load benchmark's ``--address``."""
    from syrinx.server.app import serve as serve_grpc
    from syrinx.server.config import load_config
    from syrinx.server.logs import configure_logging

    config = load_config(server_args, os.environ)
    configure_logging(config.log_level, config.log_format)
    return asyncio.run(serve_grpc(config, os.environ, load_catalog=lambda engine: VoiceCatalog([kit.load(engine)])))


def _print_row(dtype: str, row: Mapping[str, Any]) -> None:
    p = row["parity"]
    target = TARGETS["parity_float32"] if dtype == "float32" else TARGETS["parity_half"]
    print(
        f"\n{dtype}: parity over {p['sentences']} sentences, relative L2 median {p['median']:.2e}, max {p['max']:.2e} (target {target:g})"
    )
    print("  first audio ms (streamed, median): " + ", ".join(f"{k} {v:.1f}" for k, v in row["first_audio_ms"].items()))
    if "first_audio_ms_without_graphs" in row:
        print(
            "  without CUDA graphs:               "
            + ", ".join(f"{k} {v:.1f}" for k, v in row["first_audio_ms_without_graphs"].items())
        )
    print(f"  {'batch':>6}{'audio s':>10}{'wall ms':>10}{'x real time':>13}{'first window ms':>17}")
    for t in row["throughput"]:
        print(
            f"  {t['batch']:>6}{t['audio_s']:>10.1f}{t['wall_s'] * 1e3:>10.1f}{t['x_real_time']:>13.1f}{t['first_window_ms']:>17.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("export", "run", "serve"), help="serve: any other flags go to the server")
    parser.add_argument("--kit", type=Path, default=Path("gpukit"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtypes", default=None, help="comma-separated; default float32,float16,bfloat16 on CUDA, float32 on the CPU"
    )
    parser.add_argument("--runs", type=int, default=15, help="first-audio runs per text")
    parser.add_argument("--batches", default="1,8,32,64,128")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--wheels", action="store_true", help="export: also fetch the server's wheels for the GPU machine"
    )
    args, server_args = parser.parse_known_args()
    if args.command == "serve":
        raise SystemExit(serve(Kit.open(args.kit), ["--device", args.device, *server_args]))
    if server_args:
        parser.error(f"unrecognized arguments: {' '.join(server_args)}")
    if args.command == "export":
        export(args.kit, wheels=args.wheels)
        return
    dtypes = (
        args.dtypes.split(",")
        if args.dtypes
        else (["float32", "float16", "bfloat16"] if args.device.startswith("cuda") else ["float32"])
    )
    print(f"machine: {machine()}")
    results = run(Kit.open(args.kit), args.device, dtypes, args.runs, [int(b) for b in args.batches.split(",")])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
