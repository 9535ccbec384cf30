"""The Chat tab's retrieval controls: the collections' own settings unless the user overrides them."""

from __future__ import annotations

from webui.services import DocumentQuery
from webui.ui.chat_handlers import document_query


def test_no_collection_picked_means_no_document_query() -> None:
    assert document_query([], True, 4, 0.21) is None
    assert document_query(None, False, 4, 0.21) is None


def test_by_default_each_collection_uses_its_own_k_and_cut_off() -> None:
    query = document_query(["manuals", "notes"], True, 9, 0.5)
    assert query == DocumentQuery(("manuals", "notes"), k=None, min_score=None)


def test_moved_sliders_override_the_collections_settings() -> None:
    assert document_query(["manuals"], False, 7.0, 0.35) == DocumentQuery(("manuals",), k=7, min_score=0.35)
