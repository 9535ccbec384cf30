"""Finding a model in the Models tab on a 1366x768 laptop screen, against the local fake of the hub.

The catalog's pick for this machine downloads with one click; a search by name lists GGUF files with
sizes and whether they fit; a hub gone away is one clear sentence. Nothing reaches the hub before the
user presses a button.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import app_with_hub
from tests.support.fakehub import FakeHub
from tests.support.team import PASSWORDS, team_app
from tests.support.ui import fill_settled, log_in

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1366, "height": 768}
SMALLEST = "Qwen3-1.7B-Q4_K_M.gguf"  # the catalog entry every machine is offered (see webui/models/catalog.py)
SMALLEST_REPO = "unsloth/Qwen3-1.7B-GGUF"
SEARCH_REPO = "local-test/SmolLM2-135M-Instruct-GGUF"
Q4, Q8 = "SmolLM2-135M-Instruct-Q4_1.gguf", "SmolLM2-135M-Instruct-Q8_0.gguf"


def row_cells(page, table_id: str, text: str) -> list[str]:
    """The cells of the first row of a table that contains ``text`` (Gradio's rows are ARIA rows of grid cells)."""
    return page.evaluate(
        """([id, text]) => {
            const row = [...document.querySelectorAll(`#${id} [role=row]`)].find(r => r.innerText.includes(text));
            return row ? [...row.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()) : [];
        }""", [table_id, text])


def cell(page, table_id: str, text: str):
    """The visible cell holding ``text`` (Gradio also keeps a hidden copy of the rows to size the columns)."""
    return page.locator(f"#{table_id}").get_by_role("gridcell").filter(has_text=text).first


def test_recommended_download_search_and_an_offline_hub(browser, tmp_path: Path, smollm_path: Path,
                                                         page_screenshots: Path) -> None:
    # The SmolLM2 file stands in for the catalog's Qwen3 1.7B: the download path does not care what it holds.
    repos = {SMALLEST_REPO: {SMALLEST: smollm_path}, SEARCH_REPO: {Q4: smollm_path, Q8: smollm_path}}
    size_mb = f"{smollm_path.stat().st_size / 2**20:.0f} MB"
    with FakeHub(repos) as hub:
        with app_with_hub(tmp_path, smollm_path, hub.endpoint) as app:
            context = browser.new_context(viewport=LAPTOP)
            page = context.new_page()
            page.set_default_timeout(30_000)
            try:
                page.goto(app.url)
                page.get_by_role("tab", name="Models").click()

                # Recommendations: the catalog's models for this machine, the best one marked and selected.
                cell(page, "models-recommended", "Qwen3 1.7B").wait_for()
                cell(page, "models-recommended", "★").wait_for()
                page.locator("#models-recommended-picked").get_by_text("Selected:").wait_for()
                cells = row_cells(page, "models-recommended", "Qwen3 1.7B")
                assert cells[1] == "1.0 GB" and cells[2].split(":")[0] in {"yes", "tight", "no"}, cells
                assert "tokens/s" in cells[3] and cells[4] == "", cells
                page.screenshot(path=str(page_screenshots / "models-find-recommended-1366x768.png"))
                assert hub.requests == [], "opening the Models tab contacts nobody"

                # One click on the row, one on Download selected: the download's progress runs to done.
                cell(page, "models-recommended", "Qwen3 1.7B").click()
                page.locator("#models-recommended-picked").get_by_text("Qwen3 1.7B").wait_for()
                page.get_by_role("button", name="Download selected").click()
                page.locator("#download-progress").get_by_text("done").wait_for(timeout=60_000)
                assert (tmp_path / "models" / SMALLEST).stat().st_size == smollm_path.stat().st_size
                page.wait_for_function(
                    """() => [...document.querySelectorAll('#models-recommended [role=row]')]
                        .some(r => r.innerText.includes('Qwen3 1.7B')
                                   && [...r.querySelectorAll('[role=gridcell]')].pop().innerText.trim() === 'yes')""")
                page.wait_for_function(f"() => document.querySelector('#models-table').innerText.includes('{SMALLEST}')")

                # Search by name: every GGUF file of the matching repo, with its size and whether it fits.
                page.get_by_text("Download from the hub").click()
                fill_settled(page, page.get_by_label("Search the hub by name"), "smollm")
                page.get_by_role("button", name="Search", exact=True).click()
                page.locator("#models-search-status").get_by_text(
                    f"2 GGUF files in 1 repository match 'smollm'").wait_for()
                cells = row_cells(page, "models-search-results", Q8)
                assert cells[:4] == [SEARCH_REPO, Q8, size_mb, "Q8_0"], cells
                assert cells[4].startswith("yes: needs about"), cells
                page.locator("#models-search-results").scroll_into_view_if_needed()
                page.screenshot(path=str(page_screenshots / "models-find-search-1366x768.png"))

                # Picking a result fills the download boxes.
                cell(page, "models-search-results", Q8).click()
                page.wait_for_function(
                    "(repo) => [...document.querySelectorAll('input, textarea')].some(b => b.value === repo)",
                    arg=SEARCH_REPO)
                assert page.get_by_label("Repository id").input_value() == SEARCH_REPO
                page.get_by_text(f"Picked {Q8} from {SEARCH_REPO}: press Download.").wait_for()

                # The hub goes away: search says so in one sentence, within seconds, and the tab still works.
                hub.close()
                page.get_by_role("button", name="Search", exact=True).click()
                page.locator("#models-search-status").get_by_text(
                    "cannot be reached (this machine looks offline), so search is not available").wait_for(timeout=10_000)
                page.get_by_role("button", name="Refresh").click()
                page.wait_for_function(f"() => document.querySelector('#models-table').innerText.includes('{SMALLEST}')")
                assert app.status()["model"]["file"] == smollm_path.name, "the loaded model is untouched"
            finally:
                context.close()
    assert any(r.method == "GET" and r.path.endswith(SMALLEST) for r in hub.requests), "the file came from the hub"


def test_a_plain_user_sees_the_recommendations_without_download_or_search(browser, tmp_path: Path,
                                                                          smollm_path: Path) -> None:
    with team_app(tmp_path, smollm_path) as app:
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            log_in(page, app.url, "bob", PASSWORDS["bob"])
            page.get_by_role("tab", name="Models").click()
            cell(page, "models-shared-recommended", "Qwen3 1.7B").wait_for()
            assert "tokens/s" in " ".join(row_cells(page, "models-shared-recommended", "Qwen3 1.7B"))
            for button in ("Download selected", "Search", "Download"):
                assert not page.get_by_role("button", name=button, exact=True).is_visible(), f"bob has no {button}"
        finally:
            context.close()
