"""A document is complete only after its last batch: a kill part way is repaired on the next add.

A child process adds a file in batches of 4 chunks and is killed with SIGKILL from its own
progress callback after the second batch, as a power cut or an OOM kill would stop it. Then this
process opens the same data dir. Real Chroma, real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_ingest_turns import handbook
from webui.rag import DocumentLibrary, IngestProgress
from webui.rag.embeddings import Embedder
from webui.services.documents import document_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

KILLED_INGEST = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from webui.rag import DocumentLibrary

    data_dir, note, big = (Path(a) for a in sys.argv[1:4])
    library = DocumentLibrary(data_dir, embed_batch=4)
    library.create_collection("alice", "home")
    library.ingest("alice", "home", [note])

    def progress(step):
        if step.chunks_done >= 8:  # two batches of the big file written, more to come
            os.kill(os.getpid(), signal.SIGKILL)

    library.ingest("alice", "home", [big], progress=progress)
    print("the ingest was not killed")
    """
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    shared = Embedder()
    shared.embed(["warm up"])
    return shared


def test_a_killed_ingest_is_shown_incomplete_and_repaired_when_added_again(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("The spare key hangs in the boiler room.\n")
    big = handbook(tmp_path / "handbook.txt", 30)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_INGEST, str(data_dir), str(note), str(big)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -9, child.stdout + child.stderr

    library = DocumentLibrary(data_dir, embedder=embedder, embed_batch=4)
    [info] = library.collections("alice")
    assert info.documents == 1  # the half-written file is not counted
    assert info.chunks == 1 + 8  # the note, and the two batches written before the kill
    listed = {d.file_name: d.state for d in library.documents("alice", "home")}
    assert listed == {"note.txt": "complete", "handbook.txt": "incomplete"}
    shown = [row[0] for row in document_rows(library.documents("alice", "home"))]
    assert shown == ["handbook.txt (incomplete: an add was interrupted; add the file again)", "note.txt"]

    [outcome] = library.ingest("alice", "home", [big])
    assert outcome.status == "added", outcome.message  # not "unchanged"
    assert "interrupted" in outcome.message
    [info] = library.collections("alice")
    assert (info.documents, info.chunks) == (2, 1 + outcome.chunks)
    assert {d.file_name: d.state for d in library.documents("alice", "home")} == {
        "note.txt": "complete", "handbook.txt": "complete"
    }
    [again] = library.ingest("alice", "home", [big])
    assert again.status == "unchanged"


def test_a_failure_between_batches_rolls_the_file_back(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    library = DocumentLibrary(data_dir, embedder=embedder, embed_batch=4)
    library.create_collection("alice", "home")
    old = handbook(tmp_path / "v1" / "handbook.txt", 3)
    [first] = library.ingest("alice", "home", [old])
    new = handbook(tmp_path / "v2" / "handbook.txt", 20)

    failed: list[int] = []

    def fail_midway(step: IngestProgress) -> None:
        if step.chunks_done >= 8 and not failed:  # once, between the second and third batch
            failed.append(step.chunks_done)
            raise RuntimeError("the disk is full")

    [outcome] = library.ingest("alice", "home", [new], progress=fail_midway)
    assert (outcome.status, outcome.ok) == ("failed", False)
    # The earlier version is untouched and nothing of the new one is left.
    [info] = library.collections("alice")
    assert (info.documents, info.chunks) == (1, first.chunks)
    [doc] = library.documents("alice", "home")
    assert (doc.chunks, doc.state) == (first.chunks, "complete")


def test_a_failed_write_rolls_the_file_back_and_the_next_file_goes_in(
    data_dir: Path, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are written on a thread of their own while the next is embedded; its error still
    fails the file it belongs to, and only that file."""
    library = DocumentLibrary(data_dir, embedder=embedder, embed_batch=4)
    library.create_collection("alice", "home")
    big = handbook(tmp_path / "handbook.txt", 20)
    note = tmp_path / "note.txt"
    note.write_text("The spare key hangs in the boiler room.\n")
    real_add = library.store.add
    writes: list[int] = []

    def add_failing_on_the_third_batch(stored, ids, *rest) -> None:
        writes.append(len(ids))
        if len(writes) == 3:
            raise OSError("the disk is full")
        real_add(stored, ids, *rest)

    monkeypatch.setattr(library.store, "add", add_failing_on_the_third_batch)
    big_outcome, note_outcome = library.ingest("alice", "home", [big, note])
    assert (big_outcome.status, note_outcome.status) == ("failed", "added"), big_outcome.message
    [info] = library.collections("alice")
    assert (info.documents, info.chunks) == (1, note_outcome.chunks)
    assert [(d.file_name, d.state) for d in library.documents("alice", "home")] == [("note.txt", "complete")]
