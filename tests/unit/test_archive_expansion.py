"""Small files that expand when read: each part is read once, and text past the limit is refused.

The archive check bounds each zip member once; these files stay within it and still made the old
loaders read one part thousands of times or copy one string into every cell (security finding 3).
"""

from __future__ import annotations

import json

import pytest

from tests.support.memory_limit import run_python
from tests.support.rag_files import (
    docx_with_merged_cell,
    epub_bytes,
    pptx_listing_one_slide,
    pptx_sharing_one_notes_page,
    read_member,
    replace_members,
    xlsx_bytes,
    xlsx_listing_one_sheet,
    xlsx_sharing_one_string,
)
from webui.rag.loaders import DocumentParseError, load_document

MB = 1024 * 1024


def test_an_epub_spine_listing_chapters_again_indexes_each_once() -> None:
    data = epub_bytes([("Departure", "We left Bergen at dawn."), ("Arrival", "Tromso at last.")],
                      spine=[1, 2, 1, 2, 1])
    document = load_document(data, "voyage.epub")
    assert [s.heading for s in document.sections] == ["Departure", "Arrival"]


def test_an_epub_listing_one_big_chapter_many_times_is_read_once() -> None:
    chapter = "The ship sails north along the coast. " * 5_000  # 190 KB
    data = epub_bytes([("Log", chapter)], spine=[1] * 200)  # 38 MB if read as listed
    assert len(data) < 30_000
    document = load_document(data, "log.epub", max_unpacked_bytes=1 * MB)
    text = "\n".join(s.text for s in document.sections)
    assert text.count("The ship sails north") == 5_000


def test_a_shared_string_in_every_cell_is_refused_at_the_unpack_limit() -> None:
    data = xlsx_sharing_one_string("figure " * 1_500, rows=20, columns=10)  # 10 KB, 200 cells
    assert len(data) < 10_000
    with pytest.raises(DocumentParseError) as refused:
        load_document(data, "sheet.xlsx", max_unpacked_bytes=1 * MB)
    assert str(refused.value) == "sheet.xlsx: this Excel workbook expands to more than 1 MB of text; it was not added."


def test_shared_strings_used_in_many_cells_still_load_within_the_limit() -> None:
    document = load_document(xlsx_sharing_one_string("yes", rows=300, columns=4), "answers.xlsx",
                             max_unpacked_bytes=1 * MB)
    lines = document.sections[0].text.splitlines()
    assert len(lines) == 299
    assert lines[-1] == "Row 300: yes: yes; yes: yes; yes: yes; yes: yes"


def test_a_workbook_naming_one_sheet_file_many_times_is_refused_for_what_it_inflates() -> None:
    """Each sheet name reads the file again: 40 x 100 KB inflated, though its text is a few bytes."""
    data = xlsx_listing_one_sheet([["planet"], ["Mars"]], 40, padding=100_000)
    assert len(data) < 10_000
    with pytest.raises(DocumentParseError) as refused:
        load_document(data, "planets.xlsx", max_unpacked_bytes=1 * MB)
    assert str(refused.value) == "planets.xlsx: this Excel workbook expands to more than 1 MB of text; it was not added."
    assert len(load_document(xlsx_listing_one_sheet([["planet"], ["Mars"]], 3), "three.xlsx").sections) == 3


def test_a_long_csv_header_repeated_on_every_row_is_refused() -> None:
    header = "h" * 20_000
    data = (f"{header},{header}\n" + "1,2\n" * 100).encode()  # 40 KB that would write 4 MB
    with pytest.raises(DocumentParseError, match=r"^wide\.csv: this CSV file expands to more than 1 MB of text"):
        load_document(data, "wide.csv", max_unpacked_bytes=1 * MB)


def test_a_sheet_declaring_a_huge_size_is_read_as_wide_as_its_cells() -> None:
    """A declared A1:XFD100 would pad each row to 16,384 cells, past a 1 MB budget of visits."""
    data = xlsx_bytes({"S": [["planet", "moons"], ["Mars", 2]]})
    sheet = "xl/worksheets/sheet1.xml"
    xml = read_member(data, sheet)
    data = replace_members(data, {sheet: xml.replace('<dimension ref="A1:B2"/>', '<dimension ref="A1:XFD100"/>')})
    document = load_document(data, "moons.xlsx", max_unpacked_bytes=1 * MB)
    assert document.sections[0].text == "Row 2: planet: Mars; moons: 2"


def test_a_row_past_excels_last_row_is_refused_as_damaged() -> None:
    data = xlsx_sharing_one_string("x", rows=1, columns=1)
    sheet = "xl/worksheets/sheet1.xml"
    xml = read_member(data, sheet)
    data = replace_members(data, {sheet: xml.replace('r="1"', 'r="1048600"').replace('r="A1"', 'r="A1048600"')})
    with pytest.raises(DocumentParseError, match=r"^far\.xlsx is not a readable Excel workbook\.$"):
        load_document(data, "far.xlsx")


@pytest.mark.parametrize(("columns", "rows"), [(2_000_000, 1), (300, 20), (1, 2_000)])
def test_a_merged_word_table_cell_is_read_once(columns: int, rows: int) -> None:
    """python-docx repeats a merged cell for every column and row it covers (or recurses once per row)."""
    data = docx_with_merged_cell("Quarterly totals by region.", columns_spanned=columns, rows_merged=rows)
    document = load_document(data, "totals.docx", max_unpacked_bytes=1 * MB)
    tables = [s.text for s in document.sections if s.heading == "Table"]
    assert tables == ["Quarterly totals by region."]


def test_a_deck_listing_one_slide_many_times_has_it_once() -> None:
    data = pptx_listing_one_slide(("Roadmap", ["Ship the beta in May"], "Ask about pricing."), 500)
    document = load_document(data, "roadmap.pptx", max_unpacked_bytes=1 * MB)
    assert [s.heading for s in document.sections] == ["Slide 1: Roadmap"]
    assert document.pages == 1


def test_speaker_notes_shared_by_many_slides_are_refused_at_the_limit() -> None:
    data = pptx_sharing_one_notes_page("Remember the budget. " * 10_000, slides=6)  # 210 KB x 6
    with pytest.raises(DocumentParseError) as refused:
        load_document(data, "talk.pptx", max_unpacked_bytes=1 * MB)
    assert str(refused.value) == "talk.pptx: this PowerPoint file expands to more than 1 MB of text; it was not added."


_LOAD_UNDER_A_CAP = """
import json, sys
from tests.support.memory_limit import RESULT_MARK, limit_address_space
from tests.support.rag_files import xlsx_sharing_one_string
from webui.rag.loaders import DocumentParseError, load_document

data = xlsx_sharing_one_string("amount " * 150_000, rows=100, columns=40)  # 1 MB x 4,000 cells
limit_address_space(int(sys.argv[1]) * 1024 * 1024)
try:
    load_document(data, "ledger.xlsx", max_unpacked_bytes=int(sys.argv[2]) * 1024 * 1024)
    print(RESULT_MARK + json.dumps("loaded"))
except DocumentParseError as exc:
    print(RESULT_MARK + json.dumps(str(exc)))
"""


def test_the_shared_string_workbook_is_refused_in_a_capped_process() -> None:
    """The finding's 4 KB workbook (8 GB of text as the old loader wrote it) in 300 MB of room."""
    done, result = run_python(_LOAD_UNDER_A_CAP, "300", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(result or "null") == (
        "ledger.xlsx: this Excel workbook expands to more than 40 MB of text; it was not added."
    )


def test_running_out_of_memory_is_not_called_an_unreadable_workbook() -> None:
    """With a limit above the room the process has, memory runs out first; the user is told so."""
    done, result = run_python(_LOAD_UNDER_A_CAP, "300", "100000")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(result or "null") == (
        "ledger.xlsx needs more memory to read than this server has free; it was not added."
    )
