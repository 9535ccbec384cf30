"""Keyword search decisions: identifier-keeping tokens, the SQLite BM25 index, and rank fusion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from webui.rag.keyword import KeywordIndex, keyword_tokens
from webui.rag.retrieval import Candidate, file_name_terms, fuse
from webui.rag.settings import InvalidRetrievalSettingsError, RetrievalSettings
from webui.rag.store import StoredCollection


@pytest.mark.parametrize(
    ("text", "whole", "parts"),
    [
        ("Pass --ctx-size 4096.", "--ctx-size", ["ctx-size", "ctx", "size"]),
        ("export HF_HUB_OFFLINE=1", "hf_hub_offline", ["hf", "hub", "offline"]),
        ("Edit pyproject.toml first.", "pyproject.toml", ["pyproject", "toml"]),
        ("Call os.path.join()", "os.path.join", ["os", "path", "join"]),
        ("Set GGML_CUDA=1", "ggml_cuda", ["ggml", "cuda"]),
        ("See llama_batch_init.", "llama_batch_init", ["llama", "batch", "init"]),
        ("Use HfApi.upload_file", "hfapi.upload_file", ["hfapi", "hf", "api", "upload", "file"]),
        ("call getTimeout()", "gettimeout", ["get", "timeout"]),
        ("an HTTPServer", "httpserver", ["http", "server"]),
    ],
)
def test_identifiers_are_kept_whole_and_in_parts(text: str, whole: str, parts: list[str]) -> None:
    tokens = keyword_tokens(text)
    assert whole in tokens
    assert all(part in tokens for part in parts)


def test_short_flags_keep_their_case_apart(tmp_path: Path) -> None:
    """-B and -b are different options; FTS5 folds case, so each gets a case-exact token too."""
    assert "=-b^" in keyword_tokens("-B") and "=-b" in keyword_tokens("-b")
    assert "non-empty" in keyword_tokens("a non-empty string")  # a hyphen inside a word is no flag
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(["lower", "upper"], ["-b Issue a warning when comparing bytes with str.",
                                   "-B Do not write .pyc files on import."])
    assert index.search("What does the -B option do?", 2)[0][0] == "upper"
    assert index.search("What does the -b option do?", 2)[0][0] == "lower"


def test_a_chunk_whose_heading_names_the_term_ranks_above_mere_mentions(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(
        ["flags", "option"],
        ["Compiler flags: -I$(srcdir)/Include -I$(builddir) -I. -I/usr/include",
         "Run Python in isolated mode."],
        ["Configure > CFLAGS", "Command line > Options > -I"],
    )
    assert index.search("What does python -I do?", 2)[0][0] == "option"


def test_a_camel_case_name_is_found_by_one_of_its_words(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "k.sqlite3")
    index.add(["a", "b"], ["Call getTimeout() to read the limit.", "The timeout of a request."])
    assert {chunk_id for chunk_id, _ in index.search("timeout", 5)} == {"a", "b"}
    assert index.search("gettimeout", 5)[0][0] == "a"


def test_sentence_punctuation_does_not_stick_to_words() -> None:
    assert keyword_tokens("It ends here. Next one!") == ["it", "ends", "here", "next", "one"]


def test_the_index_ranks_the_chunk_that_names_the_identifier(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(
        ["a", "b", "c", "d"],
        [
            "The context window size is set when the model loads.",
            "Use --ctx-size to set the context size.",
            "Downloads stop when HF_HUB_OFFLINE is set.",
            "The model loads once and stays in memory.",
        ],
    )
    assert index.search("what does --ctx-size do", 2)[0][0] == "b"
    assert [i for i, _ in index.search("HF_HUB_OFFLINE", 5)] == ["c"]
    index.add(["b"], ["Nothing about flags here."])  # replaced by id
    assert index.count() == 4
    assert "b" not in [i for i, _ in index.search("ctx-size", 5)]
    index.delete(["c"])
    assert index.search("HF_HUB_OFFLINE", 5) == []


def test_rebuild_replaces_the_whole_index(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(["old"], ["stale text"])
    index.rebuild([(["n1", "n2"], ["fresh words", "more fresh words"], [None, "Intro"])])
    assert index.count() == 2
    assert index.search("stale", 5) == []
    assert {i for i, _ in index.search("fresh", 5)} == {"n1", "n2"}


def _candidate(name: str, vector_rank: int | None, keyword_rank: int | None, cosine: float) -> Candidate:
    stored = StoredCollection("rag-x", "u", "c", "u", "", "m")
    return Candidate(stored, name, name, {}, cosine, vector_rank, keyword_rank)


def test_fusion_rewards_agreement_between_the_two_searches() -> None:
    found = fuse([
        _candidate("vector-only-top", 1, None, 0.6),
        _candidate("both-second", 2, 2, 0.5),
        _candidate("keyword-only-top", None, 1, 0.2),
    ], vector_weight=1.0, keyword_weight=1.0)
    assert [c.id for c in found] == ["both-second", "vector-only-top", "keyword-only-top"]


def test_fusion_weights_tilt_the_order() -> None:
    pair = [_candidate("v", 1, None, 0.6), _candidate("k", None, 1, 0.2)]
    assert fuse(pair, keyword_weight=2.0)[0].id == "k"
    assert fuse(pair, keyword_weight=0.5)[0].id == "v"


def test_a_file_is_named_by_the_words_of_its_name_not_its_numbers_or_extension() -> None:
    assert file_name_terms("MPL-2.0.txt") == {"mpl-2.0", "mpl"}
    assert file_name_terms("library-tomllib.html") == {"library-tomllib", "library", "tomllib"}
    assert file_name_terms("GPL-3") == {"gpl-3", "gpl"}


def test_fusion_lifts_passages_of_the_file_the_question_names() -> None:
    ranked_second = replace(_candidate("named", 2, 2, 0.5), named=True)
    pair = [_candidate("top", 1, 1, 0.6), ranked_second]
    assert [c.id for c in fuse(pair, file_name_weight=1.0)] == ["named", "top"]
    assert [c.id for c in fuse(pair, file_name_weight=0.0)] == ["top", "named"]


def test_settings_round_trip_through_collection_metadata() -> None:
    wanted = RetrievalSettings(chunk_tokens=120, overlap_tokens=20, k=6, min_score=0.35)
    meta = {"app": "webui-rag", **wanted.to_metadata()}
    assert RetrievalSettings.from_metadata(meta) == wanted
    assert RetrievalSettings.from_metadata({"app": "webui-rag"}) == RetrievalSettings()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (RetrievalSettings(chunk_tokens=8), "Chunk size must be between"),
        (RetrievalSettings(chunk_tokens=100, overlap_tokens=60), "Overlap must be between"),
        (RetrievalSettings(k=0), "Passages \\(k\\) must be between"),
        (RetrievalSettings(min_score=1.5), "cut-off must be between 0 and 1"),
    ],
)
def test_out_of_range_settings_say_what_is_allowed(settings: RetrievalSettings, message: str) -> None:
    with pytest.raises(InvalidRetrievalSettingsError, match=message):
        settings.validated()



def test_names_the_documents_never_mention_are_reported_missing(tmp_path: Path) -> None:
    """A near-topic question naming something no chunk holds is told apart from an answerable one;
    plain lower-case words and a question's first word are not names."""
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(
        ["main", "compress", "env"],
        ["zipapp --main names the callable that the archive runs.",
         "zipapp --compress compresses the files it stores in the archive.",
         "PYTHONSAFEPATH: do not prepend a potentially unsafe path to sys.path."],
    )
    assert index.missing_names("How do I upload a zipapp archive to PyPI?") == ["PyPI"]
    assert index.missing_names("What does the PYTHON_JIT environment variable do?") == ["PYTHON_JIT"]
    assert index.missing_names("What does the --disable-gil option do?") == ["--disable-gil"]
    assert index.missing_names("Which callable does zipapp --main run?") == []
    assert index.missing_names("Does zipapp shrink the Zipapp-compressed files?") == []  # parts held
    assert index.missing_names("Where would a voyage of the archive end?") == []


def test_a_name_of_several_words_must_be_in_the_documents_as_written(tmp_path: Path) -> None:
    """Each word of "Apache Software Foundation" may be in the documents while the name is not."""
    index = KeywordIndex(tmp_path / "kw.sqlite3")
    index.add(
        ["fsf", "apache"],
        ["Copyright (C) 2007 Free Software Foundation, Inc.",
         "Licensed under the Apache License, Version 2.0."],
    )
    assert index.missing_names("Who founded the Apache Software Foundation?") == [
        "Apache Software Foundation"]
    assert index.missing_names("Who runs the Free Software Foundation?") == []
    assert index.missing_names("What does the Apache License allow?") == []
    # In a question written in title case, capitals mark no names.
    assert index.missing_names("What Is The Apache Software License?") == []
