"""The chat page in a real Chromium: streaming, Stop, Enter, edits, Clear, a reply cut by a kill, local only."""

from __future__ import annotations

import os
import re
import signal
import time
from urllib.parse import urlparse

import pytest

from tests.support.app_server import running_app
from tests.support.ui import record_lengths, seen_lengths, set_slider
from webui.services.chat import SAVE_INTERVAL_S
from webui.ui.chat_view import INCOMPLETE_NOTE

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
    record_lengths(page, f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
                         " return r.length ? r[r.length - 1].innerText.length : 0; }")
    send(page, "Write a long poem about the sea, with many verses.")
    wait_for_finished_reply(page, 1, timeout_ms=300_000)  # generous: CI machines are sometimes heavily loaded
    growing = seen_lengths(page)
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


def bot_count(page) -> int:
    return page.locator(BOT_MESSAGES).count()


def wait_for_finished_reply(page, count: int, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(
        f"(n) => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
        " return r.length >= n && r[n-1].innerText.includes('tokens/s'); }", arg=count, timeout=timeout_ms)


def test_enter_sends_and_shift_enter_starts_a_new_line(page, smollm_app) -> None:
    page.goto(smollm_app.url)
    set_max_tokens(page, 16)
    box = page.get_by_label("Message", exact=True)
    box.click()
    box.type("First line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "First line\nsecond line", "Shift+Enter makes a new line and sends nothing"
    assert page.locator("[data-testid='user']").count() == 0
    box.press("Enter")
    page.locator("[data-testid='user']").first.wait_for()
    assert "second line" in page.locator("[data-testid='user']").first.inner_text()
    wait_for_finished_reply(page, 1)
    assert box.input_value() == "", "the sent message leaves the box"


def test_edit_a_question_then_the_reply_is_written_again(page, smollm_app) -> None:
    page.goto(smollm_app.url)
    # room for a preamble before the answer (the AVX-512 build's greedy reply took 16 tokens to reach it)
    set_max_tokens(page, 48)
    # Greedy: at the default temperature 0.7 with a random seed the reply was a dice roll ("This is a
    # classic French answer..." in one CI run), so whether it named the answer was luck.
    set_slider(page, "temperature", 0)
    send(page, "What is the capital of Italy?")
    wait_for_finished_reply(page, 1)
    first_reply = last_reply(page)
    user_message = page.locator("[data-testid='user']").first
    user_message.hover()
    page.get_by_role("button", name="Edit").first.click()
    editor = page.locator("#chatbot textarea").first
    editor.fill("What is the capital of France? Answer in one word.")
    page.get_by_role("button", name="Submit").first.click()
    page.wait_for_function(
        f"(old) => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
        " return r.length === 1 && r[0].innerText.includes('tokens/s') && r[0].innerText !== old; }",
        arg=first_reply, timeout=120_000)
    shown = page.locator("#chatbot").inner_text()
    assert "capital of France" in shown and "capital of Italy" not in shown
    # The new reply answers the edited question. SmolLM2's greedy wording differs between the AVX2 and
    # AVX-512 builds, so either word counts; the first question never mentioned France.
    assert re.search(r"Paris|France", last_reply(page)), last_reply(page)
    # The edit is saved: reopening the chat shows it, under the title that followed the edited first message.
    page.reload()
    page.locator("#conversations").get_by_text("What is the capital of France", exact=False).click()
    page.wait_for_function("() => document.querySelector('#chatbot').innerText.includes('capital of France')")


def test_clear_asks_first_and_cancel_keeps_the_chat(page, smollm_app) -> None:
    page.goto(smollm_app.url)
    set_max_tokens(page, 16)
    send(page, "Say hello.")
    wait_for_finished_reply(page, 1)
    page.locator("#chat-clear").click()
    page.locator("#chat-confirm-clear").wait_for()
    assert bot_count(page) == 1, "nothing is cleared before confirming"
    page.locator("#chat-cancel-clear").click()
    page.locator("#chat-confirm-clear").wait_for(state="hidden")
    assert bot_count(page) == 1 and "Say hello." in page.locator("#chatbot").inner_text()
    page.locator("#chat-clear").click()
    page.locator("#chat-confirm-clear").click()
    page.wait_for_function("() => !document.querySelector('#chatbot').innerText.includes('Say hello.')")
    page.reload()
    page.locator("#conversations").get_by_text("Say hello.", exact=False).click()
    page.wait_for_timeout(1_000)
    assert "Say hello." not in page.locator("#chatbot").inner_text(), "the clear was saved"


def test_a_reply_cut_by_a_kill_comes_back_marked_unfinished(browser, tmp_path, smollm_path) -> None:
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir",
            str(tmp_path / "models"), "--offline", "--ctx-size", "2048"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        with running_app(tmp_path, args) as app:
            page.goto(app.url)
            set_max_tokens(page, 2000)
            send(page, "Tell me an extremely long story about a dragon and a knight, in great detail.")
            page.wait_for_function(
                f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
                " return r.length && r[r.length-1].innerText.length > 40; }", timeout=180_000)
            seen = last_reply(page)
            # A save comes at most SAVE_INTERVAL_S and one token after the last: wait for one.
            time.sleep(2 * SAVE_INTERVAL_S + 1)
            os.kill(app.process.pid, signal.SIGKILL)
            app.process.wait(10)
        with running_app(tmp_path, args) as app:
            page.goto(app.url)
            page.locator("#conversations").get_by_text("Tell me an extremely long story", exact=False).click()
            page.wait_for_function(f"() => document.querySelectorAll(\"{BOT_MESSAGES}\").length === 1")
            kept = last_reply(page)
            assert INCOMPLETE_NOTE in kept and "tokens/s" not in kept
            assert kept.startswith(seen.strip()), f"the words shown before the kill are kept: {seen!r} / {kept!r}"
    finally:
        context.close()


def test_clearing_a_chat_while_it_replies_stops_the_reply_without_an_orphan_or_error(page, smollm_app) -> None:
    page.goto(smollm_app.url)
    set_max_tokens(page, 2000)
    send(page, "Write an extremely long story about a lighthouse keeper, in great detail.")
    page.wait_for_function(
        f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
        " return r.length && r[r.length-1].innerText.length > 10; }", timeout=180_000)
    page.locator("#chat-clear").click()
    page.locator("#chat-confirm-clear").click()
    page.wait_for_function("() => !document.querySelector('#chatbot').innerText.includes('lighthouse')")
    time.sleep(3 * SAVE_INTERVAL_S)  # the stopped reply would have come back by now
    assert bot_count(page) == 0 and "lighthouse" not in page.locator("#chatbot").inner_text()
    toasts = page.locator("[data-testid='toast-body']")
    assert toasts.count() == 0, f"no error toast: {[t.inner_text() for t in toasts.all()]}"
    # The stopped reply freed the model: a short new question is answered at once, in the same chat.
    set_slider(page, "max-tokens", 16)
    send(page, "Say hello.")
    wait_for_finished_reply(page, 1, timeout_ms=180_000)
    assert "lighthouse" not in page.locator("#chatbot").inner_text()
    page.reload()
    page.locator("#conversations").get_by_text("Write an extremely long story", exact=False).click()
    page.wait_for_function("() => document.querySelector('#chatbot').innerText.includes('Say hello.')")
    assert "unfinished" not in page.locator("#chatbot").inner_text(), "no orphan was saved either"


def test_a_1_mb_or_20_mb_message_sent_as_the_page_sends_it_is_refused_with_a_message_and_not_saved(smollm_app) -> None:
    from tests.support.gradio_queue import GradioSession

    session = GradioSession(smollm_app.url)
    try:
        config = session.config()
        send_id = next(c["id"] for c in config["components"]
                       if c.get("type") == "button" and c.get("props", {}).get("value") == "Send")
        add = next(d for d in config["dependencies"] if [send_id, "click"] in d.get("targets", []))
        huge = "word " * 4_000_000  # 20 MB: cut off at the page's 4 MB body limit, before Gradio reads it
        # The Send event's inputs: the page's key, the message, the open chat, its collections.
        response = session.call_direct(add, ["page-key", huge, None, []])
        assert response.status_code == 413 and "larger than 4 MB" in response.text
        long = "word " * 200_000  # 1 MB: read, and refused by the chat service with its own sentence
        response = session.call_direct(add, ["page-key", long, None, []])
        assert "characters long; the limit is 100,000" in response.text and response.status_code in (400, 500)
        listing = next(d for d in config["dependencies"]
                       if any(t[1] == "load" for t in d.get("targets", []))
                       and any(c["id"] in d.get("outputs", []) for c in config["components"]
                               if c.get("props", {}).get("elem_id") == "conversations"))
        shown = session.call_direct(listing, []).json()["data"][0]
        assert "word word" not in str(shown), "nothing was saved"
    finally:
        session.close()
