"""The Models tab's reranker panel in Chromium: download a cross-encoder from the (local fake) hub,
see it in use, turn it off and on, and a wrong repository's sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.app_server import app_with_hub
from tests.support.cross_encoders import repo_files
from tests.support.fakehub import FakeHub
from tests.support.ui import fill_settled

pytestmark = pytest.mark.e2e

REPO = "local-test/tiny-cross-encoder"
NAME = "local-test--tiny-cross-encoder"


def test_download_a_reranker_pick_it_and_turn_it_off(page, tmp_path: Path, smollm_path: Path,
                                                     cross_encoder_path: Path) -> None:
    with FakeHub({REPO: repo_files(cross_encoder_path)}) as hub:
        hub.bytes_per_second = 2_000_000  # slow enough to see the progress line
        with app_with_hub(tmp_path, smollm_path, hub.endpoint) as app:
            page.goto(app.url)
            page.get_by_role("tab", name="Models").click()
            page.get_by_text("Reranker for documents").click()
            status = page.locator("#rerankers-status")
            status.get_by_text("no reranker is downloaded").wait_for()
            assert app.status()["documents"] == {"reranker": None}

            repo = page.locator("#rerankers-repo textarea, #rerankers-repo input").first
            fill_settled(page, repo, "local-test/missing")
            page.get_by_role("button", name="Download reranker").click()
            page.locator("#rerankers-status").get_by_text("does not exist").wait_for(timeout=30_000)

            fill_settled(page, repo, REPO)
            page.get_by_role("button", name="Download reranker").click()
            page.locator("#rerankers-progress").get_by_text("Downloading…").first.wait_for(timeout=30_000)
            page.locator("#rerankers-progress").get_by_text(f"Downloaded {REPO}.").wait_for(timeout=60_000)
            status.get_by_text(f"In use: {NAME}").wait_for()
            page.screenshot(path=str(tmp_path / "reranker-panel.png"))
            choice = tmp_path / "data" / "reranker.json"
            assert json.loads(choice.read_text())["reranker"] == NAME

            page.get_by_label("Rerank document searches with").click()
            page.get_by_role("option", name="Off", exact=True).click()
            status.get_by_text("Off: document searches are not reranked").wait_for()
            assert json.loads(choice.read_text())["reranker"] is None

            page.get_by_label("Rerank document searches with").click()
            page.get_by_role("option", name=NAME, exact=True).click()
            status.get_by_text(f"In use: {NAME}").wait_for()
            assert json.loads(choice.read_text())["reranker"] == NAME
            assert app.status()["documents"] == {"reranker": NAME}

            # The page was built before the download: Measure retrieval now offers the comparison too.
            page.get_by_role("tab", name="Documents").click()
            page.get_by_text("Measure retrieval").click()
            page.get_by_label("Compare with").click()
            page.get_by_role("option", name="Hybrid without the reranker").wait_for()
            page.keyboard.press("Escape")
            page.get_by_role("tab", name="Models").click()
            assert app.status()["model"]["file"] == smollm_path.name, "the chat model is untouched"
    assert any(r.path.endswith("model.safetensors") for r in hub.requests), "the weights came from the hub"
