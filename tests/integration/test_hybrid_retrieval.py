"""Hybrid retrieval with real Chroma and real MiniLM: the keyword index, fusion, per-collection settings."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from webui.rag import DocumentLibrary
from webui.rag.embeddings import Embedder
from webui.rag.context import INDEX_FORMAT
from webui.rag.keyword import INDEX_VERSION
from webui.rag.settings import InvalidRetrievalSettingsError, RetrievalSettings

OWNER = "ada"


@pytest.fixture(scope="module")
def embedder(minilm_path: Path) -> Embedder:
    """One loaded MiniLM for the module: loading it per test would dominate the run."""
    return Embedder(str(minilm_path))


@pytest.fixture()
def library(data_dir: Path, embedder: Embedder) -> DocumentLibrary:
    return DocumentLibrary(data_dir, embedder=embedder)


def python_help(flag: str) -> str:
    """Real reference text: this Python's own help for its options or environment variables."""
    return subprocess.run([sys.executable, flag], capture_output=True, text=True, check=True).stdout


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def keyword_files(library: DocumentLibrary, collection: str, query: str) -> set[str]:
    """File names of the chunks BM25 finds for query (keyword search alone)."""
    found = library.retrieve(OWNER, query, [collection], k=10, min_score=-1.0, mode="keyword")
    return {p.file_name for p in found}


def index_and_chroma_counts(library: DocumentLibrary, collection: str) -> tuple[int, int]:
    stored = library.store.find(OWNER, collection)
    assert stored is not None
    return library.store.keyword_index(stored).count(), library.store.count(stored)


def test_keyword_index_follows_add_replace_and_delete(library: DocumentLibrary, tmp_path: Path) -> None:
    library.create_collection(OWNER, "notes")
    first = write(tmp_path, "setup.txt", "Set HF_HUB_OFFLINE=1 so the hub is never contacted.")
    other = write(tmp_path, "build.txt", "The build reads its dependencies from pyproject.toml.")
    library.ingest(OWNER, "notes", [first, other])
    assert keyword_files(library, "notes", "HF_HUB_OFFLINE") == {"setup.txt"}
    assert keyword_files(library, "notes", "pyproject.toml") == {"build.txt"}
    counts = index_and_chroma_counts(library, "notes")
    assert counts[0] == counts[1] > 0

    replaced = write(tmp_path, "setup.txt", "Pass --ctx-size 4096 to give the model a longer window.")
    [outcome] = library.ingest(OWNER, "notes", [replaced])
    assert outcome.status == "replaced"
    assert keyword_files(library, "notes", "HF_HUB_OFFLINE") == set()
    assert keyword_files(library, "notes", "--ctx-size") == {"setup.txt"}
    counts = index_and_chroma_counts(library, "notes")
    assert counts[0] == counts[1]

    library.delete_document(OWNER, "notes", "setup.txt")
    assert keyword_files(library, "notes", "--ctx-size") == set()
    assert keyword_files(library, "notes", "pyproject.toml") == {"build.txt"}
    counts = index_and_chroma_counts(library, "notes")
    assert counts[0] == counts[1]


def test_keyword_index_is_rebuilt_after_it_is_deleted(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    library = DocumentLibrary(data_dir, embedder=embedder)
    library.create_collection(OWNER, "help")
    library.ingest(OWNER, "help", [write(tmp_path, "env.txt", python_help("--help-env"))])
    index_files = list((data_dir / "keyword").glob("*.sqlite3"))
    assert len(index_files) == 1
    index_files[0].unlink()

    # A new run (as after a restart) finds the index missing and rebuilds it from Chroma.
    reopened = DocumentLibrary(data_dir, embedder=embedder)
    assert keyword_files(reopened, "help", "PYTHONPYCACHEPREFIX") == {"env.txt"}
    assert index_files[0].is_file()
    counts = index_and_chroma_counts(reopened, "help")
    assert counts[0] == counts[1] > 0

    # The same run notices when the file goes away under it, too.
    index_files[0].unlink()
    assert keyword_files(reopened, "help", "PYTHONPYCACHEPREFIX") == {"env.txt"}
    assert index_files[0].is_file()


def test_an_index_written_by_older_tokens_is_rebuilt_with_headings(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """After an upgrade that changes the tokens, the old index is rebuilt from Chroma, with the
    headings the chunks keep in their metadata."""
    library = DocumentLibrary(data_dir, embedder=embedder)
    library.create_collection(OWNER, "docs")
    page = write(tmp_path, "options.html", "<main><h1>Options</h1><dl><dt>-B</dt><dd><p>Writes no "
                 "bytecode.</p></dd><dt>-b</dt><dd><p>Warns about bytes.</p></dd></dl></main>")
    library.ingest(OWNER, "docs", [page])
    [index_file] = (data_dir / "keyword").glob("*.sqlite3")
    with sqlite3.connect(index_file) as connection:
        connection.execute("PRAGMA user_version = 1")
    connection.close()

    reopened = DocumentLibrary(data_dir, embedder=embedder)
    [best, *_] = reopened.retrieve(OWNER, "What does -B do?", ["docs"], k=2, min_score=-1.0, mode="keyword")
    assert best.heading == "Options > -B" and "no bytecode" in best.text
    with sqlite3.connect(index_file) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == INDEX_VERSION
        assert connection.execute("SELECT count(*) FROM chunks WHERE heading = ''").fetchone()[0] == 0
    connection.close()


def test_hybrid_ranks_the_exact_identifier_first_where_vectors_alone_do_not(
    library: DocumentLibrary, tmp_path: Path
) -> None:
    library.create_collection(OWNER, "python")
    # Small chunks, so each holds an option or two: set through the collection's own settings.
    library.update_retrieval_settings(OWNER, "python", RetrievalSettings(chunk_tokens=40, overlap_tokens=0))
    files = [
        write(tmp_path, "options.txt", python_help("-h")),
        write(tmp_path, "environment.txt", python_help("--help-env")),
        write(tmp_path, "x-options.txt", python_help("--help-xoptions")),
    ]
    library.ingest(OWNER, "python", files)

    def first(question: str, mode: str) -> str:
        [best, *_] = library.retrieve(OWNER, question, ["python"], k=5, min_score=-1.0, mode=mode)
        return best.text

    # Variables whose own line MiniLM does not put first (it ranks look-alike lines above it).
    for variable in ("PYTHONNODEBUGRANGES", "PYTHONSTARTUP", "PYTHONDEBUG", "PYTHONCASEOK"):
        question = f"What is {variable} for?"
        assert variable not in first(question, "vector"), question
        assert variable in first(question, "hybrid"), question


def test_hybrid_prefers_the_file_a_question_names(library: DocumentLibrary, tmp_path: Path) -> None:
    library.create_collection(OWNER, "manuals")
    library.ingest(OWNER, "manuals", [
        write(tmp_path, "kestrel-manual.txt", "Hold the power button for three seconds to reset "
              "the device. The battery lasts ten hours on a full charge."),
        write(tmp_path, "osprey-manual.txt", "Hold the power button for five seconds to reset the "
              "device. The battery lasts twelve hours on a full charge."),
    ])
    for name in ("kestrel", "osprey"):
        question = f"How do I reset the {name.title()}?"
        [best, *_] = library.retrieve(OWNER, question, ["manuals"], k=2, min_score=-1.0)
        assert best.file_name == f"{name}-manual.txt", question


def test_a_question_the_documents_do_not_answer_gets_no_passages(
    library: DocumentLibrary, tmp_path: Path
) -> None:
    library.create_collection(OWNER, "python")
    library.ingest(OWNER, "python", [write(tmp_path, "environment.txt", python_help("--help-env"))])
    assert library.retrieve(OWNER, "How long should sourdough bread rise?", ["python"]) == []
    assert library.retrieve(OWNER, "Which variable sets the seed of str hashes?", ["python"])


def test_retrieval_settings_persist_across_reopening_and_shape_ingestion(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    library = DocumentLibrary(data_dir, embedder=embedder)
    library.create_collection(OWNER, "tuned")
    wanted = RetrievalSettings(chunk_tokens=64, overlap_tokens=8, k=7, min_score=0.4)
    library.update_retrieval_settings(OWNER, "tuned", wanted)
    library.ingest(OWNER, "tuned", [write(tmp_path, "options.txt", python_help("-h"))])

    reopened = DocumentLibrary(data_dir, embedder=embedder)
    assert reopened.retrieval_settings(OWNER, "tuned") == wanted
    [info] = [c for c in reopened.collections(OWNER) if c.name == "tuned"]
    assert info.settings == wanted
    passages = reopened.passages(OWNER, "tuned")
    assert len(passages) > 5
    assert max(embedder.count_tokens(p.text) for p in passages) <= 64
    # k and the cut-off come from the collection when the caller leaves them out.
    found = reopened.retrieve(OWNER, "Which option turns off writing .pyc files?", ["tuned"])
    assert 0 < len(found) <= 7
    assert all(p.score >= 0.4 for p in found)


def test_bad_retrieval_settings_are_refused_with_a_sentence(library: DocumentLibrary) -> None:
    library.create_collection(OWNER, "strict")
    with pytest.raises(InvalidRetrievalSettingsError, match="Overlap must be between 0 and half"):
        library.update_retrieval_settings(
            OWNER, "strict", RetrievalSettings(chunk_tokens=64, overlap_tokens=40)
        )
    assert library.retrieval_settings(OWNER, "strict") == RetrievalSettings()


def test_a_collection_indexed_before_titles_is_reindexed_when_a_file_is_next_added(
    library: DocumentLibrary, embedder: Embedder, tmp_path: Path
) -> None:
    """Chunks embedded without their document's title (INDEX_FORMAT 1) are embedded again, with
    progress, before the next file joins them; after that the title finds its passages."""
    library.create_collection(OWNER, "tools")
    library.ingest(OWNER, "tools", [
        write(tmp_path, "shred.txt", "-n, --iterations=N\noverwrite N times instead of the default (3)"),
        write(tmp_path, "wipe.txt", "-n, --passes=N\noverwrite N times instead of the default (4)"),
    ])
    stored = library.store.find(OWNER, "tools")
    assert stored is not None and stored.index_format == INDEX_FORMAT
    # Make it look as an older version left it: vectors of the text alone, no stamp.
    collection = library.store.client.get_collection(stored.chroma_name, embedding_function=None)
    got = collection.get(include=["documents", "metadatas"])
    collection.update(ids=got["ids"], embeddings=embedder.embed(got["documents"]))
    meta = {**(collection.metadata or {})}
    meta.pop("index_format")
    collection.modify(metadata=meta)
    assert library.store.find(OWNER, "tools").index_format == 1  # type: ignore[union-attr]

    seen: list[str] = []
    [outcome] = library.ingest(OWNER, "tools", [write(tmp_path, "notes.txt", "Nothing to see.")],
                               progress=lambda p: seen.append(p.current_file))
    assert outcome.ok
    assert "updating the index of 'tools': 2/2 passages" in seen
    assert library.store.find(OWNER, "tools").index_format == INDEX_FORMAT  # type: ignore[union-attr]
    [best, *_] = library.retrieve(OWNER, "How many times does shred overwrite by default?", ["tools"],
                                  k=3, min_score=-1.0, mode="vector")
    assert best.file_name == "shred.txt"
    assert best.text.startswith("-n, --iterations=N")  # the title is embedded, not shown
