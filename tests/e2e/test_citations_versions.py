"""Citations you can check and replies kept as versions, in a real Chromium: a [n] chip opens its
passage, uncited sources show ranked with a note, and Regenerate then "‹" shows the first reply again,
the next message continuing from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, running_app
from webui.history import HistoryStore
from webui.services.access import LOCAL_USER
from webui.services.chat import sources_meta
from webui.services.citations import passages_from_sources
from webui.ui.citations_view import NO_CITATION_NOTE

pytestmark = pytest.mark.e2e

BOT_MESSAGES = "[data-testid='bot']"
GREENHOUSE = ("Greenhouses keep plants warm in winter. The glass lets sunlight in and traps the heat inside. "
              "Tomatoes ripen earlier under glass than in open fields. Vents are opened on hot afternoons.")
KETTLE = "A kettle boils water for tea. Descaling with vinegar keeps the element clean."


def source(number: int, text: str, file_name: str, page: int, score: float) -> dict:
    [passage] = passages_from_sources([{"number": number, "text": text, "file_name": file_name, "page": page,
                                        "collection": "notes", "score": score}])
    return sources_meta([passage])[0]


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    """The app with two saved document answers: one citing [1], one citing nothing."""
    workdir = tmp_path_factory.mktemp("app")
    store = HistoryStore(workdir / "data" / "history.sqlite3")
    sources = [source(1, GREENHOUSE, "greenhouse.pdf", 2, 0.61), source(2, KETTLE, "kettle.md", 1, 0.83)]
    cited = store.create(LOCAL_USER.id, "Cited answer").id
    question = store.append(LOCAL_USER.id, cited, "user", "Why do tomatoes ripen earlier in a greenhouse?")
    store.append_reply(LOCAL_USER.id, cited, question.id,
                       "The glass traps the heat inside, so tomatoes ripen earlier under glass [1].",
                       meta={"sources": sources})
    uncited = store.create(LOCAL_USER.id, "Uncited answer").id
    question = store.append(LOCAL_USER.id, uncited, "user", "How do I clean a kettle?")
    store.append_reply(LOCAL_USER.id, uncited, question.id, "Boil vinegar in it, then rinse.",
                       meta={"sources": sources})
    args = ["--model", str(smollm_path), "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(workdir, args) as app:
        yield app


def open_chat(page, url: str, title: str) -> None:
    page.goto(url)
    choice = page.locator("#conversations").get_by_text(title, exact=True)
    try:
        choice.wait_for(state="visible", timeout=8_000)
    except Exception:  # noqa: BLE001 - on a phone the list is in the drawer that "Chats" opens
        page.get_by_role("button", name="Chats", exact=True).click()
    choice.click()
    page.locator(BOT_MESSAGES).first.wait_for()


@pytest.mark.parametrize("viewport", [(1366, 768), (390, 844)])
def test_a_citation_chip_opens_its_passage_with_heading_and_highlighted_sentence(page, seeded_app, viewport) -> None:
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    open_chat(page, seeded_app.url, "Cited answer")
    reply = page.locator(BOT_MESSAGES).first
    passage = reply.locator("details.passage.passage-1")
    assert not passage.evaluate("p => p.open")
    reply.locator("a.cite-chip", has_text="1").click()
    page.wait_for_function("p => p.open", arg=passage.element_handle())
    assert "[1] greenhouse.pdf, p. 2" in passage.locator("summary").inner_text()
    assert "traps the heat inside" in passage.locator("mark").first.inner_text()
    assert passage.is_visible()
    assert "not supported" not in reply.inner_text()


def test_an_answer_citing_nothing_shows_the_sources_ranked_with_a_note(page, seeded_app) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    open_chat(page, seeded_app.url, "Uncited answer")
    reply = page.locator(BOT_MESSAGES).first
    assert NO_CITATION_NOTE in reply.inner_text()
    assert "not supported by the cited passages" in reply.inner_text()
    headings = reply.locator("details.passage summary").all_inner_texts()
    assert [h.split("]")[0] for h in headings] == ["[2", "[1"], "the best-scored passage first"


def wait_for_replies(page, count: int) -> None:
    page.wait_for_function(
        "(n) => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
        " return r.length >= n && r[n-1].innerText.includes('tokens/s'); }", arg=count, timeout=180_000)


def test_regenerate_then_switch_back_and_continue_from_the_first_reply(page, seeded_app) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(seeded_app.url)
    page.get_by_label("Message", exact=True).fill("Say hello.")
    page.get_by_role("button", name="Send").click()
    wait_for_replies(page, 1)
    first = page.locator(BOT_MESSAGES).first.inner_text()
    page.get_by_role("button", name="Regenerate").click()
    page.wait_for_function("() => document.querySelector(\"[data-testid='bot'] .version-count\")"
                           " && document.querySelector(\"[data-testid='bot'] .version-count\").innerText === '2/2'"
                           " && document.querySelector(\"[data-testid='bot']\").innerText.includes('tokens/s')",
                           timeout=180_000)
    page.locator(f"{BOT_MESSAGES} button.version-step").first.click()
    page.wait_for_function("() => document.querySelector(\"[data-testid='bot'] .version-count\").innerText === '1/2'")
    assert page.locator(BOT_MESSAGES).first.inner_text().split("\n")[0] == first.split("\n")[0]

    page.get_by_label("Message", exact=True).fill("Thanks.")
    page.get_by_role("button", name="Send").click()
    wait_for_replies(page, 2)
    assert "1/2" in page.locator(BOT_MESSAGES).first.inner_text(), "the chat continued from the version shown"
