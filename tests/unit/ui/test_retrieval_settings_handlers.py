"""The retrieval settings accordion's handlers with a fake Services: shown per collection, saved, refused."""

from __future__ import annotations

import pytest

from webui.services.types import RetrievalSettings
from webui.ui.retrieval_settings import RetrievalForm, RetrievalSettingsHandlers

from tests.unit.ui.fake_documents import record_toasts, team

UNCHANGED = [{"__type__": "update"}] * 4


def test_picking_a_collection_shows_its_settings_and_no_pick_leaves_the_boxes() -> None:
    fake = team()
    fake.document_actions.create(fake.users["bob"], "Notes")
    fake.document_actions.update_retrieval_settings("id-bob", "Notes", RetrievalSettings(256, 32, 7, 0.3))
    handlers = RetrievalSettingsHandlers(fake)
    assert handlers.show("bob", "Notes") == [256, 32, 7, 0.3]
    assert handlers.show("bob", None) == UNCHANGED


def test_saving_keeps_the_settings_and_an_emptied_box_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.document_actions.create(fake.users["bob"], "Notes")
    toasts = record_toasts(monkeypatch)
    default = RetrievalSettings()
    saved = RetrievalSettingsHandlers(fake).store("bob", "Notes", RetrievalForm(chunk=None, overlap=20, k=7, cut_off=None))
    assert saved == [default.chunk_tokens, 20, 7, default.min_score]
    assert fake.document_actions.retrieval_settings("id-bob", "Notes").k == 7
    assert toasts == [("info", "Saved the retrieval settings of 'Notes'.")]


def test_a_value_out_of_range_is_refused_with_its_sentence_and_nothing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = team()
    fake.document_actions.create(fake.users["bob"], "Notes")
    toasts = record_toasts(monkeypatch)
    handlers = RetrievalSettingsHandlers(fake)
    assert handlers.store("bob", "Notes", RetrievalForm(chunk=200, overlap=150, k=4, cut_off=0.2)) == UNCHANGED
    assert toasts == [("warning", "Overlap must be between 0 and half the chunk size (100 tokens).")]
    assert fake.document_actions.retrieval_settings("id-bob", "Notes") == RetrievalSettings()
    handlers.store("bob", None, RetrievalForm())
    assert toasts[-1] == ("warning", "Choose a collection first.")


def test_a_shared_collections_settings_are_seen_by_all_and_changed_by_whoever_shared_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = team()
    fake.document_actions.create(fake.users["alice"], "Handbook", shared=True)
    toasts = record_toasts(monkeypatch)
    handlers = RetrievalSettingsHandlers(fake)
    assert handlers.show("carol", "Handbook")[2] == RetrievalSettings().k
    assert handlers.store("carol", "Handbook", RetrievalForm(k=9)) == UNCHANGED
    assert toasts == [("warning", "'Handbook' is shared by alice; only they can change it.")]
    assert handlers.store("alice", "Handbook", RetrievalForm(k=9))[2] == 9
