"""The chat sidebar's search, Export and Import handlers with a fake Services over a real SQLite history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pytest

from webui.history import HistoryStore
from webui.services.conversations import ConversationService
from webui.services.types import User
from webui.ui.conversations import (
    ChatLinks,
    ConversationHandlers,
    open_imported,
    search_box,
    transfer_controls,
    wire_conversation_tools,
)

from tests.unit.ui.fakes import FakeServices

UPDATE = {"__type__": "update"}


@dataclass
class FakeChatServices(FakeServices):
    """The users of FakeServices, and the real conversation service over a history in a temp folder."""

    conversations: ConversationService = field(default=None)  # type: ignore[assignment]


@pytest.fixture()
def store(data_dir: Path) -> HistoryStore:
    return HistoryStore(data_dir / "history.sqlite3")


@pytest.fixture()
def handlers(store: HistoryStore) -> ConversationHandlers:
    users = {"alice": User("alice", is_admin=False, id="u-alice"), "bob": User("bob", is_admin=False, id="u-bob")}
    return ConversationHandlers(FakeChatServices(users=users, conversations=ConversationService(store)))


@pytest.fixture()
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Gradio's upload folder, where the page's uploads land before a handler sees them."""
    folder = tmp_path / "gradio-uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def three_chats(store: HistoryStore) -> dict[str, str]:
    ids = {}
    for title, words in [("Trip to Rome", "the Colosseum at dawn"), ("Pasta", "carbonara needs guanciale"),
                         ("Budget", "rent and food")]:
        chat = store.create("u-alice", title)
        store.append("u-alice", chat.id, "user", f"Tell me about {words}.")
        ids[title] = chat.id
    return ids


def test_search_lists_the_matching_chats_with_their_text_and_keeps_the_open_one_picked(
    store: HistoryStore, handlers: ConversationHandlers
) -> None:
    ids = three_chats(store)
    found = handlers.search_conversations("alice", "GUANCIALE", ids["Pasta"])
    assert found["choices"] == [("Pasta — Tell me about carbonara needs guanciale.", ids["Pasta"])]
    assert found["value"] == ids["Pasta"]
    assert handlers.search_conversations("alice", "colosseum", ids["Pasta"])["value"] is None
    assert handlers.search_conversations("alice", "nothing like it", None)["choices"] == []
    everything = handlers.search_conversations("alice", "", ids["Budget"])
    assert [label for label, _ in everything["choices"]] == ["Budget", "Pasta", "Trip to Rome"]
    assert everything["value"] == ids["Budget"]
    assert handlers.search_conversations("bob", "pasta", None)["choices"] == []  # only the caller's chats


def test_export_needs_an_open_chat_and_gives_markdown_and_json(
    store: HistoryStore, handlers: ConversationHandlers
) -> None:
    markdown, exported, status = handlers.export_conversation("alice", None, "")
    assert status == "**Not exported:** Open a chat from the list first: the export is of the chat shown."
    assert markdown["visible"] is False and exported["visible"] is False
    chat = three_chats(store)["Pasta"]
    markdown, exported, status = handlers.export_conversation("alice", chat, "Be Italian.")
    assert markdown["visible"] is True and Path(markdown["value"]).name == "pasta.md"
    assert Path(markdown["value"]).read_text().startswith("# Pasta\n")
    assert json.loads(Path(exported["value"]).read_text())["system_prompt"] == "Be Italian."
    assert status == "Ready: Markdown to read or share, JSON to import again."
    status = handlers.export_conversation("bob", chat, "")[2]  # another user's chat id
    assert status == "**Not exported:** That conversation no longer exists."


def test_import_adds_the_chat_picks_it_and_sets_its_system_prompt(
    store: HistoryStore, handlers: ConversationHandlers, uploads: Path
) -> None:
    chat = three_chats(store)["Trip to Rome"]
    _, exported = handlers.services.conversations.export_files("u-alice", chat, "You are a guide.")
    upload = uploads / "abc123" / "trip.json"
    upload.parent.mkdir()
    upload.write_bytes(exported.read_bytes())

    imported, opened, listed, search, prompt, status = handlers.import_conversation("bob", str(upload), "")
    assert opened == imported and listed["choices"] == [("Trip to Rome", imported)] and listed["value"] == imported
    assert search == "" and prompt["value"] == "You are a guide."
    assert status == ("Imported **Trip to Rome** (1 message) from this app's export. "
                      "Its system prompt is now in *System prompt and sampling*.")
    assert [m.content for m in store.messages("u-bob", imported)] == ["Tell me about the Colosseum at dawn."]
    assert not upload.exists()  # the upload's copy of the chat text is not kept

    upload.parent.mkdir()  # the upload's folder went with it: upload the same file again
    upload.write_bytes(exported.read_bytes())
    *_, prompt, status = handlers.import_conversation("bob", str(upload), "You are a guide.")
    assert prompt == UPDATE and status == "Imported **Trip to Rome** (1 message) from this app's export."


def test_a_refused_import_says_why_and_changes_nothing(
    store: HistoryStore, handlers: ConversationHandlers, uploads: Path, tmp_path: Path
) -> None:
    upload = uploads / "preset.json"
    upload.write_text('{"name": "a preset"}')
    imported, opened, listed, search, prompt, status = handlers.import_conversation("alice", str(upload), "")
    assert (imported, opened, listed, search, prompt) == (None, UPDATE, UPDATE, UPDATE, UPDATE)
    assert status.startswith("**Not imported:** This file is not a chat export this app can read.")
    assert store.list("u-alice") == [] and not upload.exists()

    elsewhere = tmp_path / "not-an-upload.json"  # a crafted payload naming a file outside the uploads
    elsewhere.write_text("{}")
    status = handlers.import_conversation("alice", str(elsewhere), "")[5]
    assert status == ("**Not imported:** That file did not come from an upload to this page; "
                      "send it again with the upload box.")
    assert elsewhere.exists()


def test_the_imported_chat_opens_only_when_the_import_worked() -> None:
    opened = []
    event = open_imported(lambda chat_id, preset, request: opened.append((chat_id, preset)) or ("shown",), outputs=4)
    assert event(None, "Coder", request=None) == [UPDATE] * 4 and opened == []
    assert event("c1", "Coder", request=None) == ("shown",) and opened == [("c1", "Coder")]


def test_the_controls_wire_into_a_page_as_events_named_after_their_handlers(handlers: ConversationHandlers) -> None:
    with gr.Blocks() as page:
        conversation_id, system_prompt = gr.State(None), gr.Textbox()
        search, conversation_list, transfer = search_box(), gr.Radio(choices=[]), transfer_controls()
        links = ChatLinks(conversation_id, conversation_list, system_prompt, gr.State(None),
                          lambda chat, preset, request: (chat,), [conversation_id])
        wire_conversation_tools(handlers.services, search, transfer, links)
    names = {fn.name for fn in page.fns.values()}
    assert {"search_conversations", "export_conversation", "import_conversation", "open_imported_chat"} <= names
