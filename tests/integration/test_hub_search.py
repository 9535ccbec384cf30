"""Finding models through the real huggingface_hub client against the local fake hub: search, recommendations, offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fakehub import FakeHub, allow_hub, closed_port_endpoint
from webui.config import Settings
from webui.engine import Engine
from webui.hardware import HardwareInfo
from webui.models.download import DownloadError, HubUnreachable
from webui.models.manager import ModelManager

# A CPU-only machine with 16 GiB of RAM, as in test_models_manager: the fit verdicts are the same everywhere.
MACHINE = HardwareInfo(cpu_physical_cores=2, cpu_logical_cores=2, ram_total_mb=16384, ram_available_mb=12000,
                       gpus=(), gpu_offload_supported=False)
REPOS = {
    "org/Tiny-GGUF": {"Tiny-Q4_K_M.gguf": b"q4" * 1000, "Tiny-Q8_0.gguf": b"q8" * 2000, "README.md": b"# Tiny\n"},
    "someone/tinyllama-GGUF": {"tinyllama-IQ4_XS-00001-of-00002.gguf": b"a" * 700,
                               "tinyllama-IQ4_XS-00002-of-00002.gguf": b"b" * 300},
    "org/tiny-safetensors": {"model.safetensors": b"weights"},
}


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModelManager, FakeHub]]:
    with FakeHub(REPOS) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        models = tmp_path / "models"
        models.mkdir()
        (models / "Tiny-Q8_0.gguf").write_bytes(b"already here")
        settings = Settings(models_dir=models, data_dir=tmp_path / "data")
        yield ModelManager(settings, MACHINE, Engine(), hub_endpoint=fake.endpoint), fake


def test_a_search_lists_the_gguf_files_of_matching_repos_with_sizes_and_fit(hub) -> None:
    manager, fake = hub
    found = {(f.repo_id, f.filename): f for f in manager.search_hub("TINY")}
    assert sorted(found) == [("org/Tiny-GGUF", "Tiny-Q4_K_M.gguf"), ("org/Tiny-GGUF", "Tiny-Q8_0.gguf"),
                             ("someone/tinyllama-GGUF", "tinyllama-IQ4_XS-00001-of-00002.gguf")]
    split = found[("someone/tinyllama-GGUF", "tinyllama-IQ4_XS-00001-of-00002.gguf")]
    assert (split.parts, split.size_bytes, split.quant) == (2, 1000, "IQ4_XS")
    q8 = found[("org/Tiny-GGUF", "Tiny-Q8_0.gguf")]
    assert (q8.size_bytes, q8.quant, q8.fits, q8.downloaded) == (4000, "Q8_0", "yes", True)
    assert q8.fit_reason.endswith("11.7 GiB of RAM is free")
    assert any("/api/models?" in r.path and "search=TINY" in r.path for r in fake.requests)


def test_a_search_that_matches_nothing_is_empty_and_a_blank_one_asks_for_a_name(hub) -> None:
    manager, fake = hub
    assert manager.search_hub("llama-70b") == []
    assert manager.search_hub("safetensors") == [], "a repository without GGUF files is not listed"
    asked = len(fake.requests)
    with pytest.raises(DownloadError, match=r"^Type part of a model's name to search for, e.g. qwen3.$"):
        manager.search_hub("   ")
    assert len(fake.requests) == asked, "a blank search asks the hub nothing"


def test_recommendations_come_from_the_catalog_without_a_single_hub_request(hub) -> None:
    manager, fake = hub
    picks = manager.recommendations()
    assert picks and picks[0].best and all(p.repo_id and p.filename.endswith(".gguf") for p in picks)
    assert fake.requests == [], "the page may show recommendations without phoning home"


def test_an_unreachable_hub_is_one_clear_sentence_within_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = closed_port_endpoint()
    allow_hub(monkeypatch, endpoint)
    manager = ModelManager(Settings(models_dir=tmp_path, data_dir=tmp_path / "data"), MACHINE, Engine(),
                           hub_endpoint=endpoint)
    started = time.monotonic()
    with pytest.raises(HubUnreachable) as caught:
        manager.search_hub("qwen")
    assert time.monotonic() - started < 3, "no retries with back-off before saying so"
    assert str(caught.value) == (f"The hub at {endpoint} cannot be reached (this machine looks offline), so search "
                                 "is not available; the models already here work as before.")


def test_the_offline_switch_means_search_never_opens_a_connection(hub, tmp_path: Path) -> None:
    _, fake = hub
    settings = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", offline=True)
    manager = ModelManager(settings, MACHINE, Engine(), hub_endpoint=fake.endpoint)
    with pytest.raises(HubUnreachable, match=r"The app runs offline \(--offline\), so it does not contact the hub."):
        manager.search_hub("tiny")
    assert fake.requests == []
