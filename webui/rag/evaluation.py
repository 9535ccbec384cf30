"""Retrieval measured on labelled questions: a question CSV read, ranked passages scored (hit@1, hit@5, MRR).

One engine for the Documents tab's "Measure retrieval" panel and scripts/eval_retrieval.py. A
question is answered by a passage that comes from its expected file and contains its expected
text (either may be left out); spaces, line breaks and letter case do not matter.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from webui.rag.errors import RagError
from webui.rag.passages import Passage

MAX_QUESTIONS = 200  # each question is a search (and a reranking): more would hold the page for minutes
MAX_QUESTION_FILE_BYTES = 1024 * 1024
RANKS_LOOKED_AT = 10  # passages fetched per question; an answer further down reads "not in top 10"
HIT_AT = 5  # the second hit@ column
QUESTION_COLUMN, TEXT_COLUMN, FILE_COLUMN = "question", "expected_text", "expected_file"

EXAMPLE_QUESTIONS_CSV = (
    f"{QUESTION_COLUMN},{TEXT_COLUMN},{FILE_COLUMN}\n"
    "What temperature is the heater set to during frost?,twelve degrees Celsius,greenhouse.pdf\n"
    "Who services the boiler?,serviced in May,\n"
    '"Which flag sets the context size, in tokens?",--ctx-size,\n'
    "Where is the spare key kept?,,note.txt\n"
)


class QuestionFileError(RagError, ValueError):
    """The question CSV cannot be used; str(error) says what to fix in it."""


@dataclass(frozen=True)
class LabelledQuestion:
    """A question and what answers it: a passage of ``expected_file`` holding ``expected_text``."""

    question: str
    expected_text: str = ""
    expected_file: str = ""
    line: int = 0  # in the CSV, for messages; 0 when the question came from elsewhere

    @property
    def expected(self) -> str:
        """What answers it, as the missed-questions table shows it."""
        if self.expected_text and self.expected_file:
            return f'"{self.expected_text}" in {self.expected_file}'
        return f'"{self.expected_text}"' if self.expected_text else self.expected_file


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_question_file_size(size_bytes: int) -> None:
    """QuestionFileError when a question file is too large to be one (checked before it is read)."""
    if size_bytes > MAX_QUESTION_FILE_BYTES:
        raise QuestionFileError(
            f"The question file is {size_bytes / 1024 / 1024:.1f} MB; a question file may be at most "
            f"{MAX_QUESTION_FILE_BYTES // 1024 // 1024} MB ({MAX_QUESTIONS} questions)."
        )


def parse_questions(data: bytes, *, max_questions: int = MAX_QUESTIONS) -> list[LabelledQuestion]:
    """The questions of a CSV with a ``question`` column and ``expected_text`` and/or ``expected_file``.

    Raises QuestionFileError naming the first problem (encoding, header, a line, the count).
    """
    check_question_file_size(len(data))
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise QuestionFileError(
            "The question file is not UTF-8 text; save it as \"CSV UTF-8\" and upload it again."
        ) from exc
    if not text.strip():
        raise QuestionFileError(
            f"The question file is empty; it needs a header line ({QUESTION_COLUMN},{TEXT_COLUMN},"
            f"{FILE_COLUMN}) and one question per line."
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [_folded(name) for name in next(reader)]
        if QUESTION_COLUMN not in header or not {TEXT_COLUMN, FILE_COLUMN} & set(header):
            shown = ", ".join(name for name in header if name) or "nothing"
            raise QuestionFileError(
                f"The question file needs a '{QUESTION_COLUMN}' column and an '{TEXT_COLUMN}' or "
                f"'{FILE_COLUMN}' column in its first line; it has: {shown}."
            )
        column = {name: header.index(name) for name in (QUESTION_COLUMN, TEXT_COLUMN, FILE_COLUMN) if name in header}
        questions: list[LabelledQuestion] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(questions) == max_questions:
                raise QuestionFileError(
                    f"The question file has more than {max_questions} questions; at most {max_questions} "
                    "are measured at once, so split it into smaller files."
                )
            questions.append(_labelled(row, column, reader.line_num))
    except csv.Error as exc:
        raise QuestionFileError(f"Line {reader.line_num} of the question file is not valid CSV ({exc}).") from exc
    if not questions:
        raise QuestionFileError("The question file has a header line but no questions under it.")
    return questions


def _labelled(row: Sequence[str], column: dict[str, int], line: int) -> LabelledQuestion:
    def cell(name: str) -> str:
        index = column.get(name)
        return " ".join(row[index].split()) if index is not None and index < len(row) else ""

    question = LabelledQuestion(cell(QUESTION_COLUMN), cell(TEXT_COLUMN), cell(FILE_COLUMN), line)
    if not question.question:
        raise QuestionFileError(f"Line {line} of the question file has no question.")
    if not question.expected_text and not question.expected_file:
        raise QuestionFileError(
            f"Line {line} of the question file gives neither {TEXT_COLUMN} nor {FILE_COLUMN}, "
            "so no passage could count as its answer."
        )
    return question


def contains_answer(text: str, expected_text: str) -> bool:
    """Whether a passage's text holds the expected text, whatever the spacing and case."""
    return _folded(expected_text) in _folded(text)


def answer_rank(ranked: Iterable[tuple[str, str]], expected: LabelledQuestion) -> int | None:
    """1-based rank of the first (file name, text) that answers ``expected``; None if none does."""
    wanted_file = expected.expected_file.casefold()
    for rank, (file_name, text) in enumerate(ranked, start=1):
        if wanted_file and file_name.casefold() != wanted_file:
            continue
        if contains_answer(text, expected.expected_text):
            return rank
    return None


def first_hit(passages: Sequence[Passage], expected: LabelledQuestion) -> int | None:
    """1-based rank of the first passage that answers ``expected``; None if none does."""
    return answer_rank(((p.file_name, p.text) for p in passages), expected)


@dataclass(frozen=True)
class Scores:
    """Share of questions answered first and within the first ``k``, and mean reciprocal rank."""

    hit_at_1: float
    hit_at_k: float
    mrr: float
    k: int
    questions: int


def score(ranks: Sequence[int | None], k: int = HIT_AT) -> Scores:
    """Scores of 1-based ranks (None: not found); an empty list scores 0."""
    n = max(1, len(ranks))
    return Scores(
        hit_at_1=sum(1 for r in ranks if r == 1) / n,
        hit_at_k=sum(1 for r in ranks if r is not None and r <= k) / n,
        mrr=sum(1 / r for r in ranks if r is not None) / n,
        k=k,
        questions=len(ranks),
    )


@dataclass(frozen=True)
class QuestionOutcome:
    """Where one question's answer was ranked, and the passage ranked first."""

    question: LabelledQuestion
    rank: int | None
    best: Passage | None  # None: no passage passed the cut-off


@dataclass(frozen=True)
class ChoiceResult:
    """One retrieval choice measured on every question."""

    label: str
    k: int  # passages the model is given with this choice
    outcomes: list[QuestionOutcome]

    @property
    def scores(self) -> Scores:
        return score([o.rank for o in self.outcomes])

    @property
    def reaches_model(self) -> float:
        """Share of questions whose answer is among the ``k`` passages the model would get."""
        return sum(1 for o in self.outcomes if o.rank is not None and o.rank <= self.k) / max(1, len(self.outcomes))

    @property
    def missed(self) -> list[QuestionOutcome]:
        """Questions whose answer is not the first passage."""
        return [o for o in self.outcomes if o.rank != 1]


Progress = Callable[[int, int], None]  # questions done, questions in all


def measure(
    label: str,
    retrieve: Callable[[str], Sequence[Passage]],
    questions: Sequence[LabelledQuestion],
    *,
    k: int,
    progress: Progress | None = None,
) -> ChoiceResult:
    """Ask every question through ``retrieve`` (ranked passages, best first) and note each answer's rank."""
    outcomes = []
    for done, question in enumerate(questions):
        if progress:
            progress(done, len(questions))
        passages = retrieve(question.question)
        outcomes.append(QuestionOutcome(question, first_hit(passages, question), passages[0] if passages else None))
    if progress:
        progress(len(questions), len(questions))
    return ChoiceResult(label, k, outcomes)
