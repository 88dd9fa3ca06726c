"""Loading voices: broken files fail with a clear VoiceLoadError; the catalog finds and names voices."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from syrinx.server.engine import (
    DEFAULT_VOICE,
    EngineConfig,
    SynthesisOptions,
    VoiceCatalog,
    VoiceFiles,
    VoiceLoadError,
    VoiceNotFoundError,
    default_voice_files,
    load_voice,
)
from syrinx.server.engine.errors import StartupError
from syrinx.server.engine.voice import discover_voice_files

CONFIG = EngineConfig()


@pytest.fixture(scope="module")
def original() -> VoiceFiles:
    files = default_voice_files()
    assert files.model_path.is_file() and files.config_path.is_file()
    return files


@pytest.fixture(scope="module")
def original_config(original) -> dict:
    with open(original.config_path, encoding="utf-8") as f:
        return json.load(f)


def _voice_dir(tmp_path: Path, name: str = "en_US-broken-medium") -> tuple[Path, Path]:
    directory = tmp_path / "voices"
    directory.mkdir(exist_ok=True)
    return directory / f"{name}.onnx", directory / f"{name}.onnx.json"


def _load(model: Path, config: Path):
    return load_voice(VoiceFiles(model.name.removesuffix(".onnx"), model, config), CONFIG)


def test_truncated_model(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    with open(original.model_path, "rb") as f:
        model.write_bytes(f.read(1 << 20))
    config.symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError) as info:
        _load(model, config)
    assert str(model) in str(info.value)
    assert info.value.path == str(model)


def test_random_bytes_model(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    model.write_bytes(random.Random(1234).randbytes(1 << 20))
    config.symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError) as info:
        _load(model, config)
    assert str(model) in str(info.value)


def test_empty_model(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    model.write_bytes(b"")
    config.symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError, match="no nodes or weights"):
        _load(model, config)


def test_missing_model(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    config.symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError, match="not found") as info:
        _load(model, config)
    assert str(model) in str(info.value)


def test_onnx_model_that_is_not_a_voice(tmp_path, original):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3), dtype=np.float32), name="conv.weight")
    node = helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="/conv/Conv", pads=[1, 1])
    graph = helper.make_graph(
        [node],
        "not_vits",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        initializer=[weight],
    )
    model, config = _voice_dir(tmp_path)
    onnx.save(helper.make_model(graph), str(model))
    config.symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError, match="not a Piper VITS voice") as info:
        _load(model, config)
    assert str(model) in str(info.value)


def test_missing_config(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    with pytest.raises(VoiceLoadError) as info:
        _load(model, config)
    assert str(config) in str(info.value)
    assert "not found" in str(info.value)


@pytest.mark.parametrize("content", [b"{ not json", b"", b"\xff\xfe\x00garbage", b'{"num_symbols": 256,'])
def test_invalid_json_config(tmp_path, original, content):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    config.write_bytes(content)
    with pytest.raises(VoiceLoadError) as info:
        _load(model, config)
    assert str(config) in str(info.value)


def test_config_that_is_not_an_object(tmp_path, original):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    config.write_text("[1, 2, 3]")
    with pytest.raises(VoiceLoadError, match="not a JSON object"):
        _load(model, config)


def test_num_symbols_mismatch(tmp_path, original, original_config):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    config.write_text(json.dumps({**original_config, "num_symbols": 100}))
    with pytest.raises(VoiceLoadError, match="do not match") as info:
        _load(model, config)
    message = str(info.value)
    assert "num_symbols=100" in message and str(model) in message


def test_phoneme_id_beyond_the_model_vocabulary(tmp_path, original, original_config):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    id_map = {**original_config["phoneme_id_map"], "☃": [original_config["num_symbols"] + 5]}
    config.write_text(json.dumps({**original_config, "phoneme_id_map": id_map}))
    with pytest.raises(VoiceLoadError, match="do not match"):
        _load(model, config)


@pytest.mark.parametrize(
    "key_path", [("phoneme_id_map",), ("num_symbols",), ("audio", "sample_rate"), ("espeak", "voice")]
)
def test_config_missing_required_key(tmp_path, original, original_config, key_path):
    broken = json.loads(json.dumps(original_config))
    node = broken
    for key in key_path[:-1]:
        node = node[key]
    del node[key_path[-1]]
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    config.write_text(json.dumps(broken))
    with pytest.raises(VoiceLoadError) as info:
        _load(model, config)
    assert ".".join(key_path) in str(info.value)
    assert str(config) in str(info.value)


def test_multi_speaker_config_for_single_speaker_model(tmp_path, original, original_config):
    model, config = _voice_dir(tmp_path)
    model.symlink_to(original.model_path)
    config.write_text(json.dumps({**original_config, "num_speakers": 4}))
    with pytest.raises(VoiceLoadError, match="speakers"):
        _load(model, config)


# -- catalog ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory, original) -> Path:
    """A voices directory with the default voice under another name (symlinked files)."""
    directory = tmp_path_factory.mktemp("voices")
    (directory / "en_US-copy-medium.onnx").symlink_to(original.model_path)
    (directory / "en_US-copy-medium.onnx.json").symlink_to(original.config_path)
    return directory


def test_discover_voice_files_follows_symlinks(voices_dir):
    (files,) = discover_voice_files(voices_dir)
    assert files.name == "en_US-copy-medium"
    assert files.model_path == voices_dir / "en_US-copy-medium.onnx"
    assert files.config_path == voices_dir / "en_US-copy-medium.onnx.json"


def test_discover_voice_files_searches_subdirectories(tmp_path, original):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "xx_XX-nested-low.onnx").symlink_to(original.model_path)
    (tmp_path / "notes.txt").write_text("not a voice")
    (files,) = discover_voice_files(tmp_path)
    assert files.name == "xx_XX-nested-low"
    assert files.config_path == nested / "xx_XX-nested-low.onnx.json"


@pytest.fixture(scope="module")
def catalog(voices_dir) -> VoiceCatalog:
    return VoiceCatalog.load(EngineConfig(voices_dir=voices_dir))


def test_catalog_has_default_and_directory_voices(catalog, voices_dir):
    assert len(catalog) == 2
    assert [v.name for v in catalog] == [DEFAULT_VOICE, "en_US-copy-medium"]
    assert catalog.default_name == DEFAULT_VOICE == "en_US-joe-medium"
    copy = catalog.get("en_US-copy-medium")
    assert copy.info.model_path == voices_dir / "en_US-copy-medium.onnx"
    assert copy.info.sample_rate == 22050 and copy.info.num_speakers == 1


def test_catalog_get_default(catalog):
    assert catalog.get(None).name == DEFAULT_VOICE
    assert catalog.get("").name == DEFAULT_VOICE
    assert catalog.get(None) is catalog.get(DEFAULT_VOICE)


def test_catalog_unknown_voice(catalog):
    with pytest.raises(VoiceNotFoundError) as info:
        catalog.get("nope")
    assert info.value.name == "nope"
    assert info.value.available == ["en_US-copy-medium", "en_US-joe-medium"]
    assert "nope" in str(info.value)
    assert "en_US-copy-medium" in str(info.value) and "en_US-joe-medium" in str(info.value)


def test_copied_voice_sounds_like_the_original(catalog, engine):
    text = "Same weights, same voice."
    options = SynthesisOptions(seed=8)
    a = engine.synthesize(catalog.get(DEFAULT_VOICE), text, options)
    b = engine.synthesize(catalog.get("en_US-copy-medium"), text, options)
    assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-5


def test_catalog_missing_voices_dir(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(StartupError) as info:
        VoiceCatalog.load(EngineConfig(voices_dir=missing))
    assert str(missing) in str(info.value) and "--voices-dir" in str(info.value)


def test_catalog_voices_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(StartupError, match="--voices-dir"):
        VoiceCatalog.load(EngineConfig(voices_dir=path))


def test_catalog_with_no_voices(tmp_path):
    with pytest.raises(VoiceLoadError, match="no voice"):
        VoiceCatalog.load(EngineConfig(voices_dir=tmp_path, default_voice=False))


def test_catalog_without_default_voice(voices_dir):
    catalog = VoiceCatalog.load(EngineConfig(voices_dir=voices_dir, default_voice=False))
    assert [v.name for v in catalog] == ["en_US-copy-medium"]
    assert catalog.get(None).name == "en_US-copy-medium"


def test_catalog_skips_directory_voice_named_like_the_default(tmp_path, original):
    (tmp_path / f"{DEFAULT_VOICE}.onnx").symlink_to(original.model_path)
    (tmp_path / f"{DEFAULT_VOICE}.onnx.json").symlink_to(original.config_path)
    catalog = VoiceCatalog.load(EngineConfig(voices_dir=tmp_path))
    assert [v.name for v in catalog] == [DEFAULT_VOICE]
    assert catalog.get(None).info.model_path == original.model_path


def test_catalog_fails_on_a_broken_directory_voice(tmp_path, original):
    (tmp_path / "en_US-broken-medium.onnx").symlink_to(original.model_path)  # no .json
    with pytest.raises(VoiceLoadError) as info:
        VoiceCatalog.load(EngineConfig(voices_dir=tmp_path))
    assert "en_US-broken-medium.onnx.json" in str(info.value)


def test_catalog_rejects_two_directory_voices_with_the_same_name(tmp_path, original):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "en_US-dup-medium.onnx").symlink_to(original.model_path)
        (tmp_path / sub / "en_US-dup-medium.onnx.json").symlink_to(original.config_path)
    with pytest.raises(VoiceLoadError, match="duplicate"):
        VoiceCatalog.load(EngineConfig(voices_dir=tmp_path, default_voice=False))
