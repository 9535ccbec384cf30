"""search_documents through the tool loop with real Chroma and all-MiniLM-L6-v2: the caller's own collections,
numbered passages with file and page that the answer cites, and nothing from another user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rag_files import write_good_files
from tests.support.tool_turns import GREEDY, PythonServers, ScriptedEngine, call, run_answering
from webui.auth import User
from webui.config import Settings
from webui.history import HistoryStore
from webui.rag.embeddings import Embedder
from webui.services import ChatService, DocumentService
from webui.services.tools import ToolsService, TurnRequest

pytestmark = pytest.mark.slow
ALICE, BOB = User(name="alice", is_admin=False, id="alice"), User(name="bob", is_admin=False, id="bob")
QUESTION = ({"role": "user", "content": "When are the tomato seedlings watered?"},)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture()
def documents(tmp_path: Path, embedder: Embedder) -> DocumentService:
    documents = DocumentService(Settings(data_dir=tmp_path / "data"), embedder=embedder)
    documents.library.create_collection(ALICE.id, "home")
    assert all(o.ok for o in documents.ingest(ALICE.id, "home", list(write_good_files(tmp_path / "files").values())))
    return documents


def tools_for(documents: DocumentService, rounds, tmp_path: Path) -> tuple[ToolsService, ScriptedEngine]:
    engine = ScriptedEngine(list(rounds))
    history = HistoryStore(tmp_path / "history.sqlite3")
    chat = ChatService(engine, history, documents=documents)  # type: ignore[arg-type]
    return ToolsService(engine, chat, documents, PythonServers({}), team_mode=True), engine  # type: ignore[arg-type]


def test_the_model_searches_the_users_documents_and_cites_numbered_passages(documents: DocumentService,
                                                                            tmp_path: Path) -> None:
    rounds = [[call("search_documents", {"query": "tomato seedlings watered"}, "s1")],
              [call("search_documents", {"query": "lighthouse lamp oil"}, "s2")],
              ["At six o'clock [1]."]]
    tools, engine = tools_for(documents, rounds, tmp_path)
    _, done = run_answering(tools, ALICE, TurnRequest(QUESTION, ("search_documents",), GREEDY))
    first, second = (c.result for c in done.calls)
    assert first.startswith("[1] (greenhouse.pdf, p. 1) ") and "watered every morning at six" in first
    assert first.endswith("Cite the passages you use by their number, like [1].")
    # A second search in the same reply goes on numbering, so every [n] in the answer is one passage.
    count = sum(1 for line in first.split("\n\n") if line.startswith("["))
    assert second.startswith(f"[{count + 1}] (lighthouse.txt)")
    assert [p.number for p in done.sources] == list(range(1, len(done.sources) + 1))
    assert done.sources[0].file_name == "greenhouse.pdf" and done.sources[0].page == 1
    assert engine.requests[1].messages[-1]["content"] == first


def test_another_user_finds_nothing_of_alices(documents: DocumentService, tmp_path: Path) -> None:
    tools, _ = tools_for(documents, [[call("search_documents", {"query": "tomato seedlings watered"})], ["?"]],
                         tmp_path)
    _, done = run_answering(tools, BOB, TurnRequest(QUESTION, ("search_documents",), GREEDY))
    assert done.calls[0].result == "The user has no document collections to search."
    assert done.sources == ()
    named, _ = tools_for(documents, [[call("search_documents", {"query": "tomato"})], ["?"]], tmp_path)
    _, done = run_answering(named, BOB, TurnRequest(QUESTION, ("search_documents",), GREEDY, collections=("home",)))
    assert done.calls[0].error == "There is no collection named 'home'."
