"""Crafted file payloads (issue 14, item 1): a hand-made ``{"path": ...}`` reads and deletes nothing.

A logged-in user sends the Documents add-files event and the preset import a Gradio FileData object
naming another user's kept upload, the app's log and a file in /tmp, over the raw queue protocol.
Gradio's own path check must apply to the mounted app, and the handlers must refuse as well.
Last, a crafted file's content (security finding 3): a small workbook whose text expands past
memory is refused with a message while the app's address space is capped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.gradio_queue import GradioSession, file_payload
from tests.support.memory_limit import address_space_capped
from tests.support.rag_files import xlsx_sharing_one_string
from tests.support.team import signed_in, team_app

pytestmark = pytest.mark.slow

BOB_SECRET = f"BOB-PRIVATE-{uuid.uuid4().hex[:10]}"
HOST_SECRET = f"HOST-SECRET-{uuid.uuid4().hex[:10]}"
LOG_MARKER = f"LOGMARK{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("payloads")


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path):
    with team_app(workdir, smollm_path) as running:
        yield running


def add_document(session: GradioSession, collection: str, path: Path) -> str:
    """Create *collection* and add *path* to it through the Documents tab's events; returns the report."""
    created = session.call("create_collection", [collection, False, []])
    assert created.success, created.text
    added = session.call("add_files", [collection, [file_payload(session.upload(path), path.name)]])
    assert added.success, added.text
    return str(added.output[0])


@pytest.fixture(scope="module")
def targets(app: RunningApp, workdir: Path) -> dict[str, Path]:
    """Files the attacker must not read: bob's kept upload, the app's log, a text file in /tmp."""
    bob = signed_in(app, "bob")
    source = workdir / "bob-notes.txt"
    source.write_text(f"Bob's private notes. The code is {BOB_SECRET}.\n")
    report = add_document(bob, "bob-notes", source)
    assert "bob-notes.txt" in report
    kept = [p for p in (workdir / "data" / "uploads").rglob("bob-notes.txt")]
    assert kept, "the library keeps a copy of bob's upload"
    # A failed login writes the marker into the app's log.
    GradioSession(app.url).login(LOG_MARKER, "wrong password")
    log_file = workdir / "data" / "webui.log"
    assert app.wait_for_log_line(LOG_MARKER), "the failed login is logged"
    host_file = Path("/tmp") / f"host-secret-{uuid.uuid4().hex[:8]}.txt"
    host_file.write_text(f"name: {HOST_SECRET}\nsystem_prompt: {HOST_SECRET}\n")
    yield {"kept upload": kept[0], "app log": log_file, "tmp file": host_file}
    host_file.unlink(missing_ok=True)


@pytest.mark.parametrize("what", ["kept upload", "app log", "tmp file"])
def test_add_files_with_a_crafted_path_reads_nothing(app: RunningApp, targets: dict[str, Path], what: str) -> None:
    alice = signed_in(app, "alice")
    collection = f"mine-{uuid.uuid4().hex[:6]}"
    assert alice.call("create_collection", [collection, False, []]).success
    target = targets[what]
    before = target.read_bytes()
    for path in (str(target), f"{target.parent}/./../{target.parent.name}/{target.name}"):
        result = alice.call("add_files", [collection, [file_payload(path, "innocent.txt")]])
        for secret in (BOB_SECRET, HOST_SECRET, LOG_MARKER):
            assert secret not in result.text
        assert not result.success or "Nothing was added" in str(result.output[:1]), result.text
    listing = alice.call("show", [collection])
    assert listing.success and "innocent" not in listing.text and target.name not in listing.text
    assert target.read_bytes() == before, "the file is left as it was"


def test_gradio_itself_refuses_a_path_outside_its_upload_folder(app: RunningApp, targets: dict[str, Path]) -> None:
    """The refusal comes from Gradio's own check, before our handler runs (not only from our handler)."""
    alice = signed_in(app, "alice")
    result = alice.call("add_files", [None, [file_payload(targets["tmp file"])]])
    assert not result.success
    assert "not uploaded by a user" in result.text or "blocked_paths" in result.text, result.text


def test_a_crafted_path_deletes_no_other_users_upload(app: RunningApp, workdir: Path,
                                                      targets: dict[str, Path]) -> None:
    bob = signed_in(app, "bob")
    pending_source = workdir / "bob-pending.txt"
    pending_source.write_text(f"Bob's next upload, not added yet: {BOB_SECRET}\n")
    pending = Path(bob.upload(pending_source))
    assert pending.is_file()
    alice = signed_in(app, "alice")
    collection = f"grab-{uuid.uuid4().hex[:6]}"
    assert alice.call("create_collection", [collection, False, []]).success
    for path in (targets["kept upload"], pending.parent / ".." / pending.parent.name / pending.name):
        result = alice.call("add_files", [collection, [file_payload(path, "x.txt")]])
        assert BOB_SECRET not in result.text
    assert targets["kept upload"].is_file(), "bob's kept upload is still there"
    assert pending.is_file(), "bob's pending upload is still there"
    assert bob.call("create_collection", ["bob-more", False, []]).success
    added = bob.call("add_files", ["bob-more", [file_payload(pending, pending_source.name)]])
    assert added.success and "bob-pending.txt" in added.text, added.text


@pytest.mark.parametrize("what", ["tmp file", "app log", "kept upload"])
def test_preset_import_with_a_crafted_path_reads_nothing(app: RunningApp, targets: dict[str, Path],
                                                         what: str) -> None:
    alice = signed_in(app, "alice")
    upload = alice.dependency_for("uploadbutton", "upload")
    payload = file_payload(targets[what], "preset.yaml")
    # The page runs this event outside the queue (queue=False), with one POST.
    shown = alice.call_direct(upload, [payload]).text if upload.get("queue") is False else \
        alice.call(upload, [payload]).text
    for secret in (BOB_SECRET, HOST_SECRET, LOG_MARKER):
        assert secret not in shown
    # Nor was anything imported: no preset of that name exists for anyone.
    presets_dir = targets["app log"].parent / "presets"
    for stored in presets_dir.rglob("*.yaml") if presets_dir.exists() else []:
        assert HOST_SECRET not in stored.read_text()


def test_a_workbook_expanding_past_memory_is_refused_by_the_capped_app(app: RunningApp, workdir: Path) -> None:
    """4,000 cells pointing to one 1 MB shared string: 8 GB of text as the old loader wrote it,
    which here came back as "not a readable Excel workbook" once memory ran out."""
    alice = signed_in(app, "alice")
    collection = f"sheets-{uuid.uuid4().hex[:6]}"
    warm_up = workdir / "first-notes.txt"  # loads the embedding model and Chroma before the cap
    warm_up.write_text("The first notes of the quarter.\n")
    assert "first-notes.txt" in add_document(alice, collection, warm_up)
    ledger = workdir / "ledger.xlsx"
    ledger.write_bytes(xlsx_sharing_one_string("amount " * 150_000, rows=100, columns=40))
    assert ledger.stat().st_size < 20_000
    with address_space_capped(app.process.pid, 1024 * 1024 * 1024):
        added = alice.call("add_files", [collection, [file_payload(alice.upload(ledger), ledger.name)]])
    assert added.success, added.text
    report, listed = str(added.output[0]), added.output[3]["data"]
    assert report.endswith(
        "- **failed**: ledger.xlsx: this Excel workbook expands to more than 256 MB of text; it was not added."
    ), report
    assert [row[0] for row in listed] == ["first-notes.txt"]
    assert app.process.poll() is None, "the app is still running"
