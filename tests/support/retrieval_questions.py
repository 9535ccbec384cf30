"""Three small documents and a 5-question CSV about them, for measuring retrieval through the service and the page."""

from __future__ import annotations

from pathlib import Path

from tests.support.rag_files import write_good_files

# Four answers are in the documents; the bakery's is not (bakery.html is left out of the
# collection), so that question is missed with every choice.
QUESTIONS_CSV = """question,expected_text,expected_file
What temperature is the greenhouse heater set to during frost?,twelve degrees Celsius,greenhouse.pdf
When are the tomato seedlings watered?,every morning at six,greenhouse.pdf
How often should the bicycle chain be oiled?,every two hundred kilometres,bicycle.md
Who logs the weather?,,lighthouse.txt
When does the bakery open on weekdays?,seven in the morning,bakery.html
"""


def write_documents(folder: Path) -> list[Path]:
    """greenhouse.pdf (2 pages), bicycle.md and lighthouse.txt from the shared good files."""
    files = write_good_files(folder)
    return [files["pdf"], files["md"], files["txt"]]


def write_questions(folder: Path, text: str = QUESTIONS_CSV, name: str = "questions.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
