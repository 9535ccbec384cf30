"""Chunking and passage fitting: sizes, overlap, boundaries, metadata, and the cited context."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.rag.chunking import chunk_budget, chunk_sections
from webui.rag.loaders import Section
from webui.rag.errors import InvalidCollectionNameError
from webui.rag.ingest import embedding_batches
from webui.rag.library import validate_collection_name
from webui.rag.passages import Passage, build_context, fit_passages


def words(text: str) -> int:
    return len(text.split())


def sentences(count: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} says something short." for i in range(start, start + count))


def test_chunks_stay_within_the_token_budget() -> None:
    chunks = chunk_sections([Section(sentences(200))], count_tokens=words, chunk_tokens=50,
                            overlap_tokens=10)
    assert len(chunks) > 10
    assert all(words(c.text) <= 50 for c in chunks)


def test_chunks_end_on_sentence_boundaries() -> None:
    chunks = chunk_sections([Section(sentences(60))], count_tokens=words, chunk_tokens=40,
                            overlap_tokens=8)
    assert all(c.text.endswith("short.") for c in chunks)
    assert all(c.text.startswith("Sentence number") for c in chunks)


def test_neighbouring_chunks_overlap() -> None:
    chunks = chunk_sections([Section(sentences(60))], count_tokens=words, chunk_tokens=40,
                            overlap_tokens=12)
    for first, second in zip(chunks, chunks[1:]):
        last_sentence = first.text.rsplit("Sentence", 1)[1]
        assert last_sentence in second.text


def test_paragraphs_are_preferred_split_points() -> None:
    text = sentences(4) + "\n\n" + sentences(4, start=100)
    chunks = chunk_sections([Section(text)], count_tokens=words, chunk_tokens=30, overlap_tokens=0)
    assert [c.text for c in chunks] == [sentences(4), sentences(4, start=100)]


def test_page_and_heading_stay_with_each_chunk_and_indexes_run_on() -> None:
    sections = [Section(sentences(30), page=1), Section(sentences(30), page=2, heading="Intro")]
    chunks = chunk_sections(sections, count_tokens=words, chunk_tokens=50, overlap_tokens=5)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.page for c in chunks} == {1, 2}
    assert all(c.heading == "Intro" for c in chunks if c.page == 2)
    assert all(c.heading is None for c in chunks if c.page == 1)


def test_empty_sections_give_no_chunks() -> None:
    assert chunk_sections([Section("   ")], count_tokens=words) == []


def test_budget_leaves_room_under_the_model_window() -> None:
    assert chunk_budget(256) == (200, 40)
    size, overlap = chunk_budget(128)
    assert size <= 128 * 0.8 and 0 < overlap < size
    assert chunk_budget(16)[0] == 32  # never absurdly small


def test_chunk_budget_takes_a_collection_s_own_sizes_within_what_the_model_reads() -> None:
    assert chunk_budget(256, 100, 30) == (100, 30)
    assert chunk_budget(256, 400, 100) == (204, 51)  # capped to the model; overlap shrinks alike
    assert chunk_budget(512, 64, 60) == (64, 32)  # overlap never more than half a chunk


def test_real_minilm_tokenizer_keeps_chunks_inside_256_word_pieces(minilm_path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    long_words = " ".join(["electroencephalographically", "photosynthesis"] * 600)
    chunks = chunk_sections([Section(sentences(300) + "\n\n" + long_words)], count_tokens=count)
    assert all(count(c.text) + 2 <= 256 for c in chunks)  # +2 for [CLS] and [SEP]


def passage(number: int, text: str, page: int | None = 1, heading: str | None = None) -> Passage:
    return Passage(number, text, "guide.pdf", page, heading, 0.5, "manuals")


def test_context_numbers_each_passage_with_its_citation() -> None:
    context = build_context(
        [passage(1, "First."), passage(2, "Second.", page=None, heading="Setup")]
    )
    assert context == "[1] (guide.pdf, p. 1) First.\n\n[2] (guide.pdf, Setup) Second."


def test_context_respects_max_chars() -> None:
    context = build_context([passage(1, "a" * 100), passage(2, "b" * 100)], max_chars=150)
    assert len(context) <= 150
    assert context.startswith("[1]") and "[2]" in context and context.endswith("…")


def test_fit_keeps_everything_when_it_fits() -> None:
    passages = [passage(1, "one two"), passage(2, "three four")]
    assert fit_passages(passages, budget_tokens=100, count_tokens=words) == passages


def test_fit_drops_the_lowest_ranked_first() -> None:
    passages = [passage(i, " ".join(["word"] * 40)) for i in (1, 2, 3)]
    kept = fit_passages(passages, budget_tokens=100, count_tokens=words)
    assert [p.number for p in kept] == [1, 2]
    assert words(build_context(kept)) <= 100


def test_fit_shortens_when_a_useful_part_fits() -> None:
    passages = [passage(1, " ".join(f"w{i}" for i in range(200)))]
    kept = fit_passages(passages, budget_tokens=60, count_tokens=words)
    assert len(kept) == 1 and kept[0].text.startswith("w0 w1") and kept[0].text.endswith("…")
    assert 50 <= words(build_context(kept)) <= 60


def test_fit_returns_nothing_when_even_a_fragment_would_not_fit() -> None:
    assert fit_passages([passage(1, "a " * 100)], budget_tokens=10, count_tokens=words) == []


@pytest.mark.parametrize("bad", ["", "   ", "x" * 81, "tab\x07bell"])
def test_bad_collection_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCollectionNameError):
        validate_collection_name(bad)


def test_collection_names_are_trimmed() -> None:
    assert validate_collection_name("  Tax   papers ") == "Tax papers"


def test_chunks_carry_their_heading_path_within_the_budget() -> None:
    """A chunk from the middle of a section says which section it is from, once."""
    heading = "venv > Command-line interface > --clear"
    sections = [Section("--clear\n" + sentences(40), heading=heading),
                Section("--upgrade\nShort.", heading="venv > Command-line interface > --upgrade")]
    chunks = chunk_sections(sections, count_tokens=words, chunk_tokens=50, overlap_tokens=5,
                            with_headings=True)
    assert len(chunks) > 2
    # The term alone is no chunk: "--clear" starts the first one, through its heading.
    assert chunks[0].text.startswith(heading + "\nSentence number 0")
    *cleared, upgrade = chunks
    assert all(c.text.startswith(heading + "\nSentence") for c in cleared)
    assert upgrade.text == "venv > Command-line interface\n--upgrade\nShort."
    assert all(words(c.text) <= 50 for c in chunks)
    assert all(c.heading == heading for c in cleared)


def test_chunks_without_a_heading_get_no_prefix() -> None:
    plain = chunk_sections([Section(sentences(30), page=3)], count_tokens=words, chunk_tokens=40,
                           overlap_tokens=5, with_headings=True)
    assert all(c.text.startswith("Sentence number") for c in plain)


def test_each_distinct_string_is_counted_once() -> None:
    """Tokenizing is most of chunking's time, and the splitter asks about the same strings often."""
    counted: list[str] = []

    def counting_words(text: str) -> int:
        counted.append(text)
        return words(text)

    sections = [Section(sentences(80) + "\n\n" + sentences(40, start=80), heading="Guide > Setup")]
    chunks = chunk_sections(sections, count_tokens=counting_words, chunk_tokens=40, overlap_tokens=8,
                            with_headings=True)
    assert len(chunks) > 5
    assert len(counted) == len(set(counted))
    # The same chunks as a counter that is asked every time.
    assert chunks == chunk_sections(sections, count_tokens=words, chunk_tokens=40, overlap_tokens=8,
                                    with_headings=True)


def test_embedding_batches_put_the_head_first_then_the_longest() -> None:
    lengths = [30, 5, 200, 40, 199, 5, 120]
    batches = embedding_batches(lengths, 3)
    assert batches == [[0, 2, 4], [6, 3, 1], [5]]  # equal lengths keep reading order
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert embedding_batches([], 3) == []
    assert embedding_batches([7], 32) == [[0]]


def test_a_chunk_is_embedded_and_keyword_indexed_with_its_documents_title() -> None:
    from webui.rag.context import document_title, embedded_text, keyword_heading

    assert document_title("git-commit.1.txt") == "git commit.1"
    assert document_title("MPL-2.0.txt") == "MPL 2.0"
    assert embedded_text("overwrite N times", "shred.1.txt") == "shred.1\noverwrite N times"
    assert keyword_heading({"file_name": "venv.html", "heading": "venv > Options > --clear"}) == "venv --clear"
    assert keyword_heading({"file_name": "", "heading": None}) is None
