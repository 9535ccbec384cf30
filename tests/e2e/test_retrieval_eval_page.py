"""Measure retrieval in a real Chromium: a 5-question CSV on three documents, scored as the service scores it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import running_app
from tests.support.retrieval_questions import write_documents, write_questions
from tests.support.ui import create_collection, upload_files
from webui.config import Settings
from webui.services import LOCAL_USER
from webui.services.documents import DocumentService
from webui.services.retrieval_eval import missed_rows, score_rows

pytestmark = pytest.mark.e2e

# Gradio's Dataframe draws its visible rows as grid cells (a hidden <table> only sizes the columns).
TABLE_ROWS = ("(id) => [...document.querySelectorAll(`#${id} [role=row].virtual-row`)]"
              ".map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))")


def shown_rows(page, elem_id: str, at_least: int) -> list[list[str]]:
    """The table's rows as the browser shows them, once it shows ``at_least`` of them."""
    page.wait_for_function(f"() => ({TABLE_ROWS})('{elem_id}').length >= {at_least}")
    return page.evaluate(TABLE_ROWS, elem_id)


def replace_question_file(page, path: Path) -> None:
    """Empty the question box if it holds a file, then upload ``path`` into it."""
    clear = page.locator("#eval-questions").get_by_role("button", name="Clear")
    if clear.count():
        clear.first.click()
        page.wait_for_function("() => !document.querySelector('#eval-questions td.filename')")
    upload_files(page, "eval-questions", path)


CHUNKS = "Chunks of 100 tokens (the files chunked again: slower)"


def test_the_panel_shows_hit_rates_and_misses_and_a_bad_csv_its_sentence(
    tmp_path: Path, smollm_path: Path, page, page_screenshots: Path
) -> None:
    documents = write_documents(tmp_path / "files")
    questions = write_questions(tmp_path / "upload")
    bad = write_questions(tmp_path / "bad", "question,answer\nWhy?,because\n", name="answers.csv")
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir",
            str(tmp_path / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(tmp_path, args) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Documents").click()
        create_collection(page, "Home")
        upload_files(page, "doc-files", *documents)
        page.get_by_role("button", name="Add to collection").click()
        page.locator("#ingest-result", has_text="3 of 3 files added").wait_for(timeout=180_000)

        page.locator("#retrieval-eval").get_by_text("Measure retrieval").click()
        with page.expect_download() as download:
            page.locator("#eval-example").click()
        example = Path(download.value.path()).read_text(encoding="utf-8")
        assert example.startswith("question,expected_text,expected_file\n") and example.count("\n") == 5
        replace_question_file(page, bad)
        page.locator("#eval-run").click()
        page.locator("#eval-status", has_text=(
            "Not measured: The question file needs a 'question' column and an 'expected_text' or "
            "'expected_file' column in its first line; it has: question, answer.")).wait_for(timeout=60_000)

        replace_question_file(page, questions)
        page.locator("#eval-alternative input").click()
        page.get_by_role("option", name="Keyword only").click()
        page.locator("#eval-run").click()
        page.locator("#eval-status", has_text="Measured Home on 5 questions").wait_for(timeout=180_000)
        scores = shown_rows(page, "eval-scores", 2)
        missed = shown_rows(page, "eval-missed", 2)  # at least the bakery question, once per choice
        page.locator("#retrieval-eval").screenshot(path=str(page_screenshots / "measure-retrieval-1280.png"))

        # A chunk size: the files are chunked again in a hidden copy; the collection list stays as it was.
        page.locator("#eval-alternative input").click()
        page.get_by_role("option", name=CHUNKS).click()
        page.locator("#eval-run").click()
        page.locator("#eval-scores", has_text=CHUNKS).wait_for(timeout=180_000)
        chunk_scores = shown_rows(page, "eval-scores", 2)

    # The same questions on the same collection, through the service the page calls.
    service = DocumentService(Settings(data_dir=tmp_path / "data"))
    evaluation = service.evaluate_retrieval(LOCAL_USER, "Home", questions, "Keyword only")
    assert scores == score_rows(evaluation)
    assert scores[0][0] == "Current settings (hybrid, k 5, cut-off 0.21)" and scores[1][0] == "Keyword only"
    assert missed == missed_rows(evaluation)
    assert chunk_scores == score_rows(service.evaluate_retrieval(LOCAL_USER, "Home", questions, CHUNKS))
    assert [c.name for c in service.collections(LOCAL_USER.id)] == ["Home"]
    assert ["Current settings (hybrid, k 5, cut-off 0.21)", "When does the bakery open on weekdays?",
            '"seven in the morning" in bakery.html', "not in top 10"] in [row[:4] for row in missed]
