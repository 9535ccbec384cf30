"""scripts/eval_retrieval.py --answers: the verdict on one answer's citations, and the table that counts them."""

from __future__ import annotations

import pytest

from tests.support.scripts import loaded_script
from tests.unit.test_citations import passage
from webui.rag.citations import NOT_SUPPORTED_MESSAGE


@pytest.fixture(scope="module")
def evaluation():
    with loaded_script("eval_retrieval") as module:
        yield module


GIVEN = [
    passage(1, "-u deallocate and remove file after overwriting"),
    passage(2, "-n, --iterations=N overwrite N times instead of the default (3)"),
    passage(3, "The default signal for kill is TERM. Use -l or -L to list available signals."),
]
ANSWER_PASSAGE = 2  # holds "the default (3)"


def test_an_answer_citing_the_passage_that_holds_the_answer_counts_as_such(evaluation) -> None:
    verdict = evaluation.judge_answer("shred overwrites a file 3 times by default [2].", GIVEN, ANSWER_PASSAGE)
    assert verdict.cites_anything
    assert verdict.cites_answer
    assert not verdict.unsupported
    assert verdict.problems == ()


def test_an_answer_citing_only_another_given_passage_cites_something_but_not_the_answer(evaluation) -> None:
    verdict = evaluation.judge_answer("Add -u to remove the file after overwriting it [1].", GIVEN, ANSWER_PASSAGE)
    assert verdict.cited == (1,)
    assert not verdict.cites_answer
    assert not verdict.unsupported  # passage 1 does say it: the page flags nothing


def test_an_answer_citing_nothing_is_flagged_as_the_page_flags_it(evaluation) -> None:
    verdict = evaluation.judge_answer("It overwrites the file three times.", GIVEN, ANSWER_PASSAGE)
    assert not verdict.cites_anything
    assert not verdict.cites_answer
    assert verdict.unsupported
    assert verdict.problems == (f"{NOT_SUPPORTED_MESSAGE}: it cites none of them.",)


def test_an_answer_citing_a_passage_it_was_not_given_is_flagged(evaluation) -> None:
    verdict = evaluation.judge_answer("shred overwrites a file 3 times by default [5].", GIVEN, ANSWER_PASSAGE)
    assert verdict.cites_anything
    assert not verdict.cites_answer
    assert verdict.unsupported
    assert verdict.problems == (f"{NOT_SUPPORTED_MESSAGE}: it cites [5], which it was not given.",)


def test_citing_the_answer_passage_for_a_sentence_it_does_not_say_is_still_flagged(evaluation) -> None:
    verdict = evaluation.judge_answer(
        "shred overwrites three times by default [2]. Penguins enjoy swimming [2].", GIVEN, ANSWER_PASSAGE)
    assert verdict.cites_answer
    assert verdict.unsupported
    assert verdict.problems == (f'{NOT_SUPPORTED_MESSAGE}: [2] does not say "Penguins enjoy swimming."',)


def test_the_table_counts_each_kind_of_answer_per_corpus_and_in_all(evaluation) -> None:
    def answered(corpus: str, text: str, tokens_per_s: float):
        return evaluation.AnsweredQuestion({"corpus": corpus}, text,
                                           evaluation.judge_answer(text, GIVEN, ANSWER_PASSAGE), tokens_per_s)

    lines = evaluation.answer_table([
        answered("licenses", "It overwrites 3 times by default [2].", 40.0),
        answered("licenses", "Remove the file after overwriting [1].", 50.0),
        answered("man", "I do not know.", 60.0),
    ])
    assert lines[0].split() == ["corpus", "answers", "cite", "any", "cite", "answer", "flagged", "tokens/s"]
    assert lines[1].split() == ["licenses", "2", "2", "100%", "1", "50%", "0", "0%", "45.0"]
    assert lines[2].split() == ["man", "1", "0", "0%", "0", "0%", "1", "100%", "60.0"]
    assert lines[3].split() == ["all", "3", "2", "67%", "1", "33%", "1", "33%", "50.0"]
