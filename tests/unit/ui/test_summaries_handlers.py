"""The Summarize panel's handlers with a fake Services: progress, the cited summary, Stop and Save to chat."""

from __future__ import annotations

from html import unescape

import pytest

from webui.services.summaries import SummaryUpdate
from webui.services.types import User
from webui.ui.summaries import SummaryHandlers, primary_summary, summary_markdown

from tests.unit.ui.fake_documents import FakeDocumentServices, record_toasts, summary_of, team

UNCHANGED = {"__type__": "update"}


def read(markdown: str) -> str:
    """The text as the page shows it: the panel escapes names and sentences into its Markdown."""
    return unescape(markdown)


def test_a_collection_summary_streams_its_progress_then_the_cited_summary() -> None:
    fake = team()
    summary = summary_of("Greenhouse", "Heat to 12 °C in frost [p. 2].")
    fake.summaries.updates = [SummaryUpdate("Summarizing the collection 'Greenhouse'…", 0.0),
                              SummaryUpdate("Summarizing the collection 'Greenhouse'…", 0.0, text="Heat to"),
                              SummaryUpdate("Done.", 1.0, done=True, summary=summary)]
    shown = list(SummaryHandlers(fake).summarize_collection("bob", "page-1", "Greenhouse"))
    assert [read(step[0]) for step in shown] == [
        "Starting the summary of the collection 'Greenhouse'…",
        "Summarizing the collection 'Greenhouse'… · 0%", "Summarizing the collection 'Greenhouse'… · 0%",
        "**Done:** 2 passages read in one pass (1 model call, 3.2 s)."]
    assert [step[1] for step in shown[:3]] == ["", "", "Heat to"]
    progress, result, kept, save = shown[-1]
    assert read(result).startswith("### Summary of the collection 'Greenhouse'\n\nHeat to 12 °C in frost [p. 2].")
    assert "Sources: greenhouse.pdf" in result and "cited no pages" not in result
    assert kept is summary and save["visible"] is True
    assert all(step[3]["visible"] is False for step in shown[:3]), "Save appears only with a summary"
    assert fake.summaries.asked == [("bob", "page-1", "Greenhouse", None)]


def test_a_summary_that_cites_nothing_says_so_and_stopped_parts_keep_their_pages() -> None:
    uncited = summary_markdown(summary_of("Greenhouse", "Heat it in frost."))
    assert "*The model cited no pages here; the sources below say which pages each part covers.*" in uncited
    stopped = summary_of("Greenhouse", "", stopped=True, map_steps=2)
    assert summary_markdown(stopped) == ("### The parts summarized before Stop\n\n"
                                         "- **[p. 2]** Heat to 12 °C in frost.\n- **[p. 1]** Vent at 30 °C.")


def test_summarize_document_without_a_document_or_collection_says_what_to_choose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    handlers = SummaryHandlers(fake)
    [(progress, result, kept, save)] = handlers.summarize_document("bob", "page-1", "Greenhouse", None)
    assert read(progress) == ("**Could not summarize:** Choose a document under 'Document' first, "
                        "or summarize the whole collection.")
    assert result == UNCHANGED and kept is None and save["visible"] is False
    [(progress, *_)] = handlers.summarize_document("bob", "page-1", None, "greenhouse.pdf")
    assert progress == "**Could not summarize:** Create or choose a collection first."
    assert fake.summaries.asked == [] and [kind for kind, _ in toasts] == ["warning", "warning"]


def test_an_error_the_service_reports_ends_the_stream_with_its_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.summaries.updates = [SummaryUpdate("", 0.0, done=True, error="No model is loaded. Load one in the Models tab.")]
    toasts = record_toasts(monkeypatch)
    *_, last = SummaryHandlers(fake).summarize_document("carol", "page-2", "Greenhouse", "greenhouse.pdf")
    assert last[0] == "**Could not summarize:** No model is loaded. Load one in the Models tab."
    assert last[2] is None and last[3]["visible"] is False
    assert toasts == [("warning", "No model is loaded. Load one in the Models tab.")]
    assert fake.summaries.asked == [("carol", "page-2", "Greenhouse", "greenhouse.pdf")]


def test_stop_ends_the_summary_of_this_page_session() -> None:
    fake = team()
    SummaryHandlers(fake).stop_summary("page-7")
    assert fake.summaries.stopped == ["page-7"]


def test_save_to_chat_opens_the_new_chat_with_the_summary_as_its_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    summary = summary_of("Greenhouse", "Heat to 12 °C in frost [p. 2].")
    line, conversation, conversations, chatbot = SummaryHandlers(fake).save_summary("bob", summary)
    assert read(line) == "Saved to the chat as **Summary of the collection 'Greenhouse'**: open the Chat tab."
    assert conversation == "c1" and conversations["value"] == "c1"
    assert conversations["choices"] == [("Summary of the collection 'Greenhouse'", "c1")]
    assert [m["role"] for m in chatbot] == ["user", "assistant"]
    assert "Heat to 12 °C in frost [p. 2]." in str(chatbot[1]["content"])
    assert fake.summaries.saved == [("id-bob", summary)]
    assert toasts == [("info", "Saved to the chat as 'Summary of the collection 'Greenhouse''.")]


def test_nothing_to_save_or_a_signed_out_caller_gets_a_sentence_and_the_chat_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_toasts(monkeypatch)
    fake = FakeDocumentServices(users={"bob": User("bob", is_admin=False)})
    handlers = SummaryHandlers(fake)
    assert handlers.save_summary("bob", None) == (
        "**Not saved:** There is no summary to save yet: summarize a document first.", UNCHANGED, UNCHANGED, UNCHANGED)
    assert handlers.save_summary(None, summary_of("x", "y"))[0] == "**Not saved:** Please log in again."
    assert fake.summaries.saved == []


def test_summarize_document_is_the_primary_button_while_a_document_is_picked() -> None:
    one, whole = primary_summary("handbook.pdf")
    assert (one["variant"], whole["variant"]) == ("primary", "secondary")
    one, whole = primary_summary(None)
    assert (one["variant"], whole["variant"]) == ("secondary", "primary")
