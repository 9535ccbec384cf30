"""The retrieval evaluation engine alone: reading a question CSV and scoring ranked passages."""

from __future__ import annotations

import pytest

from webui.rag import Passage
from webui.rag.evaluation import (
    EXAMPLE_QUESTIONS_CSV,
    MAX_QUESTION_FILE_BYTES,
    LabelledQuestion,
    QuestionFileError,
    first_hit,
    measure,
    parse_questions,
    score,
)
from webui.services.retrieval_eval import (
    RetrievalEvaluation,
    UnknownRetrievalChoice,
    choice_named,
    comparison_choices,
    missed_rows,
    score_rows,
)


def passage(number: int, file_name: str, text: str, page: int | None = None) -> Passage:
    return Passage(number=number, text=text, file_name=file_name, page=page, heading=None, score=0.5,
                   collection="notes")


# --- reading the CSV ---------------------------------------------------------------------------

def test_a_csv_with_text_file_or_both_gives_one_question_per_line() -> None:
    data = ("Question,Expected_Text,expected_file\n"
            "Where is the key?,boiler room,note.txt\n"
            "\n"
            '"Which flag, exactly?",  --ctx-size\n'
            "Who wrote it?,,authors.md\n").encode()
    questions = parse_questions(data)
    assert [(q.question, q.expected_text, q.expected_file, q.line) for q in questions] == [
        ("Where is the key?", "boiler room", "note.txt", 2),
        ("Which flag, exactly?", "--ctx-size", "", 4),
        ("Who wrote it?", "", "authors.md", 5),
    ]
    assert [q.expected for q in questions] == ['"boiler room" in note.txt', '"--ctx-size"', "authors.md"]


def test_a_spreadsheets_utf8_csv_with_a_byte_order_mark_is_read() -> None:
    [question] = parse_questions("\ufeffquestion,expected_text\nQuelle température ?,douze degrés\n".encode())
    assert question.question == "Quelle température ?"


def test_the_example_offered_for_download_is_itself_a_valid_question_file() -> None:
    assert len(parse_questions(EXAMPLE_QUESTIONS_CSV.encode())) == 4


@pytest.mark.parametrize(("data", "sentence"), [
    (b"", "The question file is empty; it needs a header line (question,expected_text,expected_file)"),
    (b"  \n\n", "The question file is empty"),
    (b"question,answer\nWhy?,because\n",
     "The question file needs a 'question' column and an 'expected_text' or 'expected_file' column in its "
     "first line; it has: question, answer."),
    (b"expected_text\nbecause\n", "needs a 'question' column"),
    (b"question,expected_text\n", "The question file has a header line but no questions under it."),
    ("question,expected_text\nQuelle température ?,douze degrés\n".encode("latin-1"),
     'The question file is not UTF-8 text; save it as "CSV UTF-8" and upload it again.'),
    (b"question,expected_text\nWhy?,because\n,orphan answer\n", "Line 3 of the question file has no question."),
    (b"question,expected_text,expected_file\nWhy?,,\n",
     "Line 2 of the question file gives neither expected_text nor expected_file"),
    (b'question,expected_text\n"Why?,because\n', "Line 2 of the question file is not valid CSV"),
])
def test_a_bad_question_file_is_refused_with_a_sentence_saying_what_to_fix(data: bytes, sentence: str) -> None:
    with pytest.raises(QuestionFileError) as refused:
        parse_questions(data)
    assert sentence in str(refused.value)


def test_more_questions_than_the_cap_are_refused_and_the_cap_itself_is_accepted() -> None:
    def rows(count: int) -> bytes:
        return ("question,expected_text\n" + "".join(f"Question {n}?,answer {n}\n" for n in range(count))).encode()

    assert len(parse_questions(rows(200))) == 200
    with pytest.raises(QuestionFileError, match="more than 200 questions; at most 200 are measured at once"):
        parse_questions(rows(201))


def test_a_file_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(QuestionFileError, match="may be at most 1 MB"):
        parse_questions(b"question,expected_text\n" + b"x" * MAX_QUESTION_FILE_BYTES)


# --- scoring ranked passages -------------------------------------------------------------------

def test_the_answer_is_the_first_passage_of_the_expected_file_holding_the_text() -> None:
    ranked = [
        passage(1, "other.txt", "The spare key hangs in the boiler room."),
        passage(2, "note.txt", "Call Ada about the key."),
        passage(3, "note.txt", "The spare key hangs in the\n  BOILER   room."),
    ]
    assert first_hit(ranked, LabelledQuestion("Key?", "boiler room", "note.txt")) == 3
    assert first_hit(ranked, LabelledQuestion("Key?", "boiler room")) == 1  # any file
    assert first_hit(ranked, LabelledQuestion("Key?", expected_file="NOTE.txt")) == 2  # any text
    assert first_hit(ranked, LabelledQuestion("Key?", "garage")) is None


def test_hit_at_1_hit_at_5_and_mrr_of_known_ranks() -> None:
    scores = score([1, 2, None, 6, 1])
    assert (scores.hit_at_1, scores.hit_at_k, scores.k, scores.questions) == (0.4, 0.6, 5, 5)
    assert scores.mrr == pytest.approx((1 + 1 / 2 + 1 / 6 + 1) / 5)
    assert score([]).mrr == 0.0


def test_measure_ranks_every_question_reports_progress_and_lists_the_misses() -> None:
    corpus = {
        "Key?": [passage(1, "note.txt", "The key is in the boiler room.", page=2)],
        "Boiler?": [passage(1, "note.txt", "The key is in the boiler room.", page=2),
                    passage(2, "note.txt", "The boiler is serviced in May.", page=3)],
        "Heater?": [],
    }
    questions = [LabelledQuestion("Key?", "boiler room"), LabelledQuestion("Boiler?", "serviced in May"),
                 LabelledQuestion("Heater?", "twelve degrees")]
    seen: list[tuple[int, int]] = []
    result = measure("Current", lambda q: corpus[q], questions, k=1, progress=lambda d, t: seen.append((d, t)))
    assert [o.rank for o in result.outcomes] == [1, 2, None]
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert result.reaches_model == pytest.approx(1 / 3)  # k 1: only the first question's answer is given

    other = measure("Keyword only", lambda q: corpus[q][::-1], questions, k=5)
    evaluation = RetrievalEvaluation("notes", questions, result, other)
    assert score_rows(evaluation) == [
        ["Current", "0.333", "0.667", "0.500", "0.333 (k 1)"],
        ["Keyword only", "0.667", "0.667", "0.667", "0.667 (k 5)"],
    ]
    assert missed_rows(evaluation) == [
        ["Current", "Boiler?", '"serviced in May"', "2", "note.txt, p. 2"],
        ["Current", "Heater?", '"twelve degrees"', "not in top 10", "no passage passed the cut-off"],
        ["Keyword only", "Heater?", '"twelve degrees"', "not in top 10", "no passage passed the cut-off"],
    ]


def test_the_reranker_is_offered_only_when_one_is_configured() -> None:
    plain = [c.label for c in comparison_choices(reranker=False)]
    assert plain == ["Vector only", "Keyword only", "Hybrid, k 3", "Hybrid, k 8", "Hybrid, k 10",
                     "Chunks of 100 tokens (the files chunked again: slower)",
                     "Chunks of 150 tokens (the files chunked again: slower)"]
    assert choice_named("Chunks of 100 tokens (the files chunked again: slower)", reranker=False).chunk_tokens == 100
    assert "Hybrid without the reranker" in [c.label for c in comparison_choices(reranker=True)]
    assert choice_named("Hybrid, k 8", reranker=False).k == 8
    with pytest.raises(UnknownRetrievalChoice, match="is not a retrieval choice"):
        choice_named("Hybrid without the reranker", reranker=False)
