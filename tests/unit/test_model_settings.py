"""Per-model load settings: validation, parsing the GPU-layers box, and the JSON store's atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webui.models.model_settings import (
    InvalidLoadOptions,
    ModelLoadOptions,
    flash_attn_choice,
    parse_flash_attn_choice,
    ModelSettingsStore,
    options_from_dict,
    parse_gpu_layers_text,
)
from webui.quarantine import set_aside_files


def test_saved_options_come_back_from_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "data" / "model-settings.json"
    chosen = ModelLoadOptions(n_ctx=2048, n_gpu_layers=12, n_threads=3, n_batch=256, flash_attn=True,
                              kv_cache_type="q8_0", use_mmap=False, use_mlock=True, chat_format="chatml")
    ModelSettingsStore(path).save("a.gguf", chosen)
    ModelSettingsStore(path).save("b.gguf", ModelLoadOptions(n_ctx=512))

    again = ModelSettingsStore(path)
    assert again.get("a.gguf") == chosen
    assert again.get("b.gguf") == ModelLoadOptions(n_ctx=512)
    assert again.get("never-saved.gguf") is None
    assert json.loads(path.read_text())["models"]["a.gguf"]["kv_cache_type"] == "q8_0"
    assert [p.name for p in path.parent.iterdir()] == ["model-settings.json"], "no temp file is left behind"


def test_remove_forgets_one_model_only(tmp_path: Path) -> None:
    store = ModelSettingsStore(tmp_path / "s.json")
    store.save("a.gguf", ModelLoadOptions(n_ctx=100))
    store.save("b.gguf", ModelLoadOptions(n_ctx=200))
    store.remove("a.gguf")
    assert store.get("a.gguf") is None
    assert store.get("b.gguf") == ModelLoadOptions(n_ctx=200)


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00garbage", b'["a list, not an object"]', b'{"models": 3}'])
def test_a_damaged_file_is_kept_aside_and_the_next_save_starts_a_new_one(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "model-settings.json"
    path.write_bytes(garbage)
    store = ModelSettingsStore(path)
    assert store.get("a.gguf") is None  # defaults apply
    [kept] = set_aside_files(tmp_path)
    assert kept.name.startswith("model-settings.json.corrupt-") and kept.read_bytes() == garbage
    store.save("a.gguf", ModelLoadOptions(n_ctx=64))
    assert store.get("a.gguf") == ModelLoadOptions(n_ctx=64)
    assert kept.read_bytes() == garbage  # the save did not touch what was kept aside


def test_an_invalid_saved_entry_is_ignored_and_unknown_keys_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 1, "models": {
        "bad.gguf": {"kv_cache_type": "q3_weird", "flash_attn": True},
        "newer.gguf": {"n_ctx": 1024, "rope_scaling": "yarn"},
    }}))
    store = ModelSettingsStore(path)
    assert store.get("bad.gguf") is None
    assert store.get("newer.gguf") == ModelLoadOptions(n_ctx=1024)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"n_ctx": 8}, "Context size"),
        ({"n_gpu_layers": -2}, "GPU layers"),
        ({"n_threads": 0}, "Threads"),
        ({"n_batch": 0}, "Batch size"),
        ({"kv_cache_type": "f32"}, "KV cache type"),
        ({"kv_cache_type": "q4_0", "flash_attn": False}, "needs flash attention"),
        ({"draft_model": "../elsewhere/model.gguf"}, "draft model must be one of the listed model files"),
        ({"draft_model": ""}, "draft model must be one of the listed model files"),
    ],
)
def test_out_of_range_options_are_refused_with_the_setting_named(fields: dict, named: str) -> None:
    with pytest.raises(InvalidLoadOptions, match=named):
        ModelLoadOptions(**fields)


def test_defaults_mean_auto_and_round_trip_through_a_dict() -> None:
    defaults = ModelLoadOptions()
    assert defaults.n_ctx is None and defaults.n_gpu_layers is None and defaults.n_threads is None
    assert defaults.flash_attn is None
    assert options_from_dict(defaults.as_dict()) == defaults


@pytest.mark.parametrize(("text", "expected"), [("auto", None), ("", None), (" AUTO ", None), ("0", 0), ("-1", -1), ("33", 33)])
def test_gpu_layers_box_takes_auto_or_a_number(text: str, expected: int | None) -> None:
    assert parse_gpu_layers_text(text) == expected


def test_gpu_layers_box_refuses_other_text() -> None:
    with pytest.raises(InvalidLoadOptions, match="auto"):
        parse_gpu_layers_text("lots")


@pytest.mark.parametrize(("text", "expected"), [("auto", None), ("", None), (None, None), ("on", True), (" OFF ", False)])
def test_flash_attention_box_takes_auto_on_or_off(text: str | None, expected: bool | None) -> None:
    assert parse_flash_attn_choice(text) is expected
    assert flash_attn_choice(expected) == (text or "auto").strip().lower()


def test_flash_attention_box_refuses_other_text() -> None:
    with pytest.raises(InvalidLoadOptions, match="Flash attention"):
        parse_flash_attn_choice("yes")


def test_a_version_1_file_reads_its_default_flash_attention_off_as_auto(tmp_path: Path) -> None:
    """Version 1 had only on/off, and off was the default that every untouched model saved."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 1, "models": {
        "untouched.gguf": {"n_ctx": 1024, "flash_attn": False},
        "chosen.gguf": {"flash_attn": True, "kv_cache_type": "q8_0"},
    }}))
    store = ModelSettingsStore(path)
    assert store.get("untouched.gguf") == ModelLoadOptions(n_ctx=1024, flash_attn=None)
    assert store.get("chosen.gguf") == ModelLoadOptions(flash_attn=True, kv_cache_type="q8_0")
    store.save("off.gguf", ModelLoadOptions(flash_attn=False))  # rewrites the file as version 2
    assert json.loads(path.read_text())["version"] == 2
    assert ModelSettingsStore(path).get("off.gguf") == ModelLoadOptions(flash_attn=False), "a version 2 off stays off"
    assert ModelSettingsStore(path).get("untouched.gguf") == ModelLoadOptions(n_ctx=1024, flash_attn=None)
