"""Documents on a Chroma server (--chroma-url): a real `chroma run` subprocess, real MiniLM, real SmolLM2."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import free_port
from tests.support.model_servers import start_chroma
from tests.support.rag_files import write_good_files
from webui.cli import main
from webui.config import Settings
from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.rag import DocumentStoreUnavailable
from webui.rag.embeddings import Embedder
from webui.services import ChatService, DocumentQuery, DocumentService

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, seed=1)
OWNER = "alice"


@pytest.fixture()
def chroma(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = start_chroma(tmp_path / "chroma-server", port)
    yield process, f"http://127.0.0.1:{port}"
    process.kill()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Iterator[Engine]:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=2048, n_threads=2))
    yield engine
    engine.unload()


def test_an_unreachable_chroma_server_stops_the_start_with_one_line(tmp_path: Path, capsys) -> None:
    port = free_port()  # nothing listens there

    code = main(["--data-dir", str(tmp_path / "data"), "--chroma-url", f"http://127.0.0.1:{port}"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: Cannot reach the Chroma server at http://127.0.0.1:") and "\n" not in err


@pytest.mark.slow
def test_documents_live_on_the_server_and_a_lost_server_is_named_while_chat_goes_on(
    chroma, tmp_path: Path, engine: Engine
) -> None:
    process, url = chroma
    settings = Settings(data_dir=tmp_path / "data", chroma_url=url)
    documents = DocumentService(settings, embedder=Embedder())
    chat = ChatService(engine, HistoryStore(settings.history_db), documents=documents)

    # Ingest, retrieve and delete through the service: the collection is on the server, not on disk here.
    documents.library.create_collection(OWNER, "home")
    outcomes = documents.ingest(OWNER, "home", list(write_good_files(tmp_path / "incoming").values()))
    assert outcomes and all(o.ok for o in outcomes)
    assert not settings.chroma_dir.exists(), "no local Chroma database is made"
    names = [c["name"] for c in httpx.get(f"{url}/api/v2/tenants/default_tenant/databases/default_database/collections")
             .json()]
    assert len(names) == 1 and names[0].startswith("rag-")
    found = documents.library.retrieve(OWNER, "What temperature is the heater set to during frost?", ["home"])
    assert found and found[0].file_name == "greenhouse.pdf"

    # The keyword index stays local; removed, it is rebuilt from the server's copy of the texts.
    keyword_dir = settings.data_dir / "keyword"
    assert any(keyword_dir.glob("*.sqlite3"))
    for index in keyword_dir.glob("*.sqlite3"):
        index.unlink()
    again = documents.library.retrieve(OWNER, "heater frost temperature greenhouse", ["home"])
    assert again and any(keyword_dir.glob("*.sqlite3"))

    documents.delete_document(OWNER, "home", "greenhouse.pdf")
    assert "greenhouse.pdf" not in [d.file_name for d in documents.documents(OWNER, "home")]

    # The server goes away: a document question says so; plain chat still answers.
    process.kill()
    process.wait(timeout=10)
    conversation = chat.add_user_message(OWNER, None, "What does the frost log say?")
    [*_, final] = chat.reply_in(OWNER, "s1", conversation, system_prompt="", sampling=GREEDY,
                                documents=DocumentQuery(("home",)))
    assert final.done and final.error is not None
    assert f"The document store at {url} cannot be reached" in final.error and "plain chat still works" in final.error
    with pytest.raises(DocumentStoreUnavailable):
        documents.collections(OWNER)

    plain = chat.add_user_message(OWNER, None, "Say hello.")
    [*_, reply] = chat.reply_in(OWNER, "s2", plain, system_prompt="", sampling=GREEDY)
    assert reply.done and reply.error is None and reply.text.strip() and reply.stats is not None

