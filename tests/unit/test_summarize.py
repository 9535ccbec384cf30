"""Summary planning: map steps, reduce groups and page citations, with a word count for tokens."""

from __future__ import annotations

from webui.rag.summarize import (
    Piece,
    Place,
    cites_anything,
    estimated_calls,
    format_places,
    input_budget,
    map_prompt,
    merged_places,
    pack,
    reduce_groups,
    reduce_prompt,
    reply_tokens_for,
    resolve_citations,
    spans_several_files,
    split_to_fit,
    trim_to,
    without_overlaps,
)


def words(text: str) -> int:
    return len(text.split())


def page(number: int, text: str = "", file_name: str = "manual.pdf") -> Piece:
    return Piece(text or f"Page {number} says fact number {number} about the pump.", (Place(file_name, number),))


def test_citations_name_pages_as_ranges_and_the_file_only_when_needed() -> None:
    pdf = [Place("a.pdf", p) for p in (7, 3, 4, 5)]
    assert format_places(pdf[1:2], with_file=False) == "p. 3"
    assert format_places(pdf, with_file=False) == "pp. 3–5, 7"
    assert format_places(pdf, with_file=True) == "a.pdf, pp. 3–5, 7"
    notes = [Place("notes.md", None, h) for h in ("Intro", "Setup", "Intro")]
    assert format_places(notes, with_file=False) == "Intro; Setup"
    many = [Place("notes.md", None, h) for h in ("A", "B", "C", "D")]
    assert format_places(many, with_file=False) == "A … D"
    assert format_places([Place("plain.txt")], with_file=False) == "plain.txt"
    assert format_places([*pdf, Place("plain.txt")], with_file=True) == "a.pdf, pp. 3–5, 7; plain.txt"


def test_a_collection_cites_files_and_one_document_cites_pages_alone() -> None:
    assert not spans_several_files([page(1), page(2)])
    assert spans_several_files([page(1), page(1, file_name="other.pdf")])
    assert merged_places([page(2), page(1), page(2)]) == (Place("manual.pdf", 2), Place("manual.pdf", 1))


def test_a_hundred_pages_are_packed_in_order_into_map_steps_that_fit() -> None:
    pages = [page(n) for n in range(1, 101)]  # 10 words each, about 13 with the "[n] (p. n)" label
    budget = 150
    groups = pack(pages, budget_tokens=budget, count_tokens=words, with_file=False)

    assert [p for group in groups for p in group] == pages, "every page once, in reading order"
    assert len(groups) == 10
    for group in groups:
        prompt_blocks = map_prompt("the manual", group, with_file=False).split("\n\n")[1:]
        assert sum(words(b) + 2 for b in prompt_blocks) <= budget
    assert groups[1][0].places == (Place("manual.pdf", 11),)


def test_everything_that_fits_is_one_pass() -> None:
    pages = [page(1), page(2)]
    assert pack(pages, budget_tokens=1000, count_tokens=words, with_file=False) == [pages]
    assert estimated_calls(1, 4) == 1


def test_a_passage_longer_than_a_call_is_split_and_keeps_its_page() -> None:
    long = page(9, " ".join(f"w{i}" for i in range(100)))
    parts = pack([long], budget_tokens=40, count_tokens=words, with_file=False)
    pieces = [p for group in parts for p in group]
    assert len(pieces) >= 3
    assert " ".join(p.text for p in pieces) == long.text, "nothing lost or repeated"
    assert all(p.places == long.places for p in pieces)
    # A single word over the budget still goes on its own instead of looping forever.
    assert split_to_fit(Piece("enormous", ()), 0, lambda p: 5) == [Piece("enormous", ())]


def test_reduce_groups_always_shrink_the_level() -> None:
    partials = [Piece("summary " * 30, (Place("m.pdf", n),)) for n in range(1, 10)]
    groups = reduce_groups(partials, budget_tokens=100, count_tokens=words, with_file=False)
    assert 1 < len(groups) < len(partials)
    assert [p for g in groups for p in g] == partials
    # Summaries so long that no two fit together are trimmed (marked "…") rather than looping forever.
    huge = [Piece("word " * 500, (Place("m.pdf", n),)) for n in range(1, 4)]
    groups = reduce_groups(huge, budget_tokens=100, count_tokens=words, with_file=False)
    assert len(groups) < len(huge)
    assert all(p.text.endswith("…") for g in groups for p in g)
    assert [p.places for g in groups for p in g] == [h.places for h in huge]


def test_estimated_calls_count_map_steps_and_every_reduce_level() -> None:
    assert estimated_calls(10, 4) == 10 + 3 + 1
    assert estimated_calls(2, 4) == 3
    assert estimated_calls(9, 1) == 9 + 5 + 3 + 2 + 1, "at least pairs"


def test_the_reply_leaves_room_for_four_partial_summaries_in_one_call() -> None:
    assert reply_tokens_for(2048, 512, overhead_tokens=100) == (2048 - 100 - 48) // 4
    assert reply_tokens_for(8192, 256, overhead_tokens=100) == 256
    assert reply_tokens_for(128, 256, overhead_tokens=100) == 16
    assert input_budget(2048, 400, 100) == 2048 - 400 - 100 - 48
    assert input_budget(100, 400, 100) == 0


def test_cited_numbers_become_the_pages_they_stand_for() -> None:
    parts = [page(3), page(4), Piece("later", (Place("manual.pdf", 9), Place("manual.pdf", 10)))]
    text = "The pump is red [1]. It runs daily [1, 2] and weekly [2-3]; see also [ 3 ]."
    assert resolve_citations(text, parts, with_file=False) == (
        "The pump is red [p. 3]. It runs daily [pp. 3–4] and weekly [pp. 4, 9–10]; see also [pp. 9–10]."
    )
    # A number that points nowhere is made up: it goes, with the space before it.
    assert resolve_citations("Fact [7]. Other [1 and 9].", parts, with_file=False) == "Fact. Other [p. 3]."
    # Citations already in page form (from a lower level) are kept as they are.
    assert resolve_citations("Kept [pp. 3–4].", parts, with_file=False) == "Kept [pp. 3–4]."
    assert resolve_citations("Both [1].", [page(1), page(1, file_name="b.pdf")], with_file=True) == \
        "Both [manual.pdf, p. 1]."


def test_prompts_number_each_part_with_the_pages_it_covers() -> None:
    partials = [Piece("First half.", (Place("m.pdf", 1), Place("m.pdf", 2))), Piece("Second.", (Place("m.pdf", 3),))]
    prompt = reduce_prompt("the document 'm.pdf'", partials, with_file=False)
    assert "the document 'm.pdf'" in prompt
    assert prompt.endswith("[1] (pp. 1–2) First half.\n\n[2] (p. 3) Second.")
    assert "the file 'odd {name}.pdf'" in map_prompt("the file 'odd {name}.pdf'", partials, with_file=False)


def test_trimming_marks_the_cut_and_keeps_short_text() -> None:
    piece = Piece("one two three four five six", (Place("m.pdf", 1),))
    assert trim_to(piece, 10, words) is piece
    assert trim_to(piece, 3, words).text == "one two …"
    assert cites_anything("It is red [p. 3].") and not cites_anything("It is red.")


def test_the_overlap_between_chunks_of_one_page_is_read_once() -> None:
    first = Piece("The pump starts at dawn. The red valve opens after ten minutes of running.", (Place("m.pdf", 1),))
    second = Piece("The red valve opens after ten minutes of running. Then the tank fills.", (Place("m.pdf", 1),))
    other_page = Piece("The red valve opens after ten minutes of running. On page two.", (Place("m.pdf", 2),))
    short_repeat = Piece("running. Short repeats stay.", (Place("m.pdf", 2),))
    assert [p.text for p in without_overlaps([first, second, other_page, short_repeat])] == [
        first.text, "Then the tank fills.", other_page.text, short_repeat.text,
    ]


def test_chunks_from_the_real_splitter_read_back_as_the_original_text() -> None:
    from webui.rag.chunking import chunk_sections
    from webui.rag.loaders import Section

    text = " ".join(f"Sentence {n} tells how pump {n} is serviced by the night crew." for n in range(60))
    chunks = chunk_sections([Section(text=text, page=4, heading=None)], count_tokens=words,
                            chunk_tokens=50, overlap_tokens=12)
    assert len(chunks) > 5
    pieces = [Piece(c.text, (Place("m.pdf", c.page),)) for c in chunks]
    assert sum(words(p.text) for p in pieces) > words(text), "the chunks overlap"
    assert " ".join(p.text for p in without_overlaps(pieces)) == text


def test_the_page_shows_the_summary_its_sources_and_what_stop_kept() -> None:
    from webui.services.summaries import Summary
    from webui.ui.summaries import done_line, summary_markdown

    parts = (Piece("Pumps are checked [p. 1].", (Place("m.pdf", 1), Place("m.pdf", 2))), Piece("Valves.", (Place("m.pdf", 3),)))
    done = Summary("pumps", "m.pdf", "Pumps and valves [pp. 1–2].", parts, passages=3, map_steps=2, calls=3, seconds=4.0)
    shown = summary_markdown(done)
    assert shown.startswith("### Summary of m.pdf\n\nPumps and valves [pp. 1–2].")
    assert "<b>[1]</b> m.pdf, pp. 1–2</summary><p class=\"passage-text\">Pumps are checked [p. 1].</p>" in shown
    assert "<b>[2]</b> m.pdf, p. 3" in shown
    assert "cited no pages" not in shown
    assert "cited no pages" in summary_markdown(Summary("pumps", "m.pdf", "Pumps.", parts, 3, 2, 3, 4.0))
    assert done_line(done) == "**Done:** 3 passages read in 2 parts (3 model calls, 4.0 s)."

    stopped = Summary("pumps", None, "", parts[:1], passages=3, map_steps=2, calls=2, seconds=1.5, stopped=True)
    assert done_line(stopped) == "**Stopped** after summarizing 1 of 2 parts (2 model calls, 1.5 s)."
    assert summary_markdown(stopped) == (
        "### The parts summarized before Stop\n\n- **[pp. 1–2]** Pumps are checked [p. 1].")
