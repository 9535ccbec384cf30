"""The chat page in a real Chromium: streaming, Stop, and a page that stays on this machine."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from tests.support.ui import set_slider

pytestmark = pytest.mark.e2e

BOT_MESSAGES = "[data-testid='bot']"


def last_reply(page) -> str:
    replies = page.locator(BOT_MESSAGES)
    return replies.nth(replies.count() - 1).inner_text() if replies.count() else ""


def set_max_tokens(page, value: int) -> None:
    page.get_by_text("System prompt and sampling").click()
    set_slider(page, "max-tokens", value)


def send(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def test_reply_streams_into_the_page_and_shows_stats(page, smollm_app) -> None:
    requested_hosts: set[str] = set()
    page.on("request", lambda request: requested_hosts.add(urlparse(request.url).hostname or ""))
    page.goto(smollm_app.url)
    set_max_tokens(page, 160)
    send(page, "Write a long poem about the sea, with many verses.")
    lengths: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lengths.append(len(last_reply(page)))
        if "tokens/s" in last_reply(page):
            break
        time.sleep(0.05)
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 3, f"the reply should grow while streaming, saw lengths {growing[:10]}"
    assert "tokens/s" in last_reply(page) and "first token" in last_reply(page)
    assert requested_hosts <= {"127.0.0.1", "localhost", ""}, f"the page reached out to {requested_hosts}"


def test_stop_ends_a_long_reply_and_keeps_the_partial_text(page, smollm_app) -> None:
    page.goto(smollm_app.url)
    set_max_tokens(page, 2000)
    send(page, "Tell me an extremely long story about a dragon and a knight, in great detail.")
    page.wait_for_function(
        f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\"); return r.length && r[r.length-1].innerText.length > 20; }}"
    )
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function(
        f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\"); return r.length && r[r.length-1].innerText.includes('stopped'); }}",
        timeout=15_000,
    )
    stopped_text = last_reply(page)
    time.sleep(1.0)
    assert last_reply(page) == stopped_text, "nothing more arrives after Stop"
    tokens = int(stopped_text.split(" tokens ·")[0].split()[-1])
    assert 0 < tokens < 2000
