"""The Models tab in a real Chromium: switch SmolLM2 -> Gemma 3 with Load, then chat with Gemma."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, running_app
from tests.support.ui import set_slider

pytestmark = pytest.mark.e2e

BOT_MESSAGES = "[data-testid='bot']"


@pytest.fixture(scope="module")
def two_model_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path, gemma_path: Path) -> Iterator[RunningApp]:
    """The app started by launcher.py on SmolLM2, with Gemma 3 270M beside it in the models dir."""
    workdir = tmp_path_factory.mktemp("models-tab")
    models = workdir / "models"
    models.mkdir()
    (models / smollm_path.name).symlink_to(smollm_path)
    (models / gemma_path.name).symlink_to(gemma_path)
    args = ["--model", smollm_path.name, "--models-dir", str(models), "--data-dir", str(workdir / "data"),
            "--offline", "--ctx-size", "1024", "--threads", "2"]
    with running_app(workdir, args) as app:
        yield app


def test_switch_to_gemma_in_the_models_tab_then_chat_with_it(page, two_model_app, smollm_path, gemma_path) -> None:
    assert two_model_app.status()["model"]["file"] == smollm_path.name
    page.goto(two_model_app.url)
    page.get_by_role("tab", name="Models").click()
    page.locator("#models-loaded").get_by_text(smollm_path.name).wait_for()

    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name=gemma_path.name).click()
    page.get_by_role("button", name="Load", exact=True).click()
    page.locator("#models-status").get_by_text(f"Loaded {gemma_path.name}").wait_for(timeout=60_000)

    model = two_model_app.status()["model"]
    assert (model["file"], model["architecture"]) == (gemma_path.name, "gemma3")
    page.locator("#models-loaded").get_by_text(gemma_path.name).wait_for()

    page.get_by_role("tab", name="Chat").click()
    page.get_by_text("System prompt and sampling").click()
    set_slider(page, "max-tokens", 16)
    page.get_by_label("Message", exact=True).fill("Say hello.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        f"() => {{ const r = document.querySelectorAll(\"{BOT_MESSAGES}\"); "
        "return r.length && r[r.length-1].innerText.includes('tokens/s'); }",
        timeout=90_000,
    )
    reply = page.locator(BOT_MESSAGES).last.inner_text()
    text, _, stats = reply.rpartition("tokens ·")
    assert text.strip(), "Gemma wrote a reply"
    assert int(text.split()[-1]) <= 16, f"the reply kept to the 16-token limit: {stats}"
    assert two_model_app.status()["model"]["file"] == gemma_path.name
