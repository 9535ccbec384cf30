"""Uploads of a few kilobytes that expand to gigabytes when read (security finding 3).

Through the document service, as the page and the API call it, with real Chroma and MiniLM, in a
child process whose address space is capped 400 MB above what it maps once the models are
loaded: the old loaders ran out of memory there, or would have sent a server to its OOM killer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.memory_limit import run_python
from tests.support.rag_files import docx_with_merged_cell, epub_bytes, pptx_listing_one_slide, xlsx_sharing_one_string

pytestmark = pytest.mark.slow

_INGEST_UNDER_A_CAP = """
import json, sys
from pathlib import Path
from tests.support.memory_limit import RESULT_MARK, limit_address_space
from webui.auth import User
from webui.config import Settings
from webui.services.documents import DocumentService

data_dir, warm_up, *files = (Path(arg) for arg in sys.argv[1:])
service = DocumentService(Settings(data_dir=data_dir, max_upload_mb=10))
service.create(User(name="alice", is_admin=False), "home")
service.ingest("alice", "home", [warm_up])  # the embedding model and Chroma load before the cap
limit_address_space(400 * 1024 * 1024)
outcomes = service.ingest("alice", "home", files)
print(RESULT_MARK + json.dumps({
    "outcomes": {o.file_name: [o.status, o.message, o.chunks] for o in outcomes},
    "documents": [d.file_name for d in service.documents("alice", "home")],
}))
"""

CHAPTER = "The ship sails north along the coast and anchors in the fjord at dusk. " * 500  # 36 KB


def test_expanding_office_files_and_books_are_refused_or_read_once_in_capped_memory(
    data_dir: Path, tmp_path: Path
) -> None:
    files = {
        # The finding's two files: 4,000 cells pointing to one 1 MB string (8 GB of text), and a
        # spine listing one 36 KB chapter 60,000 times (2 GB of chapters).
        "ledger.xlsx": xlsx_sharing_one_string("amount " * 150_000, rows=100, columns=40),
        "log.epub": epub_bytes([("Log", CHAPTER)], spine=[1] * 60_000),
        "log-once.epub": epub_bytes([("Log", CHAPTER)]),
        # A 4 KB table cell spanning two million columns (8 GB); one 36 KB slide listed 60,000 times.
        "totals.docx": docx_with_merged_cell("Quarterly totals by region. " * 150, columns_spanned=2_000_000),
        "talk.pptx": pptx_listing_one_slide(("Voyage", [CHAPTER], ""), 60_000),
    }
    paths = []
    for name, data in files.items():
        assert len(data) < 2 * 1024 * 1024, f"{name} is a small upload"
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    warm_up = tmp_path / "warm-up.txt"
    warm_up.write_text("Loads the embedding model and Chroma before the address space is capped.\n")

    done, result = run_python(_INGEST_UNDER_A_CAP, str(data_dir), str(warm_up), *paths, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    assert result is not None, done.stderr[-3000:]
    outcomes = json.loads(result)["outcomes"]
    assert outcomes["ledger.xlsx"][:2] == [
        "failed", "ledger.xlsx: this Excel workbook expands to more than 40 MB of text; it was not added."
    ]
    for name in ("log.epub", "log-once.epub", "totals.docx", "talk.pptx"):
        assert outcomes[name][0] == "added", outcomes[name]
    assert outcomes["log.epub"][2] == outcomes["log-once.epub"][2], "the repeated chapter is indexed once"
    assert sorted(json.loads(result)["documents"]) == [
        "log-once.epub", "log.epub", "talk.pptx", "totals.docx", "warm-up.txt"
    ]
