"""Loaders: each format yields its text with pages or headings; bad input gets one clear sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.rag_files import (
    DOCX_BLOCKS,
    PDF_PAGES,
    docx_bytes,
    encrypted_pdf_bytes,
    epub_bytes,
    manual_with_running_lines,
    pdf_bytes,
    pptx_bytes,
    scanned_pdf_bytes,
    write_good_files,
    xlsx_bytes,
    zip_bomb,
)
from webui.rag.loaders import (
    MAX_UNPACKED_BYTES,
    SUPPORTED_EXTENSIONS,
    DocumentParseError,
    decode_text,
    drop_running_lines,
    load_document,
    read_document_file,
    sanitize_file_name,
    unpacked_limit,
)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_good_files(tmp_path_factory.mktemp("docs"))


def _load(path: Path):
    return load_document(path.read_bytes(), path.name)


def test_pdf_text_keeps_page_numbers(good_files: dict[str, Path]) -> None:
    document = _load(good_files["pdf"])
    assert document.pages == 2
    assert [s.page for s in document.sections] == [1, 2]
    assert "tomato seedlings" in document.sections[0].text
    assert "twelve degrees Celsius" in document.sections[1].text


def test_pdf_encrypted_with_empty_password_opens() -> None:
    data = encrypted_pdf_bytes(pdf_bytes(PDF_PAGES), user_password="", owner_password="owner")
    document = load_document(data, "permissions-only.pdf")
    assert "propane" in document.sections[1].text


def test_pdf_with_a_password_is_refused_clearly() -> None:
    data = encrypted_pdf_bytes(pdf_bytes(PDF_PAGES), user_password="secret", owner_password="o")
    with pytest.raises(DocumentParseError, match="locked.pdf is password-protected"):
        load_document(data, "locked.pdf")


def test_damaged_pdf_is_refused_clearly() -> None:
    with pytest.raises(DocumentParseError, match="broken.pdf is not a readable PDF"):
        load_document(pdf_bytes(PDF_PAGES)[:150], "broken.pdf")


def test_pdf_without_text_says_it_may_be_scanned() -> None:
    with pytest.raises(DocumentParseError, match=r"scan.pdf: this PDF has no text \(scanned\?\).*OCR"):
        load_document(pdf_bytes([[], []]), "scan.pdf")


def test_scanned_pdf_with_only_page_numbers_is_not_indexed_silently() -> None:
    with pytest.raises(DocumentParseError, match=r"this PDF has no text \(scanned\?\)"):
        load_document(scanned_pdf_bytes(5), "scan.pdf")
    with pytest.raises(DocumentParseError, match=r"this PDF has no text \(scanned\?\)"):
        load_document(scanned_pdf_bytes(1, page_numbers=False), "one-page-scan.pdf")


def test_running_headers_and_footers_are_dropped_and_pages_kept() -> None:
    pages = manual_with_running_lines(chapters=3, pages_per_chapter=4)
    document = load_document(pdf_bytes(pages), "handbook.pdf")

    assert [s.page for s in document.sections] == list(range(1, 13))
    text = "\n".join(s.text for s in document.sections)
    assert "Function reference" not in text and "Pump Handbook" not in text
    assert document.sections[4].text == (
        "The function number 35 returns the highest value of register 5.\n"
        "Call it at most 7 times per second."
    )


def test_running_line_detection_keeps_body_text() -> None:
    even_odd = [
        ["Pump Handbook" if n % 2 else "Chapter 2: Valves", f"Body line {n} about valves.", f"{n}"]
        for n in range(1, 9)
    ]
    kept = drop_running_lines(even_odd)
    assert kept == [[f"Body line {n} about valves."] for n in range(1, 9)]
    # The same sentence in the middle of pages is content, and two pages are too few to judge.
    middle = [[f"Step {n}", "Open the lid.", "Always close the valve.", "Wait.", f"End {n}"] for n in range(1, 4)]
    assert all("Always close the valve." in page for page in drop_running_lines(middle))
    assert drop_running_lines([["Title", "a"], ["Title", "b"]]) == [["Title", "a"], ["Title", "b"]]


def test_docx_sections_follow_headings(good_files: dict[str, Path]) -> None:
    document = _load(good_files["docx"])
    by_heading = {s.heading: s.text for s in document.sections}
    assert "thirty days" in by_heading["Expense claims"]
    assert "travel portal" in by_heading["Travel policy"]


def test_docx_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(DocumentParseError, match="fake.docx is not a readable Word document"):
        load_document(b"just some text, not a zip", "fake.docx")


def test_docx_text_before_any_heading_is_kept() -> None:
    document = load_document(docx_bytes([(None, ["A preamble line."])]), "plain.docx")
    assert document.sections[0].heading is None
    assert document.sections[0].text == "A preamble line."


def test_markdown_headings_become_a_path(good_files: dict[str, Path]) -> None:
    document = _load(good_files["md"])
    headings = [s.heading for s in document.sections]
    assert headings == ["Bicycle maintenance > Chain care", "Bicycle maintenance > Tyres"]
    assert "seven bar" in document.sections[1].text


def test_html_drops_scripts_and_navigation(good_files: dict[str, Path]) -> None:
    document = _load(good_files["html"])
    text = "\n".join(s.text for s in document.sections)
    assert "tracking" not in text and "Home | About" not in text
    hours = next(s for s in document.sections if s.heading == "Sourdough bakery > Opening hours")
    assert "closes on Sundays" in hours.text


SPHINX_PAGE = b"""<!doctype html><html><head><title>venv - Python docs</title></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><ul><li>index</li><li>modules |</li>
<li>next |</li><li>previous |</li></ul></div>
<div class="document"><div class="body" role="main">
<section><h1>venv<a class="headerlink" href="#venv">\xc2\xb6</a></h1>
<p>Creates <code class="literal"><span class="pre">virtual</span> <span class="pre">environments</span></code>
for <a href="x"><code>tomllib.load()</code></a>.</p>
<pre><span class="n">tomllib</span><span class="o">.</span><span class="n">load</span>(f)
second line</pre>
<section><h2>Options</h2>
<dl class="std option"><dt id="a"><span class="pre">--clear</span></dt>
<dd><p>Delete the contents of the environment directory.</p></dd>
<dt><span class="pre">-h</span></dt><dt><span class="pre">--help</span></dt><dd><p>Show help.</p></dd></dl>
<p>Text after the list.</p>
</section></section></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><p>venv</p></div>
<div class="footer">&copy; Copyright 2001-2023</div>
</body></html>"""


def test_html_keeps_only_the_main_content_under_heading_paths() -> None:
    """A documentation page's menus, sidebar and footer are dropped; each option is its own section."""
    document = load_document(SPHINX_PAGE, "venv.html")
    text = "\n".join(s.text for s in document.sections)
    for junk in ("Navigation", "previous", "Table of Contents", "Copyright", "\u00b6"):
        assert junk not in text
    assert "Creates virtual environments for tomllib.load()." in text  # inline tags add no spaces
    assert "tomllib.load(f)\nsecond line" in text  # <pre> keeps its lines and its exact code
    by_heading = {s.heading: s.text for s in document.sections}
    assert by_heading["venv > Options > --clear"].startswith("--clear\nDelete the contents")
    assert by_heading["venv > Options > -h, --help"] == "-h\n--help\nShow help."
    assert by_heading["venv > Options"].endswith("Text after the list.")


def test_csv_rows_carry_their_column_names(good_files: dict[str, Path]) -> None:
    text = _load(good_files["csv"]).sections[0].text
    assert "Row 3: planet: Jupiter; moons: 95; notable: largest planet" in text


def test_semicolon_csv_is_sniffed() -> None:
    text = load_document(b"name;city\nAda;London\n", "people.csv").sections[0].text
    assert text == "Row 2: name: Ada; city: London"


def test_text_with_nul_bytes_is_refused_as_binary() -> None:
    with pytest.raises(DocumentParseError, match="notes.txt looks like a binary file"):
        load_document(b"PK\x03\x04\x00\x00binary", "notes.txt")


def test_text_full_of_control_bytes_is_refused_as_binary() -> None:
    with pytest.raises(DocumentParseError, match="looks like a binary file"):
        decode_text(bytes(range(1, 32)) * 20, "noise.txt")


def test_text_in_windows_1252_and_with_bom_decodes() -> None:
    assert decode_text("café".encode("cp1252"), "a.txt") == "café"
    assert decode_text("\ufeffhello".encode(), "b.txt") == "hello"
    assert decode_text("über".encode("utf-16"), "c.txt") == "über"


def test_empty_file_is_refused() -> None:
    with pytest.raises(DocumentParseError, match="empty.txt is empty"):
        load_document(b"", "empty.txt")


def test_whitespace_only_file_has_no_text() -> None:
    with pytest.raises(DocumentParseError, match="blank.md contains no text"):
        load_document(b" \n\n\t\n", "blank.md")


def test_unknown_extension_lists_what_is_supported() -> None:
    with pytest.raises(DocumentParseError, match=r"type '\.exe' are not supported.*\.pdf"):
        load_document(b"MZ", "setup.exe")
    assert {".pdf", ".docx", ".txt", ".md", ".html", ".csv", ".epub", ".pptx", ".xlsx"} <= set(
        SUPPORTED_EXTENSIONS
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("..", "unnamed"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("notes <draft>|?.md", "notes _draft___.md"),
        ("résumé.docx", "résumé.docx"),
        ("", "unnamed"),
    ],
)
def test_file_names_are_sanitized(raw: str, expected: str) -> None:
    assert sanitize_file_name(raw) == expected


def test_long_file_names_keep_their_extension() -> None:
    name = sanitize_file_name("x" * 400 + ".pdf")
    assert name.endswith(".pdf") and len(name) <= 150


def test_pptx_slides_become_sections_with_titles_and_notes() -> None:
    data = pptx_bytes([
        ("Quarterly results", ["Revenue grew by nine percent.", "Costs stayed flat."], ""),
        ("Next steps", ["Open the Lisbon office in May."], "Mention the hiring freeze."),
    ])
    document = load_document(data, "deck.pptx")
    assert document.pages == 2
    assert [s.heading for s in document.sections] == ["Slide 1: Quarterly results", "Slide 2: Next steps"]
    assert document.sections[0].text == "Quarterly results\nRevenue grew by nine percent.\nCosts stayed flat."
    assert "Notes: Mention the hiring freeze." in document.sections[1].text


def test_xlsx_sheets_keep_their_names_and_column_headers() -> None:
    data = xlsx_bytes({
        "Planets": [["planet", "moons"], ["Mars", 2], [None, None], ["Saturn", 146]],
        "Empty": [],
        "Notes": [["Only a header"]],
    })
    document = load_document(data, "space.xlsx")
    by_heading = {s.heading: s.text for s in document.sections}
    assert by_heading == {
        "Sheet Planets": "Row 2: planet: Mars; moons: 2\nRow 4: planet: Saturn; moons: 146",
        "Sheet Notes": "Only a header",
    }


def test_epub_chapters_follow_the_spine_without_the_table_of_contents() -> None:
    data = epub_bytes([("Departure", "The ship left Bergen at dawn."), ("Arrival", "Reykjavik came into view.")])
    document = load_document(data, "voyage.epub")
    assert [s.heading for s in document.sections] == ["Departure", "Arrival"]
    assert "Bergen at dawn" in document.sections[0].text
    assert "Contents" not in "\n".join(s.text for s in document.sections)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("deck.pptx", "deck.pptx is not a readable PowerPoint file"),
        ("space.xlsx", "space.xlsx is not a readable Excel workbook"),
        ("voyage.epub", "voyage.epub is not a readable EPUB book"),
    ],
)
def test_damaged_office_files_and_books_are_refused_clearly(name: str, message: str) -> None:
    with pytest.raises(DocumentParseError, match=message):
        load_document(b"PK\x03\x04 not really a zip", name)
    not_this_kind = docx_bytes(DOCX_BLOCKS)  # a valid zip, but a Word file
    with pytest.raises(DocumentParseError, match=message):
        load_document(not_this_kind, name)


@pytest.mark.parametrize("name", ["bomb.docx", "bomb.xlsx", "bomb.pptx", "bomb.epub"])
def test_a_zip_bomb_is_refused_from_its_directory_without_inflating(name: str) -> None:
    data = zip_bomb(docx_bytes(DOCX_BLOCKS), "word/media/padding.xml", 1536 * 1024 * 1024)
    assert len(data) < 2 * 1024 * 1024
    # The bomb's CRC is wrong: a loader that inflated it would fail differently, and slowly.
    with pytest.raises(DocumentParseError, match=rf"{name} would unpack to 1,53\d MB, over the 256 MB"):
        load_document(data, name)


def test_the_unpack_limit_follows_the_upload_limit_up_to_a_cap() -> None:
    assert unpacked_limit(10 * 1024 * 1024) == 40 * 1024 * 1024
    assert unpacked_limit(10_000 * 1024 * 1024) == MAX_UNPACKED_BYTES
    small = zip_bomb(docx_bytes(DOCX_BLOCKS), "word/media/padding.xml", 50 * 1024 * 1024)
    with pytest.raises(DocumentParseError, match=r"would unpack to 5\d MB, over the 40 MB"):
        load_document(small, "report.docx", max_unpacked_bytes=unpacked_limit(10 * 1024 * 1024))


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # reading it would wait forever for a writer
    link = tmp_path / "link.txt"
    link.symlink_to(fifo)
    for path in (fifo, link, tmp_path, Path("/dev/zero")):
        with pytest.raises(DocumentParseError, match="is not a regular file"):
            read_document_file(path, path.name, max_bytes=1024)
    plain = tmp_path / "notes.txt"
    plain.write_bytes(b"x" * 2000)
    with pytest.raises(DocumentParseError, match="over the 0 MB limit"):
        read_document_file(plain, "notes.txt", max_bytes=1024)
    assert read_document_file(plain, "notes.txt", max_bytes=4096) == b"x" * 2000


def test_plain_text_is_split_at_numbered_headings() -> None:
    """Licence-style numbered sections become headed sections; numbered sentences stay text."""
    text = (
        "Example Licence\n\n"
        "1. Definitions.\n\n\"Work\" means the program.\n\n"
        "2. Grant of Patent License. Subject to these terms, you may use the Work.\n"
        "3. If You sue anyone over the Work, this licence ends.\n\n"
        "10.1. Effect of New Versions\nYou may keep using this version."
    ).encode()
    sections = load_document(text, "LICENSE.txt").sections
    assert [s.heading for s in sections] == [
        None, "1. Definitions", "2. Grant of Patent License", "10.1. Effect of New Versions"
    ]
    assert sections[0].text == "Example Licence"
    assert sections[2].text.startswith("2. Grant of Patent License. Subject")
    assert "3. If You sue anyone" in sections[2].text  # a numbered sentence is no heading
    assert [s.heading for s in load_document(b"Just some notes.\nNo headings.", "n.txt").sections] == [None]


def test_help_listing_in_html_is_split_per_option() -> None:
    """An argparse --help block in <pre> gives one section per option, headed by its name."""
    page = (
        "<html><body><main><h1>tool</h1><p>Run it like this:</p><pre>"
        "usage: tool [-h] [--clear] [--prompt PROMPT]\n\n"
        "options:\n"
        "  -h, --help       show this help message and exit\n"
        "  --clear          Delete the contents of the directory if it\n"
        "                   already exists.\n"
        "  --prompt PROMPT  Provides an alternative prompt prefix.\n"
        "</pre><p>After the listing.</p></main></body></html>"
    ).encode()
    sections = load_document(page, "tool.html").sections
    by_heading = {s.heading: s.text for s in sections}
    assert by_heading["tool > --clear"] == "--clear Delete the contents of the directory if it\nalready exists."
    assert by_heading["tool > --prompt PROMPT"].startswith("--prompt PROMPT Provides")
    assert "tool > -h, --help" in by_heading
    assert sections[-1].heading == "tool" and sections[-1].text == "After the listing."


def test_values_listed_in_an_html_entry_are_split_per_value() -> None:
    """An option's values, each opening with a code literal, become sections under the option."""
    page = (
        '<html><body><main><h1>Command line</h1><dl class="std cmdoption"><dt><span>-X</span></dt>'
        "<dd><p>Reserved for implementation-specific options:</p><ul>"
        "<li><p><code><span>-X</span> <span>faulthandler</span></code> to enable faulthandler for crashes;</p></li>"
        "<li><p><code><span>-X</span> <span>dev</span></code>: enable Python Development Mode.</p></li>"
        "</ul><p>It also allows arbitrary values.</p></dd></dl>"
        "<dl><dt>--with-hashes</dt><dd><ul><li><p><code>md5</code>;</p></li><li><p><code>sha1</code>.</p></li></ul></dd></dl>"
        "<dl><dt>MALLOC</dt><dd><ul><li><p><code>default</code>: use the default allocators.</p></li>"
        "<li><p><code>debug</code>: install debug hooks on them.</p></li></ul></dd></dl>"
        "<dl><dt>-P</dt><dd><ul><li><p><code>python -m module</code> command line: prepend nothing</p></li>"
        "<li><p><code>python script.py</code> command line: prepend nothing either</p></li></ul></dd></dl>"
        "<ul><li><p><code>top</code> a list outside any entry stays whole</p></li>"
        "<li><p><code>level</code> as it always did here</p></li></ul></main></body></html>"
    ).encode()
    sections = load_document(page, "cmdline.html").sections
    assert [(s.heading, s.text) for s in sections] == [
        ("Command line", "Command line"),
        ("Command line > -X", "-X\nReserved for implementation-specific options:"),
        ("Command line > -X > -X faulthandler", "-X faulthandler to enable faulthandler for crashes;"),
        ("Command line > -X > -X dev", "-X dev: enable Python Development Mode."),
        ("Command line > -X", "It also allows arbitrary values."),
        ("Command line > --with-hashes", "--with-hashes\nmd5;\nsha1."),  # bare names: no passage each
        ("Command line > MALLOC", "MALLOC"),
        ("Command line > MALLOC > default", "default: use the default allocators."),  # one-word values
        ("Command line > MALLOC > debug", "debug: install debug hooks on them."),
        (  # cases in prose, not values of -P
            "Command line > -P",
            "-P\npython -m module command line: prepend nothing\npython script.py command line: prepend nothing either",
        ),
        ("Command line", "top a list outside any entry stays whole\nlevel as it always did here"),
    ]
