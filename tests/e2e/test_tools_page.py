"""Tools on the chat page in Chromium, with the real app in team mode, SmolLM2 and a real stdio MCP server:
the Calculator called and its folded block shown (and again when the chat is reopened), an untrusted
server tool waiting for Run, Search documents answering from a collection with its source, and a plain
user not offered the admin-only server.

SmolLM2 writes the generic JSON format and seldom calls on its own: the page's "Call a tool first" makes
the first round a call (a grammar), so what is asserted is the page, not the small model's judgement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.mcp_servers import REPO_ROOT, stdio_command
from tests.support.rag_files import PDF_PAGES, pdf_bytes
from tests.support.team import PASSWORDS, team_app
from tests.support.ui import create_collection, log_in, set_number, set_slider, upload_files

pytestmark = pytest.mark.e2e

BOT = "[data-testid='bot']"
# A reply with tools is done when its stats line ("1 tool call · 2 rounds · …") shows.
LAST_TOOL_REPLY_DONE = (
    "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
    " return r.length && r[r.length-1].innerText.includes(' rounds · '); }"
)


@pytest.fixture(scope="module")
def tools_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    workdir = tmp_path_factory.mktemp("tools")
    command, args = stdio_command()
    config = workdir / "mcp.json"  # "lab": admins only, its tools ask before they run
    config.write_text(json.dumps({"mcpServers": {"lab": {"command": command, "args": args, "cwd": str(REPO_ROOT)}}}))
    # One sequence of 4096 tokens (room for passages found), and at most 3 calls a reply: SmolLM2 tends to
    # call again after a result, and each call of "lab" waits for Run or Skip.
    with team_app(workdir, smollm_path, "--mcp-config", str(config), "--ctx-size", "4096", "--parallel", "1",
                  "--max-tool-calls", "3") as app:
        yield app


def pick_tools(page, *labels: str) -> None:
    page.locator("#chat-tools input").click()
    for label in labels:
        page.get_by_role("option", name=label).click()
    page.keyboard.press("Escape")


def ask_with_a_tool_first(page, text: str) -> None:
    page.locator("#chat-tool-first input").check()
    page.get_by_text("System prompt and sampling", exact=True).click()
    set_slider(page, "temperature", 0)
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def finish_skipping_further_calls(page) -> None:
    """Wait for the reply's end, answering Skip to any further call the model makes (it may call again)."""
    done_or_asked = LAST_TOOL_REPLY_DONE.replace("; }", " || (e => !!e && e.offsetParent !== null)(document.querySelector('#tool-run')); }")
    for _ in range(5):
        page.wait_for_function(done_or_asked, timeout=120_000)
        if page.evaluate(LAST_TOOL_REPLY_DONE):
            return
        page.locator("#tool-skip").click()
        page.locator("#tool-run").wait_for(state="hidden")
    page.wait_for_function(LAST_TOOL_REPLY_DONE, timeout=120_000)


def test_the_calculator_call_is_folded_in_the_reply_and_shown_again_when_reopened(page, tools_app) -> None:
    log_in(page, tools_app.url, "alice", PASSWORDS["alice"])
    pick_tools(page, "built-in: calculator")
    ask_with_a_tool_first(page, "What is 1234 * 5678? Use the calculator.")
    page.wait_for_function(LAST_TOOL_REPLY_DONE, timeout=120_000)

    reply = page.locator(BOT).last
    block = reply.locator("details.tool-call").first
    assert block.get_attribute("open") is None, "the call starts folded"
    assert "Tool calculator" in block.locator("summary").inner_text()
    block.locator("summary").click()
    assert "Arguments" in block.inner_text() and "expression" in block.inner_text()
    assert "Result" in block.inner_text() or "Error" in block.inner_text()
    assert "1 tool call · 2 rounds" in reply.inner_text() or "tool calls ·" in reply.inner_text()

    page.reload()  # reopened from the list: the block again, and the chat's tool picked again
    page.get_by_label("What is 1234 * 5678? Use the calculator.").click()
    page.locator(f"{BOT} details.tool-call summary", has_text="Tool calculator").first.wait_for()
    page.locator("#chat-tools", has_text="built-in: calculator").wait_for()


def test_an_untrusted_server_tool_waits_for_run(page, tools_app) -> None:
    log_in(page, tools_app.url, "alice", PASSWORDS["alice"])
    page.get_by_role("button", name="New chat").click()
    pick_tools(page, "lab: add (asks before running)")
    ask_with_a_tool_first(page, "Add 2 and 3 with the add tool.")
    page.locator("#tool-run").wait_for(timeout=120_000)
    reply = page.locator(BOT).last
    assert "waiting for Run or Skip" in reply.locator("details.tool-call summary").first.inner_text()
    assert page.locator("#chat-stop button, button#chat-stop").first.is_enabled(), "still busy: Stop works"
    page.locator("#tool-run").click()
    finish_skipping_further_calls(page)
    summary = page.locator(BOT).last.locator("details.tool-call summary").first.inner_text()
    assert "Tool add (lab)" in summary and "waiting" not in summary and "not run" not in summary
    assert not page.locator("#tool-run").is_visible()


def test_search_documents_answers_from_a_collection_with_its_source(page, tools_app, tmp_path: Path) -> None:
    manual = tmp_path / "greenhouse.pdf"
    manual.write_bytes(pdf_bytes(PDF_PAGES))
    log_in(page, tools_app.url, "alice", PASSWORDS["alice"])
    page.get_by_role("tab", name="Documents").click()
    create_collection(page, "Greenhouse")
    # No cut-off for this collection: whatever SmolLM2 searches for, the closest passages come back.
    page.locator("#retrieval-settings").get_by_text("Retrieval settings").click()
    set_number(page, "rs-cut-off", "0")
    page.get_by_role("button", name="Save retrieval settings").click()
    page.get_by_text("Saved the retrieval settings of 'Greenhouse'.").wait_for()
    upload_files(page, "doc-files", manual)
    page.get_by_role("button", name="Add to collection").click()
    page.locator("#ingest-result", has_text="greenhouse.pdf").wait_for(timeout=120_000)

    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("button", name="New chat").click()
    pick_tools(page, "built-in: search_documents")
    ask_with_a_tool_first(page, "What temperature is the heater set to during frost? Search the documents.")
    # Up to 4 rounds with passages in the prompt: over 100 s on 2 busy CPU cores.
    page.wait_for_function(LAST_TOOL_REPLY_DONE, timeout=300_000)
    reply = page.locator(BOT).last
    block = reply.locator("details.tool-call").first
    assert "Tool search_documents" in block.locator("summary").inner_text()
    block.locator("summary").click()
    assert "greenhouse.pdf" in block.inner_text(), block.inner_text()  # the passages the model got
    assert "Sources: greenhouse.pdf" in reply.inner_text()


def test_a_plain_user_is_not_offered_the_admin_only_server(page, tools_app) -> None:
    log_in(page, tools_app.url, "bob", PASSWORDS["bob"])
    page.locator("#chat-tools input").click()
    page.get_by_role("option", name="built-in: calculator").wait_for()
    options = page.get_by_role("option").all_inner_texts()
    assert options and not any(text.startswith("lab:") for text in options), options
