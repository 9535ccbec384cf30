"""Chat search, Export and Import in Chromium: a word of a third message finds its chat; export, import: same chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import running_app
from webui.history import HistoryStore
from webui.services.access import LOCAL_USER

pytestmark = pytest.mark.e2e

WEEKEND = [("user", "Any ideas for Saturday?"), ("assistant", "A picnic by the lake, if it is sunny."),
           ("user", "What about the aquarium downtown?"), ("assistant", "Good for a rainy day; book ahead.")]
BOT_OR_USER = "#chatbot [data-testid='bot'], #chatbot [data-testid='user']"


def seeded_history(data: Path) -> HistoryStore:
    """Two saved chats of the single local user, as the app finds them at start."""
    store = HistoryStore(data / "history.sqlite3")
    weekend = store.create(LOCAL_USER.id, "Weekend plans")
    for role, text in WEEKEND:
        store.append(LOCAL_USER.id, weekend.id, role, text,
                     meta={"stats": {"completion_tokens": 9, "tokens_per_s": 4.5, "ttft_ms": 90.0}}
                     if role == "assistant" else None)
    groceries = store.create(LOCAL_USER.id, "Groceries")
    store.append(LOCAL_USER.id, groceries.id, "user", "Milk, eggs and bread.")
    return store


def listed(page) -> list[str]:
    return [label.strip() for label in page.locator("#conversations label").all_inner_texts()]


def shown_messages(page) -> list[str]:
    return [text.strip() for text in page.locator(BOT_OR_USER).all_inner_texts()]


def test_search_finds_a_chat_by_its_third_message_and_export_then_import_gives_it_back(
    page, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = seeded_history(data)
    args = ["--data-dir", str(data), "--models-dir", str(tmp_path / "models"), "--offline"]
    with running_app(tmp_path, args) as app:
        page.goto(app.url)
        page.locator("#conversations").get_by_text("Groceries").wait_for()
        search = page.locator("#conversation-search").get_by_role("textbox")

        search.fill("AQUARIUM")
        page.locator("#conversations").get_by_text("What about the aquarium downtown?").wait_for()
        assert listed(page) == ["Weekend plans — What about the aquarium downtown?"]
        search.fill("")
        page.locator("#conversations").get_by_text("Groceries").wait_for()
        assert listed(page) == ["Groceries", "Weekend plans"]

        page.locator("#conversations").get_by_text("Weekend plans").click()
        page.locator("#chatbot").get_by_text("Good for a rainy day").wait_for()
        before = shown_messages(page)
        page.get_by_text("Export or import a chat").click()
        page.locator("#conversation-export").click()
        page.locator("#conversation-export-markdown").wait_for()
        with page.expect_download() as download:
            page.locator("#conversation-export-json").click()
        assert download.value.suggested_filename == "weekend-plans.json"
        # The chat's text is written only inside the private data dir (its temporary folder, emptied at start).
        assert [p.name for p in (data / "tmp" / "chat-exports").rglob("weekend-plans.*")] != []
        exported = tmp_path / "weekend-plans.json"
        download.value.save_as(exported)

        page.locator("input[type='file'][accept='.json']").set_input_files(str(exported))
        page.locator("#conversation-transfer-status").get_by_text("Imported Weekend plans (4 messages)").wait_for()
        assert listed(page) == ["Weekend plans", "Groceries", "Weekend plans"]  # the copy, on top and open
        page.wait_for_function(f"() => document.querySelectorAll(\"{BOT_OR_USER}\").length === 4")
        assert shown_messages(page) == before

    original, copy = sorted((c for c in store.list(LOCAL_USER.id) if c.title == "Weekend plans"),
                            key=lambda c: c.created_at)
    saved = [[(m.role, m.content, m.created_at, m.meta) for m in store.messages(LOCAL_USER.id, c.id)]
             for c in (original, copy)]
    assert saved[0] == saved[1] and [(role, text) for role, text, *_ in saved[1]] == WEEKEND
