"""The reranker: downloaded from the (local fake) hub, picked, used by document searches, removed.

Real parts: huggingface_hub's snapshot_download against tests/support/fakehub.py, a real
sentence-transformers CrossEncoder (a small seeded one, tests/support/cross_encoders.py), a real
Chroma collection embedded with all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.support.cross_encoders import repo_files
from tests.support.fakehub import FakeHub, allow_hub
from tests.support.retrieval_questions import write_documents
from webui.auth import User
from webui.config import Settings
from webui.models.download import DownloadError, HubUnreachable
from webui.models.rerankers import CHOICE_FILE_NAME, NotACrossEncoder
from webui.rag.embeddings import Embedder
from webui.rag.rerank import RerankerError
from webui.services import NotAuthorized
from webui.services.documents import DocumentService
from webui.services.rerankers import RerankerService

pytestmark = pytest.mark.slow
ADMIN = User(name="root", is_admin=True, id="r00t")
ALICE = User(name="alice", is_admin=False, id="alice")
REPO = "local-test/tiny-cross-encoder"
NAME = "local-test--tiny-cross-encoder"
QUESTION = "When are the tomato seedlings watered?"


@pytest.fixture(scope="module")
def embedder(minilm_path: Path) -> Embedder:
    return Embedder(str(minilm_path))


@pytest.fixture()
def hub(cross_encoder_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch):
    files = repo_files(cross_encoder_path)
    files["pytorch_model.bin"] = b"a pickle the app must never fetch"
    embedder_files = {p.name: p for p in minilm_path.iterdir() if p.is_file()}  # a BertModel, no classifier
    with FakeHub({REPO: files, "local-test/an-embedder": embedder_files}) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        yield fake


def settings_in(tmp_path: Path, **changes: object) -> Settings:
    return Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", **changes)  # type: ignore[arg-type]


def test_a_downloaded_reranker_is_used_by_document_searches_and_kept_across_restarts(
    hub: FakeHub, tmp_path: Path, embedder: Embedder, cross_encoder_path: Path
) -> None:
    settings = settings_in(tmp_path)
    rerankers = RerankerService(settings)
    documents = DocumentService(settings, embedder=embedder, rerankers=rerankers)
    documents.create(ALICE, "home")
    assert all(o.ok for o in documents.ingest(ALICE.id, "home", write_documents(tmp_path / "files")))
    assert documents.library.reranker is None and "Hybrid without the reranker" not in documents.retrieval_choices()
    plain = documents.library.retrieve(ALICE.id, QUESTION, ["home"], k=20, min_score=0.0, rerank=False)

    seen: list[tuple[int, int]] = []
    state = rerankers.download(ADMIN, REPO, progress=lambda done, total: seen.append((done, total)))

    assert (state.in_use, state.installed, state.set_by_flag) == (NAME, (NAME,), False)
    folder = settings.models_dir / "rerankers" / NAME
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in cross_encoder_path.iterdir())
    assert not any("pytorch_model.bin" in r.path for r in hub.requests), "pickled weights are never fetched"
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert json.loads((settings.data_dir / CHOICE_FILE_NAME).read_text())["reranker"] == NAME

    # Searches now follow the downloaded model's own scores, computed here independently.
    from sentence_transformers import CrossEncoder

    own = CrossEncoder(str(folder), local_files_only=True)
    expected = sorted(plain, key=lambda p: -float(own.predict([(QUESTION, p.text)], show_progress_bar=False)[0]))
    reranked = documents.library.retrieve(ALICE.id, QUESTION, ["home"], k=20, min_score=0.0)
    assert [p.text for p in reranked] == [p.text for p in expected]
    assert [p.text for p in reranked] != [p.text for p in plain], "the seeded model reorders these passages"
    assert "Hybrid without the reranker" in documents.retrieval_choices()

    # A restart finds the same pick; turning it off goes back to plain hybrid order.
    again = RerankerService(settings)
    assert again.state(ADMIN).in_use == NAME and again.current() is not None
    rerankers.use(ADMIN, None)
    after = documents.library.retrieve(ALICE.id, QUESTION, ["home"], k=20, min_score=0.0)
    assert [p.text for p in after] == [p.text for p in plain]
    assert RerankerService(settings).current() is None


def test_a_repository_that_is_no_cross_encoder_is_refused_before_its_weights_come(
    hub: FakeHub, tmp_path: Path
) -> None:
    rerankers = RerankerService(settings_in(tmp_path))
    with pytest.raises(NotACrossEncoder, match="not a cross-encoder"):
        rerankers.download(ADMIN, "local-test/an-embedder")
    assert not any(r.path.endswith("model.safetensors") for r in hub.requests)
    assert rerankers.state(ADMIN).installed == () and rerankers.current() is None
    with pytest.raises(DownloadError, match="is not a hub repository id"):
        rerankers.download(ADMIN, "no slash here")


def test_a_cancelled_or_dropped_download_keeps_nothing_and_the_pick_stays(
    hub: FakeHub, tmp_path: Path, cross_encoder_path: Path
) -> None:
    settings = settings_in(tmp_path)
    rerankers = RerankerService(settings)
    rerankers.download(ADMIN, REPO)
    rerankers.delete(ADMIN, NAME)
    assert rerankers.state(ADMIN) == rerankers.state(ADMIN).__class__(None, False, ())

    rerankers.download(ADMIN, REPO)  # in use again, to see that a failed download leaves it alone
    hub.bytes_per_second = 400_000  # the next weights take ~10 s: time to cancel
    second = "local-test/copy"
    hub.repos[second] = repo_files(cross_encoder_path)
    outcome: dict[str, BaseException] = {}

    def work() -> None:
        try:
            rerankers.download(ADMIN, second)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    while not any(r.path.endswith("model.safetensors") and "copy" in r.path for r in hub.requests):
        worker.join(0.05)
    assert rerankers.cancel_download(ADMIN)
    worker.join(30)
    assert "cancelled" in str(outcome["error"])
    assert rerankers.state(ADMIN).installed == (NAME,) and rerankers.state(ADMIN).in_use == NAME
    assert not (settings.models_dir / "rerankers" / ".partial" / "local-test--copy").exists()

    hub.close()  # the hub goes away: a clear sentence, nothing kept
    with pytest.raises(HubUnreachable, match="cannot be reached"):
        rerankers.download(ADMIN, second)
    assert rerankers.state(ADMIN).installed == (NAME,) and rerankers.current() is not None
    assert not rerankers.cancel_download(ADMIN)


def test_only_an_admin_changes_the_reranker_and_the_start_up_flag_wins(
    hub: FakeHub, tmp_path: Path, cross_encoder_path: Path
) -> None:
    rerankers = RerankerService(settings_in(tmp_path))
    for action in (lambda: rerankers.state(ALICE), lambda: rerankers.download(ALICE, REPO),
                   lambda: rerankers.use(ALICE, None), lambda: rerankers.cancel_download(ALICE)):
        with pytest.raises(NotAuthorized):
            action()
    assert not hub.requests

    fixed = RerankerService(settings_in(tmp_path, reranker_model=str(cross_encoder_path)))
    assert fixed.state(ADMIN).set_by_flag and fixed.state(ADMIN).in_use == str(cross_encoder_path)
    assert fixed.current() is not None
    with pytest.raises(DownloadError, match="--reranker-model"):
        fixed.use(ADMIN, None)


def test_a_reranker_that_does_not_load_is_not_picked(hub: FakeHub, tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    rerankers = RerankerService(settings)
    rerankers.download(ADMIN, REPO)
    rerankers.use(ADMIN, None)
    (settings.models_dir / "rerankers" / NAME / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(RerankerError, match="could not be loaded"):
        rerankers.use(ADMIN, NAME)
    assert rerankers.state(ADMIN).in_use is None and rerankers.current() is None
