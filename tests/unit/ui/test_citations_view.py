"""A document answer's citations on the page: chips, passages trimmed and highlighted, the warning and the
note; the versions switch under a reply, and the handlers that switch versions and follow the title."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.history import HistoryStore
from webui.services.chat import ChatService
from webui.ui.chat_handlers import ChatHandlers
from webui.ui.chat_view import stored_view
from webui.ui.citations_view import NO_CITATION_NOTE, answer_with_chips, passage_view, sources_view

from tests.unit.ui.fake_chat import FakeChatServices

GREENHOUSE = ("Greenhouses keep plants warm in winter. The glass lets sunlight in and traps the heat inside. "
              "Tomatoes ripen earlier under glass than in open fields. Vents are opened on hot afternoons.")
SOURCES = [
    {"number": 1, "file_name": "greenhouse.pdf", "page": 2, "citation": "greenhouse.pdf, p. 2", "score": 0.6,
     "text": GREENHOUSE},
    {"number": 2, "file_name": "kettle.md", "page": None, "citation": "kettle.md, Cleaning", "score": 0.8,
     "text": "A kettle boils water for tea. Descaling with vinegar keeps the element clean."},
]


def test_each_cited_number_becomes_a_chip_and_numbers_not_given_or_in_code_stay_text() -> None:
    shown = answer_with_chips("Glass traps heat [1][2]. See [7].\n```\nitems[1] and [1]\n```", {1, 2})
    assert shown.startswith('Glass traps heat <a class="cite-chip cite-1" href="#" title="Open passage 1">1</a>'
                            '<a class="cite-chip cite-2"')
    assert "See [7]." in shown and "```\nitems[1] and [1]\n```" in shown


def test_a_passage_shows_file_and_page_as_heading_and_marks_the_sentences_the_answer_shares() -> None:
    view = passage_view(SOURCES[0], {"glass", "traps", "heat", "inside"})
    assert '<summary><b>[1]</b> greenhouse.pdf, p. 2</summary>' in view
    assert "<mark>The glass lets sunlight in and traps the heat inside.</mark>" in view
    assert "Greenhouses keep plants warm in winter." in view and "<mark>Greenhouses" not in view


def test_a_long_passage_is_trimmed_around_its_matching_sentence() -> None:
    filler = " ".join(f"Sentence {n} is about nothing at all." for n in range(80))
    source = dict(SOURCES[0], text=f"{filler} The boiler pressure must stay under two bar. {filler}")
    view = passage_view(source, {"boiler", "pressur"})
    assert "<mark>The boiler pressure must stay under two bar.</mark>" in view
    assert "… " in view and " …" in view and len(view) < 1000


def test_an_answer_citing_nothing_lists_its_sources_ranked_with_a_note_and_a_warning() -> None:
    view = sources_view(SOURCES, "Boil vinegar in it, then rinse.", checked=True)
    assert NO_CITATION_NOTE in view
    assert view.index("[2]</b> kettle.md") < view.index("[1]</b> greenhouse.pdf"), "the best match first"
    assert "not supported by the cited passages: it cites none of them" in view
    assert "<details class=\"sources\" open>" in view


def test_a_number_not_given_is_flagged_and_a_supported_answer_is_not() -> None:
    wrong = sources_view(SOURCES, "The glass traps the heat inside [5].", checked=True)
    assert "it cites [5], which it was not given" in wrong
    right = sources_view(SOURCES, "The glass traps the heat inside [1].", checked=True)
    assert "citation-warning" not in right and NO_CITATION_NOTE not in right
    assert "citation-warning" not in sources_view(SOURCES, "Boil vinegar.", checked=False), "not while it streams"


@pytest.fixture
def history(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite3")



def services_over(history: HistoryStore) -> FakeChatServices:
    fake = FakeChatServices()
    fake.chat = ChatService(engine=None, history=history)  # type: ignore[arg-type] # no reply is written
    return fake


def test_a_regenerated_reply_shows_its_switch_and_the_handler_switches_back(history: HistoryStore) -> None:
    fake = services_over(history)
    owner = fake.user("alice").id
    chat = history.create(owner, "Capitals").id
    question = history.append(owner, chat, "user", "Capital of France?")
    history.append_reply(owner, chat, question.id, "Paris.")
    fake.chat.drop_last_reply(owner, chat)
    history.append_reply(owner, chat, question.id, "It is Paris.")
    reply = history.messages(owner, chat)[1]

    view = stored_view(history.messages(owner, chat))
    assert f'class="version-step version-to-{reply.id}-1"' in view[1]["content"]
    assert '<span class="version-count">2/2</span>' in view[1]["content"] and "version-off" in view[1]["content"]

    shown = ChatHandlers(fake).switch_version("alice", chat, f"{reply.id}:1")
    assert shown[1]["content"].startswith("Paris.") and "1/2" in shown[1]["content"]


def test_an_edited_first_message_renames_the_chat_unless_the_user_named_it(history: HistoryStore) -> None:
    fake = services_over(history)
    owner = fake.user("alice").id
    handlers = ChatHandlers(fake)
    chat = history.create(owner, "Capital of France?").id
    question = history.append(owner, chat, "user", "Capital of France?")
    history.append_reply(owner, chat, question.id, "Paris.")

    handlers.edit_message("alice", chat, 0, "Capital of Peru?")
    listing = handlers.refresh_list("alice", chat)
    assert listing["choices"] == [("Capital of Peru?", chat)]
    view = stored_view(history.messages(owner, chat))
    assert view == [{"role": "user", "content": "Capital of Peru?"}], "the reply is written again from there"

    handlers.rename_chat("alice", chat, "Geography")
    handlers.edit_message("alice", chat, 0, "Capital of Chile?")
    assert handlers.refresh_list("alice", chat)["choices"] == [("Geography", chat)]


def test_a_version_pick_that_cannot_be_read_leaves_the_chat_as_it_is(history: HistoryStore) -> None:
    fake = services_over(history)
    owner = fake.user("alice").id
    chat = history.create(owner, "Hi").id
    history.append(owner, chat, "user", "Hi")
    with pytest.warns(UserWarning, match="That version could not be read"):
        shown = ChatHandlers(fake).switch_version("alice", chat, "x:y")
    assert shown == [{"role": "user", "content": "Hi"}]
