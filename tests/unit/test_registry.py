"""Start-up model resolution: which model wins, and what the launcher is told."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from webui.models.catalog import CATALOG
from webui.models.download import PARTIAL_DIR, ChecksumMismatch, HubUnreachable, RepoNotFound
from webui.models.embedded import embedded_model_path
from webui.models.registry import ModelNotFound, local_gguf_files, parse_repo_spec, resolve_model

ENTRY = dataclasses.replace(CATALOG[0], repo_id="org/catalog-GGUF", filename="catalog-Q4_K_M.gguf")


def make(path: Path, age_s: float = 0, content: bytes = b"GGUF") -> Path:
    """A file ``age_s`` seconds old (registry code never parses GGUF contents)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stamp = 1_700_000_000 - age_s
    os.utime(path, (stamp, stamp))
    return path


class FakeDownload:
    """Stands in for download_gguf: records calls, then writes a file or raises the given error."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, Path]] = []
        self.error = error

    def __call__(self, repo_id: str, filename: str, models_dir: Path, **_: object) -> Path:
        self.calls.append((repo_id, filename, models_dir))
        if self.error is not None:
            raise self.error
        return make(models_dir / Path(filename).name)


def no_catalog() -> None:
    raise AssertionError("the catalog must not be consulted")


def resolve(spec, models_dir, *, offline=False, download=None, choose=no_catalog):
    logged: list[str] = []
    result = resolve_model(
        spec, models_dir, offline=offline, choose_catalog_entry=choose,
        download=download or FakeDownload(AssertionError("no download expected")), log=logged.append,
    )
    return result, logged


# -- local_gguf_files -------------------------------------------------------------------------------

def test_local_files_newest_first(models_dir):
    old = make(models_dir / "old-Q4_K_M.gguf", age_s=100)
    new = make(models_dir / "new-Q8_0.gguf", age_s=1)
    make(models_dir / "notes.txt")
    assert local_gguf_files(models_dir) == [new, old]


def test_split_model_counts_once_and_only_when_complete(models_dir):
    for i in (1, 2, 3):
        make(models_dir / f"big-00{i:03d}-of-00003.gguf", age_s=10 * i)
    make(models_dir / "half-00001-of-00002.gguf")  # part 2 never arrived
    assert local_gguf_files(models_dir) == [models_dir / "big-00001-of-00003.gguf"]


def test_download_leftovers_hidden_files_and_projectors_are_skipped(models_dir):
    make(models_dir / PARTIAL_DIR / "x.gguf.0123456789abcdef.incomplete")
    make(models_dir / PARTIAL_DIR / "y.gguf")
    make(models_dir / "z.gguf.incomplete")
    make(models_dir / ".hidden.gguf")
    make(models_dir / "mmproj-F16.gguf")
    (models_dir / "folder.gguf").mkdir()
    assert local_gguf_files(models_dir) == []


def test_missing_models_dir_is_empty(tmp_path):
    assert local_gguf_files(tmp_path / "nowhere") == []


# -- resolve_model: order ---------------------------------------------------------------------------

def test_an_existing_path_wins_over_everything(models_dir, tmp_path):
    make(models_dir / "local.gguf")
    elsewhere = make(tmp_path / "elsewhere" / "mine.gguf")
    resolved, _ = resolve(str(elsewhere), models_dir)
    assert (resolved.path, resolved.source) == (elsewhere, "argument")


def test_a_file_name_is_looked_up_in_models_dir(models_dir):
    wanted = make(models_dir / "older.gguf", age_s=100)
    make(models_dir / "newer.gguf", age_s=1)
    resolved, _ = resolve("older.gguf", models_dir)
    assert (resolved.path, resolved.source) == (wanted, "argument")


def test_a_missing_local_name_is_a_clear_error(models_dir):
    make(models_dir / "other.gguf")
    with pytest.raises(ModelNotFound, match=r"No model 'typo\.gguf'.*repo_id:filename"):
        resolve("typo.gguf", models_dir)


def test_without_spec_the_newest_local_model_is_used(models_dir):
    make(models_dir / "a.gguf", age_s=50)
    newest = make(models_dir / "b.gguf", age_s=5)
    resolved, _ = resolve(None, models_dir)
    assert (resolved.path, resolved.source) == (newest, "local")
    assert "b.gguf" in resolved.note


def test_empty_models_dir_downloads_the_catalog_entry(models_dir):
    download = FakeDownload()
    resolved, logged = resolve(None, models_dir, download=download, choose=lambda: ENTRY)
    assert download.calls == [("org/catalog-GGUF", "catalog-Q4_K_M.gguf", models_dir)]
    assert (resolved.path, resolved.source) == (models_dir / "catalog-Q4_K_M.gguf", "catalog")
    assert "downloading Qwen3 1.7B (Q4_K_M; tools, thinking)" in logged[0]


def test_offline_with_nothing_local_uses_embedded_without_asking_the_catalog(models_dir):
    resolved, _ = resolve(None, models_dir, offline=True)
    assert (resolved.path, resolved.source) == (embedded_model_path(), "embedded")
    assert resolved.note == f"Offline and no model in {models_dir}: using the embedded SmolLM2-135M-Instruct."


def test_offline_still_prefers_a_local_model(models_dir):
    local = make(models_dir / "here.gguf")
    resolved, _ = resolve(None, models_dir, offline=True)
    assert (resolved.path, resolved.source) == (local, "local")


@pytest.mark.parametrize(
    ("error", "note"),
    [
        (HubUnreachable("The hub at x cannot be reached (ConnectError)."), "Hub unreachable"),
        (
            ChecksumMismatch("'f' arrived damaged; it was deleted."),
            "Could not download Qwen3 1.7B (Q4_K_M; tools, thinking)",
        ),
    ],
)
def test_failed_catalog_download_falls_back_to_embedded_and_says_why(models_dir, error, note):
    resolved, logged = resolve(None, models_dir, download=FakeDownload(error), choose=lambda: ENTRY)
    assert resolved.source == "embedded"
    assert resolved.note == f"{note}: using the embedded SmolLM2-135M-Instruct."
    assert str(error) in logged


# -- resolve_model: repo_id:filename ----------------------------------------------------------------

def test_repo_spec_downloads_that_file(models_dir):
    download = FakeDownload()
    resolved, _ = resolve("org/repo-GGUF:sub/m-Q5_K_M.gguf", models_dir, download=download)
    assert download.calls == [("org/repo-GGUF", "sub/m-Q5_K_M.gguf", models_dir)]
    assert (resolved.path, resolved.source) == (models_dir / "m-Q5_K_M.gguf", "argument")


def test_repo_spec_already_downloaded_needs_no_network(models_dir):
    first = make(models_dir / "m-00001-of-00002.gguf")
    make(models_dir / "m-00002-of-00002.gguf")
    resolved, _ = resolve("org/repo:m-00002-of-00002.gguf", models_dir, offline=True)
    assert (resolved.path, resolved.source) == (first, "argument")


def test_repo_spec_offline_falls_back_to_embedded(models_dir):
    resolved, _ = resolve("org/repo:m.gguf", models_dir, offline=True)
    assert resolved.source == "embedded"
    assert resolved.note.startswith("Offline, so m.gguf cannot be downloaded from org/repo")


def test_repo_spec_for_a_missing_repo_is_a_user_error(models_dir):
    download = FakeDownload(RepoNotFound("The repository org/none does not exist on the hub (or is private)."))
    with pytest.raises(ModelNotFound, match="org/none does not exist"):
        resolve("org/none:m.gguf", models_dir, download=download)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("bartowski/Qwen2.5-7B-Instruct-GGUF:Qwen2.5-7B-Instruct-Q4_K_M.gguf",
         ("bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf")),
        ("org/repo:Q8_0/m-00001-of-00002.gguf", ("org/repo", "Q8_0/m-00001-of-00002.gguf")),
        ("C:/models/m.gguf", None),
        ("models/m.gguf", None),
        ("m.gguf", None),
        ("org/repo:README.md", None),
    ],
)
def test_parse_repo_spec(spec, parsed):
    assert parse_repo_spec(spec) == parsed
