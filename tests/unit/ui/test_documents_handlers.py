"""The Documents tab's handlers with a fake Services: what each button shows to owners, others and admins."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.rag import RagError
from webui.services.types import User
from webui.ui.documents import DocumentHandlers

from tests.unit.ui.fake_documents import FakeDocumentServices, record_toasts, team

UNCHANGED = {"__type__": "update"}


@pytest.fixture()
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Gradio's upload folder for this test: files the page sent land here."""
    folder = tmp_path / "gradio-uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def uploaded(folder: Path, name: str, text: str) -> str:
    """A file as Gradio keeps an upload: in a folder of its own under the upload folder."""
    path = folder / f"upload-{len(list(folder.iterdir()))}" / name
    path.parent.mkdir()
    path.write_text(text)
    return str(path)


def test_opening_the_tab_lists_the_users_collections_and_offers_sharing_to_admins_in_team_mode() -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    choices, line, rows, documents, sharing = handlers.on_load("bob")
    assert choices["choices"] == [] and choices["value"] is None
    assert line == "No collection yet: name one under *New collection* and create it."
    assert rows == [] and documents["choices"] == []
    assert sharing["visible"] is False
    assert handlers.on_load("alice")[-1]["visible"] is True

    fake.auth_required = False  # single-user mode: nobody to share with, even for the admin
    assert handlers.on_load("alice")[-1]["visible"] is False


def test_a_library_that_cannot_be_opened_is_said_in_the_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.document_actions.failing = RagError("The document store at chroma:8000 cannot be reached.")
    toasts = record_toasts(monkeypatch)
    choices, line, rows, documents, sharing = DocumentHandlers(fake).on_load("bob")
    assert line == "The document store at chroma:8000 cannot be reached."
    assert choices == UNCHANGED and sharing["visible"] is False
    assert toasts == [], "the user asked for nothing yet: no toast on opening the page"


def test_a_new_collection_is_shown_picked_and_offered_in_the_chat_to_its_owner_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(fake)
    picker, line, rows, documents, chat, name_box = handlers.create_collection("bob", "Notes", False, None)
    assert picker["choices"] == [("Notes", "Notes")] and picker["value"] == "Notes"
    assert line.startswith("**Notes** · 0 documents · 0 passages")
    assert chat["choices"] == ["Notes"] and name_box == ""
    assert toasts == [("info", "Created the collection 'Notes'.")]
    assert handlers.on_load("carol")[0]["choices"] == [], "carol does not see bob's collection"


def test_only_an_admin_shares_a_collection_and_others_see_it_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(fake)
    refused = handlers.create_collection("bob", "Handbook", True, ["Notes"])
    assert refused == (UNCHANGED,) * 6, "nothing changes on the page, the name stays in its box"
    assert toasts == [("warning", "Only an admin can do this.")]
    assert fake.document_actions.stored == []

    handlers.create_collection("alice", "Handbook", True, None)
    picker, line, *_ = handlers.on_load("carol")
    assert picker["choices"] == [("Handbook (shared)", "Handbook")]
    assert line.endswith("· read-only (shared by alice)") and "shared with the team" in line
    assert "read-only" not in handlers.show("alice", "Handbook")[0]


def test_a_shared_collection_is_changed_only_by_whoever_shared_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    handlers.create_collection("alice", "Handbook", True, None)
    toasts = record_toasts(monkeypatch)
    sentence = "'Handbook' is shared by alice; only they can change it."

    assert handlers.rename_collection("bob", "Handbook", "Mine now", None) == (UNCHANGED,) * 6
    *unchanged, confirm = handlers.delete_collection("bob", "Handbook", None)
    assert unchanged == [UNCHANGED] * 5 and confirm["visible"] is False, "the confirmation hides again"
    assert toasts == [("warning", sentence), ("warning", sentence)]
    assert [c.name for c in fake.document_actions.collections("id-bob")] == ["Handbook"]

    picker, *_, chat, rename_box = handlers.rename_collection("alice", "Handbook", "Team handbook", ["Handbook"])
    assert picker["value"] == "Team handbook" and rename_box == ""
    assert chat["value"] == ["Team handbook"], "the chat keeps the collection picked under its new name"
    picker, line, *_, confirm = handlers.delete_collection("alice", "Team handbook", ["Team handbook"])
    assert picker["choices"] == [] and line.startswith("No collection yet") and confirm["visible"] is False


def test_buttons_pressed_before_choosing_say_what_to_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(team())
    handlers.rename_collection("bob", None, "x", None)
    handlers.delete_collection("bob", None, None)
    handlers.delete_document("bob", "Notes", None)
    assert [sentence for _, sentence in toasts] == [
        "Choose a collection to rename first.", "Choose a collection to delete first.",
        "Choose a document to delete first."]


def test_adding_files_shows_progress_then_a_line_per_file_and_empties_the_upload_box(
    uploads: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    handlers.create_collection("bob", "Notes", False, None)
    files = [uploaded(uploads, "note.txt", "The key hangs in the boiler room.\nCall Ada.\n"),
             uploaded(uploads, "bad.txt", "")]
    steps: list[tuple[float, str]] = []
    result, upload_box, line, rows, documents = handlers.add_files("bob", "Notes", files,
                                                                   lambda *step: steps.append(step))
    assert steps == [(0.0, "Reading the files…"),
                     (0.0, "File 1 of 2 (note.txt) · 0 pages · 0 passages"),
                     (0.5, "File 2 of 2 (bad.txt) · 1 pages · 2 passages")]
    assert result == ("**1 of 2 files added or already there.** 1 could not be added.\n\n"
                      "- added: Added note.txt (2 passages).\n"
                      "- **failed**: bad.txt contains no text to index.")
    assert upload_box is None
    assert line.startswith("**Notes** · 1 documents · 2 passages")
    assert rows == [["note.txt", 1, 2, "44 B", "2026-12-07 09:30"]] and documents["choices"] == ["note.txt"]
    assert not any(Path(f).exists() for f in files), "Gradio's temporary copies are deleted"
    assert fake.document_actions.ingested == [("id-bob", "Notes", ["note.txt", "bad.txt"])]


def test_adding_without_a_collection_empties_the_drop_zone_and_names_the_files_to_pick_again(
    uploads: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(team())
    files = [uploaded(uploads, "note.txt", "Call Ada.\n")]
    result, files_box, *rest = handlers.add_files("bob", None, files)
    assert result == ("**Nothing was added:** Create or choose a collection first, then pick the files again "
                      "(note.txt).")
    assert files_box is None, "a refused file must not stay in the drop zone, to be added with the next Add"
    assert rest == [UNCHANGED] * 3
    assert not Path(files[0]).exists(), "the upload's copy is not kept either"
    assert handlers.add_files("bob", "Notes", None)[0] == "**Nothing was added:** Choose or drop some files first."
    assert [kind for kind, _ in toasts] == ["warning", "warning"]


def test_a_file_that_is_not_an_upload_is_refused_and_left_alone(uploads: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(fake)
    handlers.create_collection("bob", "Notes", False, None)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the library\n")
    result, upload_box, *rest = handlers.add_files("bob", "Notes", [str(secret)])
    assert result == ("**Nothing was added:** That file did not come from an upload to this page; "
                      "send it again with the upload box.")
    assert upload_box is None and rest == [UNCHANGED] * 3
    assert toasts[-1][0] == "warning"
    assert secret.read_text() == "not for the library\n" and fake.document_actions.ingested == []


def test_adding_to_someone_elses_shared_collection_is_refused_and_the_uploads_deleted(
    uploads: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    handlers.create_collection("alice", "Handbook", True, None)
    record_toasts(monkeypatch)
    files = [uploaded(uploads, "note.txt", "Call Ada.\n")]
    result, upload_box, *_ = handlers.add_files("carol", "Handbook", files)
    assert result == "**Nothing was added:** 'Handbook' is shared by alice; only they can change it."
    assert upload_box is None and not Path(files[0]).exists()


def test_cancel_stops_only_the_callers_own_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.document_actions.running = {"id-alice"}
    toasts = record_toasts(monkeypatch)
    handlers = DocumentHandlers(fake)
    handlers.cancel_adding("bob")
    handlers.cancel_adding("alice")
    assert fake.document_actions.cancelled == ["id-bob", "id-alice"]
    assert toasts == [("info", "Nothing of yours is being added right now."),
                      ("info", "Cancelling: files already added stay; the one in progress is removed.")]


def test_a_document_is_deleted_by_the_collections_owner_only(uploads: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    handlers.create_collection("alice", "Handbook", True, None)
    handlers.add_files("alice", "Handbook", [uploaded(uploads, "rules.txt", "No food in the lab.\n")])
    toasts = record_toasts(monkeypatch)

    *unchanged, confirm = handlers.delete_document("bob", "Handbook", "rules.txt")
    assert unchanged == [UNCHANGED] * 3 and confirm["visible"] is False
    assert toasts == [("warning", "'Handbook' is shared by alice; only they can change it.")]

    line, rows, documents, confirm = handlers.delete_document("alice", "Handbook", "rules.txt")
    assert rows == [] and documents["choices"] == [] and "0 documents" in line
    assert toasts[-1] == ("info", "Deleted 'rules.txt' from 'Handbook'.")


def test_refresh_lists_collections_made_elsewhere_and_drops_vanished_chat_picks() -> None:
    fake = team()
    handlers = DocumentHandlers(fake)
    fake.document_actions.create(fake.users["bob"], "Made by the API")
    picker, line, rows, documents, chat = handlers.refresh_all("bob", "Gone", ["Gone", "Made by the API"])
    assert picker["value"] == "Made by the API" and line.startswith("**Made by the API**")
    assert chat["value"] == ["Made by the API"]
    assert handlers.show("bob", "Gone")[0] == "There is no collection named 'Gone'."


def test_a_signed_out_caller_gets_the_login_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    toasts = record_toasts(monkeypatch)
    fake = FakeDocumentServices(users={"bob": User("bob", is_admin=False)})
    assert DocumentHandlers(fake).create_collection("mallory", "x", False, None) == (UNCHANGED,) * 6
    assert toasts == [("warning", "Please log in again.")] and fake.document_actions.stored == []
