"""Summaries in a real Chromium: Summarize in the Documents tab shows a summary with page citations,
saved as a chat, and a summary left running by a closed page is found again by a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.rag_files import PDF_PAGES, pdf_bytes
from tests.support.ui import upload_files

pytestmark = pytest.mark.e2e


def add_collection(page, url: str, name: str, pdf: Path) -> None:
    """A new collection holding the two-page greenhouse PDF, made through the Documents tab."""
    pdf.write_bytes(pdf_bytes(PDF_PAGES))
    page.goto(url)
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("New collection name").fill(name)
    page.get_by_role("button", name="Create collection").click()
    page.locator("#doc-summary", has_text=name).wait_for()
    upload_files(page, "doc-files", pdf)
    page.get_by_role("button", name="Add to collection").click()
    page.locator("#ingest-result", has_text=f"Added {pdf.name}").wait_for(timeout=60_000)


def test_summarize_a_collection_shows_a_cited_summary_saved_as_a_chat(
    smollm_app: RunningApp, tmp_path: Path, page
) -> None:
    add_collection(page, smollm_app.url, "Greenhouse", tmp_path / "greenhouse.pdf")

    page.get_by_role("button", name="Summarize collection").click()
    page.locator("#summary-progress", has_text="Done").wait_for(timeout=120_000)

    progress = page.locator("#summary-progress").inner_text()
    assert "2 passages read in one pass" in progress
    assert "Saved to the chat as Summary of the collection 'Greenhouse'" in progress
    result = page.locator("#summary-result")
    assert "Summary of the collection 'Greenhouse'" in result.inner_text()
    assert "Sources: greenhouse.pdf" in result.inner_text()
    result.get_by_text("Sources: greenhouse.pdf").click()
    for passage in result.locator("details.passage > summary").all():  # each passage is folded on its own
        passage.click()
    shown = result.inner_text()
    assert "[1] greenhouse.pdf, p. 1" in shown and "[2] greenhouse.pdf, p. 2" in shown
    assert "twelve degrees Celsius" in shown, "each source shows the passage it stands for"

    page.get_by_role("button", name="Open in the chat").click()
    page.locator("#summary-progress", has_text="Opened Summary of the collection 'Greenhouse'").wait_for()
    page.get_by_role("tab", name="Chat").click()
    page.locator("#conversations", has_text="Summary of the collection 'Greenhouse'").wait_for()
    reply = page.locator("[data-testid='bot']").last
    reply.wait_for()
    assert "Sources: greenhouse.pdf" in reply.inner_text()
    assert "Summarize the collection 'Greenhouse'." in page.locator("[data-testid='user']").last.inner_text()


def test_a_summary_keeps_running_when_its_page_closes_and_a_new_page_finds_it(
    smollm_app: RunningApp, tmp_path: Path, browser, page
) -> None:
    add_collection(page, smollm_app.url, "Orchard", tmp_path / "orchard.pdf")
    page.get_by_role("button", name="Summarize collection").click()
    page.locator("#summary-progress", has_text="%").wait_for(timeout=60_000)  # running
    page.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    again = context.new_page()
    again.set_default_timeout(30_000)
    try:
        again.goto(smollm_app.url)
        again.get_by_role("tab", name="Documents").click()
        # Progress (if still running) is followed again until the summary is done, saved as a chat.
        again.locator("#summary-progress", has_text="Done").wait_for(timeout=120_000)
        assert "Saved to the chat as Summary of the collection 'Orchard'" in again.locator("#summary-progress").inner_text()
        assert "Summary of the collection 'Orchard'" in again.locator("#summary-result").inner_text()
        again.get_by_role("button", name="Open in the chat").click()
        again.get_by_role("tab", name="Chat").click()
        again.locator("#conversations", has_text="Summary of the collection 'Orchard'").wait_for()
    finally:
        context.close()
