"""A reasoning reply on the chat page in Chromium: its thinking folded above the answer, shown again when
the chat is reopened, and kept out of the next turn (the exact prompt and what the model server receives).

The model is an OpenAI-compatible server that streams its thinking as ``reasoning_content``, as llama.cpp's
server does for a reasoning model: SmolLM2 cannot think on its own, and the page cannot force it with a
grammar (tests/integration/test_chat_thinking.py does that, through the real engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, running_app
from tests.support.model_servers import ScriptedServer, scripted_server

pytestmark = pytest.mark.e2e

BOT_MESSAGES = "[data-testid='bot']"
THINKING = "The user greets me as Ada's friend. I should greet back briefly."
ANSWER = "Hello! Nice to meet you."


def delta(**fields: str) -> dict:
    return {"choices": [{"index": 0, "delta": fields}]}


@pytest.fixture(scope="module")
def thinking_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, ScriptedServer]]:
    workdir: Path = tmp_path_factory.mktemp("thinking")
    events = [delta(role="assistant"), *[delta(reasoning_content=f"{word} ") for word in THINKING.split()],
              *[delta(content=f"{word} ") for word in ANSWER.split()],
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    with scripted_server(model="thinker", events=events) as scripted:
        args = ["--no-local-model", "--backend", scripted.url, "--data-dir", str(workdir / "data"),
                "--models-dir", str(workdir / "models"), "--offline"]
        with running_app(workdir, args) as app:
            yield app, scripted


def wait_for_finished_reply(page, count: int) -> None:
    page.wait_for_function(
        f"(n) => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\");"
        " return r.length >= n && r[n-1].innerText.includes('tokens/s'); }", arg=count, timeout=60_000)


def send(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def test_a_replys_thinking_is_folded_above_its_answer_and_never_sent_back(page, thinking_app) -> None:
    app, scripted = thinking_app
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(app.url)
    send(page, "Hi, I am a friend of Ada.")
    wait_for_finished_reply(page, 1)

    reply = page.locator(BOT_MESSAGES).nth(0)
    block = reply.locator("details.thinking")
    assert block.count() == 1 and block.get_attribute("open") is None, "the thinking starts folded"
    assert block.locator("summary").inner_text().startswith("Thinking (")
    assert not block.get_by_text("I should greet back briefly.").is_visible()
    assert ANSWER in reply.inner_text() and "<think" not in reply.inner_text()
    block.locator("summary").click()
    block.get_by_text("I should greet back briefly.").wait_for()

    page.reload()  # the chat reopened from the list shows its thinking again, folded
    page.get_by_label("Hi, I am a friend of Ada.").click()
    page.locator(f"{BOT_MESSAGES} details.thinking summary").get_by_text("Thinking (").wait_for()

    page.get_by_label("Message", exact=True).fill("What did you think?")
    page.get_by_text("Exact prompt", exact=True).click()
    page.get_by_role("button", name="Show the exact prompt").click()
    exact = page.locator("#exact-prompt textarea")
    page.wait_for_function("() => document.querySelector('#exact-prompt textarea').value.includes('What did')")
    assert ANSWER.split()[0] in exact.input_value() and "greet back" not in exact.input_value()

    page.get_by_role("button", name="Send").click()
    wait_for_finished_reply(page, 2)
    sent = scripted.seen_bodies[-1]["messages"]
    assert [m["role"] for m in sent][-3:] == ["user", "assistant", "user"]
    assert sent[-2]["content"].strip() == ANSWER and "greet back" not in str(sent)
