"""The chats sidebar and the message box's "+ Documents" chip in a real Chromium (issue 27, items 2 and 3).

On a phone (390x844) the sidebar is a drawer that the header's "Chats" opens over the conversation and
that picking a chat or New chat closes, the message box spanning the width; on a laptop (1366x768) each
row's "⋯" menu renames (from the current title) and deletes (after asking) that row's chat, and the chip
attaches a collection that the header names, that a new chat leaves out and that a reload keeps.
Screenshots go to the run's screenshots folder (printed at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_chat_layout import LAPTOP, PHONE, assert_message_box_in_view, open_page
from tests.e2e.test_new_user_page import header, open_tab, wait_header
from tests.support.app_server import RunningApp, running_app
from tests.support.ui import create_collection
from webui.history import HistoryStore
from webui.services.access import LOCAL_USER

pytestmark = pytest.mark.e2e

SAVED_CHATS = ("Tomato seedlings", "Kettle descaling", "Bike gears", "Bread starter")


@pytest.fixture(scope="module")
def chats_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    """The app with a few saved chats, each one question and its answer."""
    workdir = tmp_path_factory.mktemp("app")
    store = HistoryStore(workdir / "data" / "history.sqlite3")
    for title in SAVED_CHATS:
        chat = store.create(LOCAL_USER.id, title).id
        question = store.append(LOCAL_USER.id, chat, "user", f"A question about {title.lower()}?")
        store.append_reply(LOCAL_USER.id, chat, question.id, f"An answer about {title.lower()}.")
    args = ["--model", str(smollm_path), "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(workdir, args) as app:
        yield app


def row(page, title: str):
    return page.locator("#conversations label", has_text=title)


def listed_titles(page) -> list[str]:
    return [text.strip() for text in page.locator("#conversations label").all_inner_texts()]


def drawer_open(page) -> bool:
    return page.locator("#conversations").is_visible()


def wait_drawer(page, *, open_: bool) -> None:
    page.locator("#conversations").wait_for(state="visible" if open_ else "hidden", timeout=10_000)
    page.wait_for_timeout(300)  # the slide has ended


def shown_question(page) -> str:
    return page.locator("[data-testid='user']").first.inner_text()


def attached_chips(page) -> list[str]:
    return [chip.strip() for chip in page.locator("#composer-documents .token").all_inner_texts()]


def picked_documents(page) -> list[str]:
    return [chip.strip() for chip in page.locator("#chat-documents .token").all_inner_texts()]


def open_row_menu(page, title: str):
    row(page, title).get_by_role("button", name="Chat actions").click()
    menu = page.locator("#chat-row-menu")
    menu.wait_for(state="visible", timeout=10_000)
    return menu


def reload(page) -> None:
    page.reload()
    page.get_by_role("button", name="Send").wait_for()
    page.wait_for_timeout(500)


def test_on_a_phone_the_chats_are_a_drawer_that_picking_a_chat_or_new_chat_closes(
        browser, chats_app, page_screenshots) -> None:
    context, page = open_page(browser, chats_app.url, PHONE)
    try:
        toggle = page.get_by_role("button", name="Chats", exact=True)
        assert not drawer_open(page), "a phone shows the conversation first"
        assert toggle.get_attribute("aria-expanded") == "false"
        box, width = page.locator("#message textarea").bounding_box(), PHONE["width"]
        column = page.locator("#chat-main").bounding_box()["width"]
        assert column >= 0.8 * width, f"the conversation has the page's width, no sidebar beside it: {column}"
        assert box["width"] >= 0.9 * column, f"the message box spans the width: {box['width']} of {column}"
        assert_message_box_in_view(page, "a phone at load")
        page.screenshot(path=str(page_screenshots / "chat-drawer-closed-390x844.png"))

        toggle.click()
        wait_drawer(page, open_=True)
        assert toggle.get_attribute("aria-expanded") == "true"
        drawer, conversation = page.locator("#chat-sidebar").bounding_box(), page.locator("#chatbot").bounding_box()
        assert drawer["x"] <= 0 < drawer["x"] + drawer["width"] and drawer["width"] < width, drawer
        assert drawer["x"] + drawer["width"] > conversation["x"], "the drawer lies over the conversation"
        assert listed_titles(page) == list(reversed(SAVED_CHATS)), "the newest chat on top"
        page.screenshot(path=str(page_screenshots / "chat-drawer-open-390x844.png"))

        row(page, "Kettle descaling").get_by_text("Kettle descaling").click()
        wait_drawer(page, open_=False)
        page.locator("[data-testid='user']", has_text="kettle descaling").wait_for()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert_message_box_in_view(page, "after picking a chat in the drawer")
        page.screenshot(path=str(page_screenshots / "chat-drawer-picked-390x844.png"))

        toggle.click()
        wait_drawer(page, open_=True)
        page.get_by_role("button", name="New chat").click()
        wait_drawer(page, open_=False)
        page.wait_for_function("() => !document.querySelector(\"[data-testid='user']\")")
        assert_message_box_in_view(page, "after New chat in the drawer")

        toggle.click()  # a tap beside the drawer closes it too, leaving the chat as it was
        wait_drawer(page, open_=True)
        page.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)
        wait_drawer(page, open_=False)
    finally:
        context.close()


def test_on_a_laptop_the_list_stays_beside_the_conversation_without_a_drawer_button(browser, chats_app) -> None:
    context, page = open_page(browser, chats_app.url, LAPTOP)
    try:
        assert drawer_open(page) and not page.get_by_role("button", name="Chats", exact=True).is_visible()
        sidebar, conversation = page.locator("#chat-sidebar").bounding_box(), page.locator("#chatbot").bounding_box()
        assert sidebar["x"] + sidebar["width"] <= conversation["x"], "the list sits left of the conversation"
        row(page, "Bike gears").get_by_text("Bike gears").click()
        page.locator("[data-testid='user']", has_text="bike gears").wait_for()
        assert drawer_open(page), "picking a chat leaves the list in view"
    finally:
        context.close()


def test_a_rows_menu_renames_from_the_current_title_and_deletes_after_asking(
        browser, chats_app, page_screenshots) -> None:
    context, page = open_page(browser, chats_app.url, LAPTOP)
    try:
        row(page, "Bread starter").get_by_text("Bread starter").click()  # the open chat: another row is renamed
        page.locator("[data-testid='user']", has_text="bread starter").wait_for()
        menu = open_row_menu(page, "Tomato seedlings")
        title = menu.get_by_label("Title")
        assert title.input_value() == "Tomato seedlings", "Rename starts with the row's current title"
        page.screenshot(path=str(page_screenshots / "chat-row-menu-1366x768.png"))
        title.fill("Tomatoes, from seed")
        menu.get_by_role("button", name="Rename").click()
        row(page, "Tomatoes, from seed").wait_for()
        menu.wait_for(state="hidden")
        assert "Tomato seedlings" not in listed_titles(page)
        assert "bread starter" in shown_question(page), "the open chat stays open"
        assert row(page, "Bread starter").locator("input").is_checked(), "and stays picked in the list"

        menu = open_row_menu(page, "Kettle descaling")
        menu.get_by_role("button", name="Delete").click()
        page.get_by_text("Delete this chat and all its messages? This cannot be undone.").wait_for()
        menu.get_by_role("button", name="Cancel").click()  # asked, not confirmed: nothing is deleted
        menu.wait_for(state="hidden")
        assert "Kettle descaling" in listed_titles(page)

        open_row_menu(page, "Kettle descaling")
        page.locator("#chatbot").click()  # a click beside the menu closes it too
        menu.wait_for(state="hidden")
        menu = open_row_menu(page, "Kettle descaling")
        assert not page.get_by_role("button", name="Yes, delete this chat").is_visible(), "asks each time"
        menu.get_by_role("button", name="Delete").click()
        page.get_by_role("button", name="Yes, delete this chat").click()
        row(page, "Kettle descaling").wait_for(state="detached")
        assert "bread starter" in shown_question(page), "deleting another chat leaves the open one open"

        menu = open_row_menu(page, "Bread starter")  # the open chat itself: it closes
        menu.get_by_role("button", name="Delete").click()
        page.get_by_role("button", name="Yes, delete this chat").click()
        row(page, "Bread starter").wait_for(state="detached")
        page.wait_for_function("() => !document.querySelector(\"[data-testid='user']\")")

        reload(page)
        assert sorted(listed_titles(page)) == ["Bike gears", "Tomatoes, from seed"], "kept after a reload"
    finally:
        context.close()


def test_the_chip_attaches_a_collection_the_header_names_a_new_chat_leaves_out_and_a_reload_keeps(
        browser, chats_app, page_screenshots) -> None:
    context, page = open_page(browser, chats_app.url, LAPTOP)
    try:
        open_tab(page, "Documents")
        create_collection(page, "gardening")
        open_tab(page, "Chat")
        row(page, "Bike gears").get_by_text("Bike gears").click()
        page.locator("[data-testid='user']", has_text="bike gears").wait_for()
        assert attached_chips(page) == [] and "Plain chat: no documents" in header(page)

        page.get_by_label("+ Documents").click()  # lists the collections made since the page was opened
        page.get_by_role("option", name="gardening", exact=True).click()
        page.keyboard.press("Escape")
        assert "Answers from gardening" in wait_header(page, "Answers from gardening")
        assert attached_chips(page) == ["gardening"]
        page.wait_for_function("() => document.querySelector('#chat-documents').innerText.includes('gardening')")
        assert picked_documents(page) == ["gardening"], "the settings' Documents picker holds the same pick"
        page.screenshot(path=str(page_screenshots / "chat-documents-chip-1366x768.png"))

        page.get_by_role("button", name="New chat").click()
        wait_header(page, "Plain chat: no documents")
        assert attached_chips(page) == [], "a new chat starts plain"

        reload(page)
        row(page, "Bike gears").get_by_text("Bike gears").click()
        wait_header(page, "Answers from gardening")
        page.locator("#composer-documents .token", has_text="gardening").wait_for()
        assert attached_chips(page) == ["gardening"], "the chat's collection comes back after a reload"

        page.locator("#composer-documents .token-remove").first.click()  # its x detaches it
        wait_header(page, "Plain chat: no documents")
        assert picked_documents(page) == []
        reload(page)
        row(page, "Bike gears").get_by_text("Bike gears").click()
        page.locator("[data-testid='user']", has_text="bike gears").wait_for()
        page.wait_for_timeout(500)
        assert attached_chips(page) == [] and "Plain chat: no documents" in header(page)
    finally:
        context.close()


def test_the_chip_sits_beside_the_message_box_at_both_sizes(browser, chats_app, page_screenshots) -> None:
    for viewport, size in ((LAPTOP, "1366x768"), (PHONE, "390x844")):
        context, page = open_page(browser, chats_app.url, viewport)
        try:
            chip, box = (page.locator(f"#{elem_id}").bounding_box() for elem_id in ("composer-documents", "message"))
            assert page.get_by_label("+ Documents").is_visible()
            if viewport is LAPTOP:
                assert chip["x"] + chip["width"] <= box["x"] and abs(chip["y"] - box["y"]) < 40, (chip, box)
            else:
                assert chip["y"] + chip["height"] <= box["y"] + 1, f"above the full-width message box: {chip}, {box}"
            assert_message_box_in_view(page, f"the chip at {size}")
            page.screenshot(path=str(page_screenshots / f"chat-composer-{size}.png"))
        finally:
            context.close()
