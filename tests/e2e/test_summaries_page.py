"""Summaries in a real Chromium: Summarize in the Documents tab shows a summary with page citations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.rag_files import PDF_PAGES, pdf_bytes
from tests.support.ui import upload_files

pytestmark = pytest.mark.e2e


def test_summarize_a_collection_shows_a_cited_summary_and_saves_it_to_the_chat(
    smollm_app: RunningApp, tmp_path: Path, page
) -> None:
    manual = tmp_path / "greenhouse.pdf"
    manual.write_bytes(pdf_bytes(PDF_PAGES))
    page.goto(smollm_app.url)
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("New collection name").fill("Greenhouse")
    page.get_by_role("button", name="Create collection").click()
    page.locator("#doc-summary", has_text="Greenhouse").wait_for()
    upload_files(page, "doc-files", manual)
    page.get_by_role("button", name="Add to collection").click()
    page.locator("#ingest-result", has_text="Added greenhouse.pdf").wait_for(timeout=60_000)

    page.get_by_role("button", name="Summarize collection").click()
    page.locator("#summary-progress", has_text="Done").wait_for(timeout=120_000)

    progress = page.locator("#summary-progress").inner_text()
    assert "2 passages read in one pass" in progress
    result = page.locator("#summary-result")
    assert "Summary of the collection 'Greenhouse'" in result.inner_text()
    assert "Sources: greenhouse.pdf" in result.inner_text()
    result.get_by_text("Sources: greenhouse.pdf").click()
    for passage in result.locator("details.passage > summary").all():  # each passage is folded on its own
        passage.click()
    shown = result.inner_text()
    assert "[1] greenhouse.pdf, p. 1" in shown and "[2] greenhouse.pdf, p. 2" in shown
    assert "twelve degrees Celsius" in shown, "each source shows the passage it stands for"

    page.get_by_role("button", name="Save to chat").click()
    page.locator("#summary-progress", has_text="Saved to the chat").wait_for()
    page.get_by_role("tab", name="Chat").click()
    page.locator("#conversations", has_text="Summary of the collection 'Greenhouse'").wait_for()
    reply = page.locator("[data-testid='bot']").last
    reply.wait_for()
    assert "Sources: greenhouse.pdf" in reply.inner_text()
    assert "Summarize the collection 'Greenhouse'." in page.locator("[data-testid='user']").last.inner_text()
