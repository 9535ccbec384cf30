"""Downloading a model from the Models tab, against the local fake of the hub's HTTP protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import app_with_hub
from tests.support.fakehub import FakeHub
from tests.support.ui import fill_settled

pytestmark = pytest.mark.e2e

REPO = "local-test/SmolLM2-135M-Instruct-GGUF"
GOOD = "SmolLM2-135M-Instruct-Q4_1.gguf"
BAD = "SmolLM2-135M-Instruct-Q8_0.gguf"  # advertised with a wrong sha256


def test_list_download_and_verify_from_the_models_tab(page, tmp_path: Path, smollm_path: Path) -> None:
    with FakeHub({REPO: {GOOD: smollm_path, BAD: smollm_path}}) as hub:
        hub.sha256_override[(REPO, BAD)] = "0" * 64
        hub.bytes_per_second = 40_000_000  # slow enough to watch the bar move
        with app_with_hub(tmp_path, smollm_path, hub.endpoint) as app:
            page.goto(app.url)
            page.get_by_role("tab", name="Models").click()
            page.get_by_text("Download from the hub").click()
            fill_settled(page, page.get_by_label("Repository id"), REPO)
            page.get_by_role("button", name="List files").click()
            page.get_by_text(f"2 GGUF models in {REPO}").wait_for()

            page.get_by_role("button", name="Download", exact=True).click()
            page.locator("#download-progress").wait_for()
            page.locator("#download-progress").get_by_text("done").wait_for(timeout=60_000)
            assert (tmp_path / "models" / GOOD).stat().st_size == smollm_path.stat().st_size
            page.wait_for_function(f"() => document.querySelector('#models-table').innerText.includes('{GOOD}')")

            page.get_by_label("File", exact=True).click()
            page.get_by_role("option", name=BAD, exact=False).click()
            page.get_by_role("button", name="Download", exact=True).click()
            page.locator("#download-progress").get_by_text("failed").wait_for(timeout=60_000)
            page.get_by_text("sha256", exact=False).first.wait_for()
            assert not (tmp_path / "models" / BAD).exists(), "a file that failed its checksum is never kept"
            assert app.status()["model"]["file"] == smollm_path.name, "the loaded model is untouched"
    assert any(r.method == "GET" and r.path.endswith(GOOD) for r in hub.requests), "the file came from the hub"
