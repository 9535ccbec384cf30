"""The chat page's layout in a real Chromium: the message box in view on a laptop and a phone, and the dark theme.

Screenshots of each size go to a folder under the test's tmp dir (its path is printed), to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ui import set_slider

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
TURNS = 6  # 12 messages
BOT_MESSAGES = "[data-testid='bot']"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chat-layout-screenshots")
    print(f"\nchat layout screenshots: {folder}")
    return folder


def open_page(browser, url: str, viewport: dict[str, int], color_scheme: str = "light"):
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("button", name="Send").wait_for()
    page.wait_for_timeout(500)  # the load events (list, picker) have run
    return context, page


def assert_message_box_in_view(page, when: str) -> None:
    """The message box and Send lie wholly inside the window, with the page scrolled to its top."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(200)
    size = page.viewport_size
    for name, box in (("message box", page.locator("#message textarea").bounding_box()),
                      ("Send", page.get_by_role("button", name="Send").bounding_box())):
        assert box is not None, f"{when}: no {name}"
        assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], f"{when}: the {name} is at {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], f"{when}: the {name} is at {box}"


def conversation_height(page) -> float:
    return page.locator("#chat-main").bounding_box()["height"]


def conversation_width(page) -> float:
    return page.locator("#chat-main").bounding_box()["width"]


def send_turns(page, count: int) -> None:
    for turn in range(count):
        page.get_by_label("Message", exact=True).fill(f"Say hello, number {turn + 1}.")
        page.get_by_role("button", name="Send").click()
        page.wait_for_function(
            f"(n) => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
            " return r.length >= n && r[n-1].innerText.includes('tokens/s'); }", arg=turn + 1, timeout=180_000)


def chats_folded(page) -> bool:
    return not page.locator("#conversations").is_visible()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop-1366x768", "phone-390x844"])
def test_the_message_box_stays_in_view_on_an_empty_chat_after_12_messages_and_on_reopening(
        browser, smollm_app, screenshots, viewport) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    phone = viewport is PHONE
    context, page = open_page(browser, smollm_app.url, viewport)
    try:
        assert chats_folded(page) is phone, "a phone shows the conversation first, the chats in a closed drawer"
        assert_message_box_in_view(page, "an empty chat")
        if phone:
            width, column = page.locator("#message textarea").bounding_box()["width"], conversation_width(page)
            assert width >= 0.9 * column, f"on a phone the message box spans the width: {width} of {column}"
        page.screenshot(path=str(screenshots / f"{size}-empty.png"))
        empty_height = conversation_height(page)

        page.get_by_text("System prompt and sampling").click()
        set_slider(page, "max-tokens", 16)
        page.evaluate("() => window.scrollTo(0, 0)")
        send_turns(page, TURNS)
        assert page.locator("[data-testid='user']").count() == TURNS
        assert_message_box_in_view(page, "after 12 messages")
        assert abs(conversation_height(page) - empty_height) < 40, "the conversation scrolls in its own area"
        page.screenshot(path=str(screenshots / f"{size}-12-messages.png"))

        page.reload()
        page.get_by_role("button", name="Send").wait_for()
        page.wait_for_timeout(500)
        if phone:
            page.get_by_role("button", name="Chats", exact=True).click()
        page.locator("#conversations").get_by_text("Say hello, number 1.").first.click()
        page.wait_for_function(f"(n) => document.querySelectorAll(\"{BOT_MESSAGES}\").length === n", arg=TURNS)
        page.wait_for_timeout(500)
        assert chats_folded(page) is phone, "on a phone the drawer closes once a chat is picked"
        assert_message_box_in_view(page, "after opening the chat from the list")
        page.screenshot(path=str(screenshots / f"{size}-reopened.png"))
    finally:
        context.close()


def luminance(css_color: str) -> float:
    """0 (black) to 1 (white), from a computed ``rgb(r, g, b)``."""
    r, g, b = (int(part) for part in css_color[css_color.index("(") + 1:].split(")")[0].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_page_follows_the_browsers_dark_or_light_setting_and_stays_readable(
        browser, smollm_app, screenshots, scheme) -> None:
    requested_hosts: set[str] = set()
    context, page = open_page(browser, smollm_app.url, LAPTOP, color_scheme=scheme)
    try:
        page.on("request", lambda request: requested_hosts.add(request.url.split("/")[2].split(":")[0]))
        page.reload()
        page.get_by_role("button", name="Send").wait_for()
        page.wait_for_function("() => document.querySelector('#model-picker input').value !== ''")
        background = luminance(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
        text = luminance(page.evaluate(
            "() => getComputedStyle(document.querySelector('#chatbot .placeholder')).color"))
        composer = luminance(page.evaluate("() => getComputedStyle(document.querySelector('#composer'))"
                                           ".backgroundColor"))
        if scheme == "dark":
            assert background < 0.2 and text > 0.7, (background, text)
        else:
            assert background > 0.8 and text < 0.3, (background, text)
        assert abs(composer - background) < 0.05, "the pinned message box sits on the page's own background"
        assert requested_hosts <= {"127.0.0.1", "localhost"}, f"the page reached out to {requested_hosts}"
        page.screenshot(path=str(screenshots / f"1366x768-{scheme}.png"))
    finally:
        context.close()
