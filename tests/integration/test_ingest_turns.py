"""Ingestion shared by several users: turns by batch, Cancel, and questions asked meanwhile.

Real Chroma and the real all-MiniLM-L6-v2; small batches (4 chunks) so turns show within a file
that takes seconds, not minutes. Order is asserted, never wall-clock time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from webui.auth import User
from webui.config import Settings
from webui.rag import IngestCancelled, IngestProgress
from webui.rag.embeddings import Embedder
from webui.services.documents import DocumentService, IngestTurns, outcome_report

pytestmark = pytest.mark.slow

ALICE, BOB = User(name="alice", is_admin=False), User(name="bob", is_admin=False)
BATCH = 4


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    shared = Embedder()
    shared.embed(["warm up"])
    return shared


@pytest.fixture()
def service(data_dir: Path, embedder: Embedder) -> DocumentService:
    return DocumentService(Settings(data_dir=data_dir), embedder=embedder, embed_batch=BATCH)


def handbook(path: Path, paragraphs: int) -> Path:
    """A text file of distinct paragraphs, each about one chunk long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join(
        f"Section {n}. " + " ".join(
            f"Valve {n}-{k} on pump {n % 9} is inspected every {n + k} days by the night shift."
            for k in range(9)
        )
        for n in range(1, paragraphs + 1)
    )
    path.write_text(body)
    return path


def test_turns_go_to_the_user_served_longest_ago_and_a_cancelled_wait_ends() -> None:
    turns = IngestTurns()
    order: list[str] = []
    errors: list[BaseException] = []

    def take(job, name: str) -> threading.Thread:
        def run() -> None:
            try:
                with job.turn():
                    order.append(name)
            except IngestCancelled as exc:
                errors.append(exc)

        waiting = len(turns._waiting)
        thread = threading.Thread(target=run)
        thread.start()
        while len(turns._waiting) == waiting:  # queued before the next one asks
            threading.Event().wait(0.01)
        return thread

    with turns.job("alice") as alice, turns.job("bob") as bob, turns.job("carol") as carol, \
            turns.job("dave") as dave:
        with alice.turn():  # alice's first batch runs while the others line up
            threads = [take(bob, "bob"), take(alice, "alice"), take(dave, "dave"), take(carol, "carol")]
            assert turns.cancel("dave") == 1
        for thread in threads:
            thread.join(10)
    # bob, dave and carol had no turn yet, so they go before alice's second; dave was cancelled.
    assert order == ["bob", "carol", "alice"]
    assert [str(e) for e in errors] == ["The add was cancelled."]


def test_another_users_small_file_finishes_within_a_few_batches_of_a_large_one(
    service: DocumentService, tmp_path: Path
) -> None:
    big = handbook(tmp_path / "alice" / "handbook.txt", 60)
    small = tmp_path / "bob" / "note.txt"
    small.parent.mkdir()
    small.write_text("The spare key hangs in the boiler room.\nThe boiler is serviced in May.\nCall Ada.\n")
    service.create(ALICE, "manuals")
    service.create(BOB, "notes")

    events: list[tuple[str, int | str]] = []  # list.append is atomic: a shared, ordered log
    alice_running = threading.Event()
    results: dict[str, list] = {}

    def alice_progress(step: IngestProgress) -> None:
        events.append(("alice", step.chunks_done))
        if step.chunks_done >= 2 * BATCH:
            alice_running.set()

    alice = threading.Thread(
        target=lambda: results.__setitem__(
            "alice", service.ingest("alice", "manuals", [big], progress=alice_progress)
        )
    )
    alice.start()
    assert alice_running.wait(120), "alice's ingest never got going"
    events.append(("bob", "start"))
    results["bob"] = service.ingest("bob", "notes", [small], progress=lambda s: events.append(("bob", s.chunks_done)))
    events.append(("bob", "done"))
    alice.join(300)

    [bob_outcome], [alice_outcome] = results["bob"], results["alice"]
    assert (bob_outcome.status, alice_outcome.status) == ("added", "added")
    assert alice_outcome.chunks > 10 * BATCH  # a file of many turns
    start, done = events.index(("bob", "start")), events.index(("bob", "done"))
    alice_done = max(i for i, (who, _) in enumerate(events) if who == "alice")
    assert done < alice_done, "bob's three lines waited for alice's whole file"
    alice_batches_meanwhile = {
        count for who, count in events[start:done] if who == "alice" and isinstance(count, int) and count
    }
    assert len(alice_batches_meanwhile) <= 2, f"bob waited for {len(alice_batches_meanwhile)} of alice's batches"
    assert [d.file_name for d in service.documents("alice", "manuals")] == ["handbook.txt"]
    assert [d.file_name for d in service.documents("bob", "notes")] == ["note.txt"]


def test_cancel_keeps_finished_files_and_leaves_nothing_of_the_one_in_progress(
    service: DocumentService, tmp_path: Path
) -> None:
    first = tmp_path / "in" / "first.txt"
    first.parent.mkdir()
    first.write_text("The greenhouse door is locked at nine in the evening.\n")
    big = handbook(tmp_path / "in" / "handbook.txt", 40)
    last = tmp_path / "in" / "last.txt"
    last.write_text("The last file is never read.\n")
    service.create(ALICE, "manuals")
    assert service.cancel_ingest("alice") == 0  # nothing running: nothing to cancel

    bob_cancels: list[int] = []

    def progress(step: IngestProgress) -> None:
        if step.current_file == "handbook.txt" and step.chunks_done >= 1 + 3 * BATCH and not bob_cancels:
            bob_cancels.append(service.cancel_ingest("bob"))  # someone else's Cancel: no effect
            assert service.cancel_ingest("alice") == 1

    outcomes = service.ingest("alice", "manuals", [first, big, last], progress=progress)

    assert bob_cancels == [0]
    assert [(o.file_name, o.status) for o in outcomes] == [
        ("first.txt", "added"), ("handbook.txt", "cancelled"), ("last.txt", "cancelled")
    ]
    assert "cancelled" in outcomes[1].message
    assert outcome_report(outcomes).startswith(
        "**1 of 3 files added or already there.** Cancelled: 2 not added, nothing of them kept."
    )
    listed = service.documents("alice", "manuals")
    assert [(d.file_name, d.state) for d in listed] == [("first.txt", "complete")]
    [info] = service.collections("alice")
    assert (info.documents, info.chunks) == (1, outcomes[0].chunks)  # no half-indexed passages
    assert not list((service.library.uploads_dir).rglob("handbook.txt"))
    # Added again, it goes in whole.
    [again] = service.ingest("alice", "manuals", [big])
    assert again.status == "added" and service.collections("alice")[0].chunks == outcomes[0].chunks + again.chunks


def test_questions_while_a_file_is_ingested_share_the_embedding_model(
    service: DocumentService, tmp_path: Path
) -> None:
    """Issue 11: ingestion and chat retrieval encode from different threads at once."""
    note = tmp_path / "note.txt"
    note.write_text("The spare key hangs in the boiler room.\n")
    service.create(ALICE, "manuals")
    service.ingest("alice", "manuals", [note])
    big = handbook(tmp_path / "handbook.txt", 40)
    errors: list[BaseException] = []
    outcomes: list = []

    def ingest() -> None:
        try:
            outcomes.extend(service.ingest("alice", "manuals", [big]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=ingest)
    worker.start()
    answers = 0
    questions = ["Where is the spare key?", "Which room holds the spare key, and who knows where it is kept?"]
    while worker.is_alive() or answers < 5:
        passages = service.library.retrieve("alice", questions[answers % 2], ["manuals"], k=2)
        assert passages and passages[0].file_name == "note.txt"
        answers += 1
    worker.join()
    assert errors == [] and [o.status for o in outcomes] == ["added"]
    assert answers >= 5
