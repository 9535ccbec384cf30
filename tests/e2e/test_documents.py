"""Documents in a real Chromium: upload a file, ask about it in the chat, see the answer and its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_privacy import PRIVACY_VARIABLES, outside_connections
from tests.support.app_server import running_app
from tests.support.rag_files import PDF_PAGES, pdf_bytes
from tests.support.ui import create_collection, log_in, upload_files

pytestmark = pytest.mark.e2e

LAST_REPLY_DONE = (
    "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
    " return r.length && r[r.length-1].innerText.includes('tokens/s'); }"
)


def test_upload_ask_and_see_the_source_with_nothing_leaving_the_machine(
    tmp_path: Path, smollm_path: Path, page
) -> None:
    manual = tmp_path / "greenhouse.pdf"
    manual.write_bytes(pdf_bytes(PDF_PAGES))
    audit_log = tmp_path / "audit.log"
    # Default mode, not --offline: the app itself must keep ingest and answers on this machine.
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir",
            str(tmp_path / "models"), "--ctx-size", "2048", "--max-upload-mb", "20"]
    with running_app(tmp_path, args, audit_log=audit_log, drop_env=PRIVACY_VARIABLES) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Documents").click()
        page.get_by_text("up to 20 MB per file").first.wait_for()
        create_collection(page, "Greenhouse")

        upload_files(page, "doc-files", manual)
        page.get_by_role("button", name="Add to collection").click()
        result = page.locator("#ingest-result", has_text="greenhouse.pdf")
        result.wait_for(timeout=60_000)
        assert "Added greenhouse.pdf (2 pages" in result.inner_text()
        page.locator("#doc-table", has_text="greenhouse.pdf").wait_for()
        assert not list((Path(tmp_path / "data") / "uploads").rglob("*.part")), "no half-written copies"

        page.get_by_role("tab", name="Chat").click()
        page.locator("#chat-documents input").click()
        page.get_by_role("option", name="Greenhouse").click()
        page.keyboard.press("Escape")
        page.get_by_label("Message", exact=True).fill("What temperature is the heater set to during frost?")
        page.get_by_role("button", name="Send").click()
        page.wait_for_function(LAST_REPLY_DONE, timeout=60_000)

        reply = page.locator("[data-testid='bot']").last
        assert "Sources: greenhouse.pdf" in reply.inner_text()
        sources = reply.locator("details.sources")
        if not sources.evaluate("d => d.open"):  # open at once when the answer cites no passage
            sources.locator("> summary").click()
        for passage in reply.locator("details.passage > summary").all():  # each passage folded under its place
            passage.click()
        assert "greenhouse.pdf, p. 2" in reply.inner_text()
        assert "twelve degrees Celsius" in reply.inner_text()

    lines = audit_log.read_text().splitlines()
    assert lines[0] == "hook-installed", "the audit hook must be active for this test to mean anything"
    assert outside_connections(lines) == [], "ingest and answer must not reach beyond this machine"


def _log_in(page, url: str, name: str, password: str) -> None:
    log_in(page, url, name, password)
    page.get_by_role("tab", name="Documents").click()


def _new_collection(page, name: str) -> None:
    page.get_by_label("New collection name").fill(name)
    page.get_by_role("button", name="Create collection").click()
    page.locator("#doc-summary", has_text=name).wait_for()


def _add(page, path: Path) -> None:
    upload_files(page, "doc-files", path)
    page.get_by_role("button", name="Add to collection").click()


def test_another_users_small_file_is_added_while_a_large_one_runs_and_cancel_leaves_nothing(
    tmp_path: Path, smollm_path: Path, browser
) -> None:
    """Issue 14 item 6 through the page: two users in team mode, one ingest queue, turns by batch."""
    from tests.support.team import PASSWORDS, team_app

    big = tmp_path / "handbook.txt"  # about 400 passages: a dozen turns of 32
    big.write_text("\n\n".join(
        f"Section {n}. " + " ".join(
            f"Valve {n}-{k} on pump {n % 9} is inspected every {n + k} days by the night shift."
            for k in range(12)
        )
        for n in range(1, 401)
    ))
    note = tmp_path / "note.txt"
    note.write_text("The spare key hangs in the boiler room.\nThe boiler is serviced in May.\nCall Ada.\n")
    pages = []
    with team_app(tmp_path, smollm_path) as app:
        try:
            for name in ("alice", "bob"):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                pages.append(context.new_page())
                pages[-1].set_default_timeout(60_000)
                _log_in(pages[-1], app.url, name, PASSWORDS[name])
            alice, bob = pages
            _new_collection(alice, "Manuals")
            _new_collection(bob, "Notes")

            _add(alice, big)
            alice.get_by_text(re.compile(r"[1-9]\d* passages")).first.wait_for(timeout=240_000)
            _add(bob, note)
            bob.locator("#ingest-result", has_text="Added note.txt").wait_for(timeout=240_000)
            alice_now = alice.locator("#ingest-result").inner_text()
            assert "Added handbook.txt" not in alice_now, (
                "alice's large file finished before bob's three lines: bob waited for all of it"
            )
            assert "File 1 of 1 (handbook.txt)" in alice_now  # her progress bar is still up

            alice.get_by_role("button", name="Cancel adding").click()
            result = alice.locator("#ingest-result", has_text="files added or already there")
            result.wait_for(timeout=240_000)
            assert "cancelled: handbook.txt was not added" in result.inner_text()
            alice.locator("#doc-summary", has_text="0 documents").wait_for()
            assert "handbook.txt" not in alice.locator("#doc-table").inner_text()
            bob.locator("#doc-table", has_text="note.txt").wait_for()
        finally:
            for page in pages:
                page.context.close()
