"""Damaged stores under data/ with the real parts (Chroma, MiniLM, the app itself): kept aside, and the app works on."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.app_server import ROOT, running_app
from webui.quarantine import set_aside_files
from webui.rag import DocumentLibrary
from webui.rag.embeddings import Embedder

OWNER = "ada"
GARBAGE = b"this file is not a database; a disk or a bad copy damaged it. " * 300


@pytest.fixture(scope="module")
def embedder(minilm_path: Path) -> Embedder:
    return Embedder(str(minilm_path))


def ingest_note(library: DocumentLibrary, folder: Path, collection: str, text: str) -> None:
    note = folder / "note.txt"
    note.write_text(text)
    library.create_collection(OWNER, collection)
    library.ingest(OWNER, collection, [note])


def keyword_hits(library: DocumentLibrary, collection: str, query: str) -> set[str]:
    found = library.retrieve(OWNER, query, [collection], k=5, min_score=-1.0, mode="keyword")
    return {p.file_name for p in found}


def test_a_damaged_keyword_index_is_kept_aside_and_rebuilt_from_chroma(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    ingest_note(DocumentLibrary(data_dir, embedder=embedder), tmp_path, "notes",
                "Set PYTHONPYCACHEPREFIX to keep bytecode out of the source tree.")
    [index_file] = (data_dir / "keyword").glob("*.sqlite3")
    index_file.write_bytes(GARBAGE)

    reopened = DocumentLibrary(data_dir, embedder=embedder)  # as after a restart
    assert keyword_hits(reopened, "notes", "PYTHONPYCACHEPREFIX") == {"note.txt"}
    [kept] = set_aside_files(data_dir)
    assert kept.parent == index_file.parent and kept.name.startswith(f"{index_file.name}.corrupt-")
    assert kept.read_bytes() == GARBAGE
    assert [r.kept_as for r in reopened.store.set_aside] == [kept]


def test_a_damaged_chroma_database_is_kept_aside_whole_and_documents_start_empty(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    chroma = data_dir / "chroma"
    chroma.mkdir(parents=True)
    (chroma / "chroma.sqlite3").write_bytes(GARBAGE)
    (chroma / "segment-folder").mkdir()  # Chroma's vector folders go with it

    library = DocumentLibrary(data_dir, embedder=embedder)
    assert library.collections(OWNER) == []
    [kept] = set_aside_files(data_dir)
    assert kept.name.startswith("chroma.corrupt-") and kept.is_dir()
    assert (kept / "chroma.sqlite3").read_bytes() == GARBAGE and (kept / "segment-folder").is_dir()

    ingest_note(library, tmp_path, "fresh", "The flag --ctx-size gives the model a longer window.")
    assert keyword_hits(library, "fresh", "ctx-size") == {"note.txt"}
    assert [c.name for c in DocumentLibrary(data_dir, embedder=embedder).collections(OWNER)] == ["fresh"]


def damage(data: Path) -> dict[str, bytes]:
    """Garbage in every store the app reads at start; returns what each file held."""
    data.mkdir(parents=True)
    held = {"users.json": b"{\"users\": {\"alice\": ", "model-settings.json": b"\x00\xffnot json",
            "history.sqlite3": GARBAGE}
    for name, content in held.items():
        (data / name).write_bytes(content)
    return held


def test_the_app_starts_over_damaged_stores_keeps_each_aside_and_says_so(tmp_path: Path, smollm_path: Path) -> None:
    data = tmp_path / "data"
    held = damage(data)
    args = ["--model", str(smollm_path), "--offline", "--ctx-size", "1024", "--data-dir", str(data),
            "--models-dir", str(tmp_path / "models")]
    with running_app(tmp_path, args) as app:
        assert app.status()["model"]["file"] == smollm_path.name
        log = app.log()
    kept = {p.name.split(".corrupt-")[0]: p for p in set_aside_files(data)}
    assert kept.keys() == held.keys()
    assert {name: path.read_bytes() for name, path in kept.items()} == held
    assert "warning: Damaged data files were kept aside" in log
    assert all(path.name in log for path in kept.values())
    with closing(sqlite3.connect(data / "history.sqlite3")) as db:  # a new, working history
        assert db.execute("SELECT count(*) FROM conversations").fetchone() == (0,)


def test_a_team_mode_start_over_a_damaged_users_file_explains_the_refusal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "users.json").write_text("{not json")
    result = subprocess.run(
        [sys.executable, str(ROOT / "launcher.py"), "--listen", "--offline", "--data-dir", str(data),
         "--models-dir", str(tmp_path / "models")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "users.json could not be read" in result.stderr and "kept as users.json.corrupt-" in result.stderr
    assert "refusing to serve" in result.stderr and "users add NAME --admin" in result.stderr
    assert [p.read_text() for p in set_aside_files(data)] == ["{not json"]
