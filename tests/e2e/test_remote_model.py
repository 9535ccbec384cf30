"""A model on a remote OpenAI-compatible server (a real llama_cpp.server), picked in the chat's picker, answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, free_port, running_app
from tests.support.model_servers import start_llama_server
from tests.support.ui import set_slider

pytestmark = pytest.mark.e2e
BOT_MESSAGES = "[data-testid='bot']"


@pytest.fixture(scope="module")
def remote_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[tuple[RunningApp, str, Path]]:
    """The app with SmolLM2 loaded locally and a llama_cpp.server (also SmolLM2) as a --backend."""
    workdir = tmp_path_factory.mktemp("remote")
    port = free_port()
    server_log = workdir / "llama-server.log"
    server = start_llama_server(smollm_path, port, log=server_log)
    url = f"http://127.0.0.1:{port}"
    args = ["--model", str(smollm_path), "--data-dir", str(workdir / "data"), "--models-dir", str(workdir / "models"),
            "--offline", "--ctx-size", "2048", "--threads", "1", "--backend", url]
    try:
        with running_app(workdir, args, timeout=240) as app:
            yield app, url, server_log
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_remote_model_picked_in_the_chat_picker_answers_in_the_chat(page, remote_app, smollm_path) -> None:
    app, url, server_log = remote_app
    remote_name = f"{smollm_path.name} @ {url.removeprefix('http://')}"
    page.goto(app.url)
    page.locator("#model-picker input").wait_for()
    page.wait_for_function(
        "(name) => document.querySelector('#model-picker input').value === name", arg=smollm_path.name)

    page.wait_for_timeout(2000)  # let every page-load event land, so none resets the picker after the pick
    page.locator("#model-picker input").click()
    page.get_by_role("option", name=remote_name).wait_for()
    page.get_by_role("option", name=remote_name).click()
    page.locator("#model-picker-status").get_by_text(f"Now using {remote_name}").wait_for(timeout=60_000)
    assert app.status()["model"]["file"] == remote_name

    page.get_by_text("System prompt and sampling").click()
    set_slider(page, "max-tokens", 16)
    page.get_by_label("Message", exact=True).fill("Say hello to Ada.")
    page.get_by_role("button", name="Send").click()
    deadline = time.monotonic() + 240
    reply = ""
    while time.monotonic() < deadline and "tokens/s" not in reply:
        replies = page.locator(BOT_MESSAGES)
        reply = replies.nth(replies.count() - 1).inner_text() if replies.count() else ""
        time.sleep(0.2)
    assert "tokens/s" in reply and "first token" in reply
    assert "POST /v1/chat/completions" in server_log.read_text(), "the reply came from the remote server"


def test_the_models_tab_lists_the_servers_models_with_where_they_run(page, remote_app, smollm_path) -> None:
    app, url, _ = remote_app
    remote_name = f"{smollm_path.name} @ {url.removeprefix('http://')}"
    page.goto(app.url)
    page.get_by_role("tab", name="Models").click()
    listing = page.locator("#models-loaded")
    listing.get_by_text("On model servers").wait_for()
    assert f"{remote_name}: runs at {url.removeprefix('http://')}, context 2048" in listing.inner_text()
