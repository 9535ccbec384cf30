"""The Summarize panel's handlers with a fake Services: progress, the cited summary, Stop, its chat, found again."""

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


def test_a_collection_summary_streams_its_progress_then_the_cited_summary_saved_as_a_chat() -> None:
    fake = team()
    summary = summary_of("Greenhouse", "Heat to 12 °C in frost [p. 2].")
    fake.summaries.updates = [SummaryUpdate("Summarizing the collection 'Greenhouse'…", 0.0),
                              SummaryUpdate("Summarizing the collection 'Greenhouse'…", 0.0, text="Heat to"),
                              SummaryUpdate("Done.", 1.0, done=True, summary=summary)]
    shown = list(SummaryHandlers(fake).summarize_collection("bob", "Greenhouse"))
    assert [read(step[0]) for step in shown] == [
        "Summarizing the collection 'Greenhouse'… · 0%", "Summarizing the collection 'Greenhouse'… · 0%",
        "**Done:** 2 passages read in one pass (1 model call, 3.2 s). "
        "Saved to the chat as **Summary of the collection 'Greenhouse'**."]
    assert [step[1] for step in shown[:2]] == ["", "Heat to"]
    progress, result, saved_chat, open_chat = shown[-1]
    assert read(result).startswith("### Summary of the collection 'Greenhouse'\n\nHeat to 12 °C in frost [p. 2].")
    assert "Sources: greenhouse.pdf" in result and "cited no pages" not in result
    assert saved_chat == "c1" and open_chat["visible"] is True
    assert all(step[3]["visible"] is False for step in shown[:2]), "Open in the chat appears only once saved"
    assert fake.summaries.asked == [("bob", "Greenhouse", None)]


def test_on_page_load_a_user_sees_their_own_last_summary_and_nobody_elses() -> None:
    fake = team()
    fake.summaries.updates = [SummaryUpdate("Done.", 1.0, done=True, summary=summary_of("Greenhouse", "Vent [p. 1]."))]
    handlers = SummaryHandlers(fake)
    list(handlers.summarize_collection("bob", "Greenhouse"))

    [(progress, result, saved_chat, open_chat)] = handlers.resume("bob")
    assert read(progress).startswith("**Done:**") and "Vent [p. 1]." in result
    assert saved_chat == "c1" and open_chat["visible"] is True
    assert list(handlers.resume("carol")) == [(UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED)]


def test_a_second_summary_while_one_runs_says_so_and_shows_the_running_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    fake.summaries.updates = [SummaryUpdate("Reading part 1 of 3 (pp. 1–4)…", 0.2, text="Pumps")]
    handlers = SummaryHandlers(fake)
    list(handlers.summarize_document("bob", "Greenhouse", "greenhouse.pdf"))
    fake.summaries.running.add("id-bob")

    [(progress, result, *_)] = handlers.summarize_collection("bob", "Greenhouse")
    assert toasts == [("warning", "A summary of greenhouse.pdf is still running.")]
    assert read(progress) == "Reading part 1 of 3 (pp. 1–4)… · 20%" and result == "Pumps"
    assert fake.summaries.asked == [("bob", "Greenhouse", "greenhouse.pdf")], "no second summary started"


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
    [(progress, result, saved_chat, open_chat)] = handlers.summarize_document("bob", "Greenhouse", None)
    assert read(progress) == ("**Could not summarize:** Choose a document under 'Document' first, "
                        "or summarize the whole collection.")
    assert (result, saved_chat, open_chat) == (UNCHANGED, UNCHANGED, UNCHANGED)
    [(progress, *_)] = handlers.summarize_document("bob", None, "greenhouse.pdf")
    assert progress == "**Could not summarize:** Create or choose a collection first."
    assert fake.summaries.asked == [] and [kind for kind, _ in toasts] == ["warning", "warning"]


def test_an_error_the_service_reports_ends_the_stream_with_its_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.summaries.updates = [SummaryUpdate("", 0.0, done=True, error="No model is loaded. Load one in the Models tab.")]
    toasts = record_toasts(monkeypatch)
    *_, last = SummaryHandlers(fake).summarize_document("carol", "Greenhouse", "greenhouse.pdf")
    assert last[0] == "**Could not summarize:** No model is loaded. Load one in the Models tab."
    assert last[2] is None and last[3]["visible"] is False
    assert toasts == [("warning", "No model is loaded. Load one in the Models tab.")]
    assert fake.summaries.asked == [("carol", "Greenhouse", "greenhouse.pdf")]


def test_stop_ends_the_summary_of_the_user_who_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    toasts = record_toasts(monkeypatch)
    SummaryHandlers(fake).stop_summary("carol")
    SummaryHandlers(fake).stop_summary(None)  # signed out: a sentence, nothing stopped
    assert fake.summaries.stopped == ["id-carol"]
    assert toasts == [("warning", "Please log in again.")]


def test_open_in_the_chat_opens_the_saved_summary_as_a_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    record_toasts(monkeypatch)
    fake.summaries.updates = [SummaryUpdate("Done.", 1.0, done=True,
                                            summary=summary_of("Greenhouse", "Heat to 12 °C in frost [p. 2]."))]
    handlers = SummaryHandlers(fake)
    *_, (_, _, saved_chat, _) = handlers.summarize_collection("bob", "Greenhouse")
    line, conversation, conversations, chatbot = handlers.open_chat("bob", saved_chat)
    assert read(line) == "Opened **Summary of the collection 'Greenhouse'** in the Chat tab."
    assert conversation == "c1" and conversations["value"] == "c1"
    assert conversations["choices"] == [("Summary of the collection 'Greenhouse'", "c1")]
    assert [m["role"] for m in chatbot] == ["user", "assistant"]
    assert "Heat to 12 °C in frost [p. 2]." in str(chatbot[1]["content"])


def test_nothing_to_open_or_a_signed_out_caller_gets_a_sentence_and_the_chat_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_toasts(monkeypatch)
    fake = FakeDocumentServices(users={"bob": User("bob", is_admin=False)})
    handlers = SummaryHandlers(fake)
    assert handlers.open_chat("bob", None) == (
        "**Not opened:** There is no saved summary yet: summarize a document first.", UNCHANGED, UNCHANGED, UNCHANGED)
    assert handlers.open_chat(None, "c1")[0] == "**Not opened:** Please log in again."


def test_summarize_document_is_the_primary_button_while_a_document_is_picked() -> None:
    one, whole = primary_summary("handbook.pdf")
    assert (one["variant"], whole["variant"]) == ("primary", "secondary")
    one, whole = primary_summary(None)
    assert (one["variant"], whole["variant"]) == ("secondary", "primary")
