"""The chat page a new user expects, in a real Chromium at 1366x768 and 390x844 (issue 27).

Each chat keeps its own documents; one Clear, which asks; Send and Stop while a reply streams; the
preset in the header; a refused Add that leaves nothing to be added twice, with one progress bar.
Screenshots of each tab at both sizes go to the folder printed at the end of the run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_chat_layout import LAPTOP, PHONE, open_page
from tests.support.app_server import running_app
from tests.support.ui import create_collection, set_slider, upload_files

pytestmark = pytest.mark.e2e

SIZES = pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop-1366x768", "phone-390x844"])
TABS = ["Chat", "Documents", "Models", "Presets", "Notebook"]
LAST_REPLY_DONE = (
    "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
    " return r.length && r[r.length-1].innerText.includes('tokens/s'); }"
)
WRITING = re.compile(r"Writing… \d+ tokens?")


def size_name(viewport: dict[str, int]) -> str:
    return f"{viewport['width']}x{viewport['height']}"


def header(page) -> str:
    return page.locator("#chat-header").inner_text()


def wait_header(page, text: str) -> str:
    page.locator("#chat-header", has_text=text).wait_for(timeout=15_000)
    return header(page)


def picked_documents(page) -> list[str]:
    """The collections the Documents picker shows as chosen (its chips)."""
    return [chip.strip() for chip in page.locator("#chat-documents .token").all_inner_texts()]


def open_tab(page, name: str) -> None:
    """Click a tab by its name; on a phone Gradio folds the tabs that do not fit into a "more" menu."""
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown").get_by_role("button", name=name, exact=True).click()
    page.wait_for_timeout(300)


def send(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def send_and_wait(page, text: str) -> None:
    replies = page.locator("[data-testid='bot']").count()
    send(page, text)
    page.wait_for_function(
        "(n) => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
        " return r.length > n && r[r.length-1].innerText.includes('tokens/s'); }", arg=replies, timeout=180_000)
    page.get_by_role("button", name="Send").wait_for(state="visible")


def pick_collection(page, name: str) -> None:
    page.locator("#chat-documents input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def open_chat(page, title: str) -> None:
    page.locator("#conversations").get_by_text(title).first.click()
    page.wait_for_timeout(500)


def test_each_chat_answers_from_its_own_documents_through_new_chat_and_a_reload_and_clear_asks_first(
        browser, smollm_app, page_screenshots) -> None:
    context, page = open_page(browser, smollm_app.url, LAPTOP)
    try:
        open_tab(page, "Documents")
        for name in ("manuals", "recipes"):
            page.get_by_label("New collection name").fill(name)
            page.get_by_role("button", name="Create collection").click()
            page.locator("#doc-summary", has_text=name).wait_for()
        open_tab(page, "Chat")
        assert wait_header(page, "Plain chat: no documents").startswith("Model SmolLM2")
        page.get_by_role("button", name="↻ Refresh collections").click()
        page.get_by_text("System prompt and sampling").click()
        set_slider(page, "max-tokens", 16)

        send_and_wait(page, "Hello, manuals chat")
        pick_collection(page, "manuals")
        assert "Answers from manuals" in wait_header(page, "Answers from manuals")
        assert not page.locator("#chatbot").get_by_role("button", name="Clear").is_visible(), (
            "the chatbot's own trash icon would empty the view and leave the saved chat")

        page.get_by_role("button", name="New chat").click()
        wait_header(page, "Plain chat: no documents")
        assert picked_documents(page) == [], "a new chat starts plain"
        send_and_wait(page, "Hello, plain chat")
        assert "Plain chat: no documents" in header(page)

        open_chat(page, "Hello, manuals chat")
        wait_header(page, "Answers from manuals")
        assert picked_documents(page) == ["manuals"]
        page.screenshot(path=str(page_screenshots / "chat-documents-per-chat-1366x768.png"))

        page.reload()
        page.get_by_role("button", name="Send").wait_for()
        open_chat(page, "Hello, plain chat")
        wait_header(page, "Plain chat: no documents")
        assert picked_documents(page) == []
        open_chat(page, "Hello, manuals chat")
        wait_header(page, "Answers from manuals")
        assert picked_documents(page) == ["manuals"], "the chat's documents come back after a reload"

        # The one Clear asks first; Cancel keeps every message, here and after a reload.
        page.locator("#chat-clear").click()
        page.get_by_text("Clear every message of this chat? This cannot be undone.").wait_for()
        page.get_by_role("button", name="Cancel").click()
        page.reload()
        page.get_by_role("button", name="Send").wait_for()
        open_chat(page, "Hello, manuals chat")
        page.locator("[data-testid='user']", has_text="Hello, manuals chat").wait_for()
    finally:
        context.close()


@SIZES
def test_while_a_reply_streams_send_is_off_stop_is_on_and_tokens_are_counted_until_stop(
        browser, smollm_app, page_screenshots, viewport) -> None:
    context, page = open_page(browser, smollm_app.url, viewport)
    try:
        send_button, stop = page.get_by_role("button", name="Send"), page.get_by_role("button", name="Stop")
        box = page.locator("#message textarea")
        assert send_button.is_enabled() and stop.is_disabled(), "nothing to stop before a reply"
        send(page, "Write a very long story about a lighthouse keeper and her cat.")
        page.locator("#chat-notice", has_text=WRITING).wait_for(timeout=120_000)
        assert send_button.is_disabled() and not box.is_editable(), "no second message on top of the reply"
        assert stop.is_enabled()
        first = int(re.search(r"(\d+) token", page.locator("#chat-notice").inner_text()).group(1))
        page.wait_for_function(
            "(n) => { const m = document.querySelector('#chat-notice').innerText.match(/(\\d+) token/);"
            " return m && Number(m[1]) > n; }", arg=first, timeout=60_000)
        page.screenshot(path=str(page_screenshots / f"chat-writing-{size_name(viewport)}.png"))

        stop.click()
        page.wait_for_function(LAST_REPLY_DONE, timeout=60_000)
        page.wait_for_function("() => !document.querySelector('#chat-send').disabled", timeout=15_000)
        assert stop.is_disabled() and box.is_editable()
        assert "stopped" in page.locator("[data-testid='bot']").last.inner_text()
        assert "Writing" not in page.locator("#chat-notice").inner_text()
        page.screenshot(path=str(page_screenshots / f"chat-stopped-{size_name(viewport)}.png"))
    finally:
        context.close()


def test_the_preset_applied_shows_beside_the_model_in_the_chat_header(browser, smollm_app) -> None:
    context, page = open_page(browser, smollm_app.url, LAPTOP)
    try:
        assert "No preset applied" in wait_header(page, "No preset applied")
        open_tab(page, "Presets")
        page.locator("#preset-apply").click()
        status = page.locator("#preset-status", has_text="Applied")
        status.wait_for(timeout=15_000)
        applied = re.search(r"Applied '([^']+)'", status.inner_text()).group(1)
        open_tab(page, "Chat")
        line = wait_header(page, f"Preset {applied}")
        assert line.startswith("Model SmolLM2") and f"Preset {applied}" in line
    finally:
        context.close()


def count_progress_script() -> str:
    """The most progress displays the Documents tab showed at once, sampled by the page every 20 ms."""
    return ("() => { window.mostBars = 0; setInterval(() => { const shown = [...document.querySelectorAll("
            "'.progress-text, .eta-bar, .progress-level')].filter(e => e.offsetParent !== null)"
            ".map(e => e.closest('.wrap') || e); window.mostBars = Math.max(window.mostBars, new Set(shown).size);"
            " }, 20); }")


def test_a_refused_add_leaves_nothing_to_add_twice_one_progress_bar_and_summarize_follows_the_pick(
        browser, tmp_path: Path, smollm_path: Path, page_screenshots) -> None:
    files = []
    for name, text in (("alpha.txt", "The alpha valve opens at noon.\n"), ("beta.txt", "Beta runs on Fridays.\n"),
                       ("gamma.txt", "Gamma is stored in the cellar.\n")):
        files.append(tmp_path / name)
        files[-1].write_text(text)
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir",
            str(tmp_path / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(tmp_path, args) as app:
        context, page = open_page(browser, app.url, LAPTOP)
        try:
            open_tab(page, "Documents")
            upload_files(page, "doc-files", files[0])
            page.get_by_role("button", name="Add to collection").click()
            refused = page.locator("#ingest-result", has_text="Nothing was added")
            refused.wait_for(timeout=30_000)
            assert "pick the files again (alpha.txt)" in refused.inner_text()
            page.wait_for_function("() => !document.querySelector('#doc-files td.filename')", timeout=10_000)

            create_collection(page, "handbook")
            upload_files(page, "doc-files", files[1], files[2])
            page.evaluate(count_progress_script())
            page.get_by_role("button", name="Add to collection").click()
            added = page.locator("#ingest-result", has_text="files added")
            added.wait_for(timeout=180_000)
            assert added.inner_text().startswith("2 of 2 files added"), "the refused file was not added again"
            assert "alpha.txt" not in page.locator("#doc-table").inner_text()
            assert page.evaluate("() => window.mostBars") <= 1, "one progress display, not one per output"

            page.locator("#doc-table", has_text="beta.txt").wait_for()
            page.get_by_role("combobox", name="Document").click()
            page.get_by_role("option", name="beta.txt").click()
            page.wait_for_function(
                "() => document.querySelector('#summarize-document').classList.contains('primary')", timeout=10_000)
            assert "secondary" in page.locator("#summarize-collection").get_attribute("class")
            page.screenshot(path=str(page_screenshots / "documents-after-add-1366x768.png"), full_page=True)
        finally:
            context.close()


@SIZES
def test_every_tab_has_a_screenshot_at_both_sizes(browser, smollm_app, page_screenshots, viewport) -> None:
    context, page = open_page(browser, smollm_app.url, viewport)
    try:
        for name in TABS:
            open_tab(page, name)
            page.wait_for_timeout(500)
            shot = page_screenshots / f"tab-{name.lower()}-{size_name(viewport)}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0
    finally:
        context.close()
