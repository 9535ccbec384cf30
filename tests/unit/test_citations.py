"""Citations: an answer's [n] markers checked against the numbered passages it was given."""

from __future__ import annotations

from webui.rag.citations import NOT_SUPPORTED_MESSAGE, check_citations, cited_numbers
from webui.rag.passages import Passage


def passage(number: int, text: str) -> Passage:
    return Passage(number=number, text=text, file_name=f"doc{number}.txt", page=None, heading=None,
                   score=0.5, collection="docs")


GIVEN = [
    passage(1, "-n, --iterations=N overwrite N times instead of the default (3)"),
    passage(2, "-u deallocate and remove file after overwriting"),
    passage(3, "The default signal for kill is TERM. Use -l or -L to list available signals."),
]


def test_an_answer_citing_what_it_says_is_supported() -> None:
    check = check_citations(
        "shred overwrites a file 3 times by default [1]. Add -u to remove the file afterwards [2].",
        GIVEN,
    )
    assert check.supported
    assert check.cited == (1, 2)
    assert check.problems == ()


def test_an_answer_citing_nothing_is_flagged() -> None:
    check = check_citations("It overwrites the file three times.", GIVEN)
    assert not check.supported
    assert check.cites_nothing
    assert check.problems == (f"{NOT_SUPPORTED_MESSAGE}: it cites none of them.",)


def test_an_answer_given_no_passages_need_cite_none() -> None:
    assert check_citations("I found nothing about that.", []).supported


def test_a_number_that_was_not_given_is_flagged_once() -> None:
    check = check_citations("The default is three passes [1]. It is safe on SSDs [5].", GIVEN)
    assert check.unknown == (5,)
    assert not check.supported
    assert check.problems == (f"{NOT_SUPPORTED_MESSAGE}: it cites [5], which it was not given.",)


def test_a_cited_sentence_sharing_no_content_word_with_its_passage_is_flagged() -> None:
    check = check_citations(
        "shred overwrites the file 3 times [1]. Journaling file systems defeat it [3].", GIVEN
    )
    assert not check.supported
    assert [s.numbers for s in check.unsupported] == [(3,)]
    assert check.problems == (
        f'{NOT_SUPPORTED_MESSAGE}: [3] does not say "Journaling file systems defeat it."',
    )


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    check = check_citations("The default signal is TERM. [3] Signals are listed with -l. [3]", GIVEN)
    assert check.supported
    assert [s.text for s in check.sentences] == [
        "The default signal is TERM. [3]", "Signals are listed with -l. [3]",
    ]


def test_marker_forms_lists_ranges_and_words() -> None:
    assert cited_numbers("a [1, 2] b [3-5] c [Source 6] d [7][8] e [passage 9]") == [
        1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]


def test_indexes_in_code_and_links_are_not_citations() -> None:
    assert cited_numbers("use argv[1] and items[2]") == []
    assert check_citations("Pass argv[1] to it.", GIVEN).cites_nothing


def test_word_forms_and_identifiers_count_as_shared() -> None:
    check = check_citations("Use --iterations to choose how many overwrites happen [1].", GIVEN)
    assert check.supported
    assert "--iterations" in check.sentences[0].shared_words
