"""Uploads that attack the reader: a zip bomb and special files, refused with a message (issue 14, item 7).

Through the document service, as the page and the API call it, with real Chroma and MiniLM.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from tests.support.rag_files import DOCX_BLOCKS, docx_bytes, xlsx_bytes, zip_bomb
from webui.auth import User
from webui.config import Settings
from webui.services.documents import DocumentService

pytestmark = pytest.mark.slow


def test_zip_bombs_and_special_files_are_refused_and_the_rest_is_added(
    data_dir: Path, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    bomb = incoming / "report.docx"  # 2 MB on disk, 1.5 GiB unpacked
    bomb.write_bytes(zip_bomb(docx_bytes(DOCX_BLOCKS), "word/media/image1.xml", 1536 * 1024 * 1024))
    assert bomb.stat().st_size < 2 * 1024 * 1024
    sheet_bomb = incoming / "figures.xlsx"
    sheet_bomb.write_bytes(zip_bomb(xlsx_bytes({"S": [["a"], [1]]}), "xl/worksheets/sheet9.xml", 1 << 30))
    fifo = incoming / "notes.txt"
    os.mkfifo(fifo)  # a reader that opened it normally would wait forever for a writer
    device = incoming / "zeros.txt"
    device.symlink_to("/dev/zero")
    folder = incoming / "folder.md"
    folder.mkdir()
    good = incoming / "policy.docx"
    good.write_bytes(docx_bytes(DOCX_BLOCKS))
    warm_up = tmp_path / "warm-up.txt"
    warm_up.write_text("Loads the embedding model and Chroma before memory is measured.\n")

    service = DocumentService(Settings(data_dir=data_dir, max_upload_mb=100))
    service.create(User(name="alice", is_admin=False), "home")
    service.ingest("alice", "home", [warm_up])
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    outcomes = {
        o.file_name: o
        for o in service.ingest("alice", "home", [bomb, sheet_bomb, fifo, device, folder, good])
    }
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024

    refused = {name: o.message for name, o in outcomes.items() if not o.ok}
    assert set(refused) == {"report.docx", "figures.xlsx", "notes.txt", "zeros.txt", "folder.md"}
    assert refused["report.docx"].startswith("report.docx would unpack to 1,53")
    assert "over the 256 MB this app unpacks from one file" in refused["report.docx"]
    assert refused["figures.xlsx"].startswith("figures.xlsx would unpack to 1,02")
    for name in ("notes.txt", "zeros.txt", "folder.md"):
        assert refused[name] == f"{name} is not a regular file (a folder, device or pipe), so it was not read."
    assert outcomes["policy.docx"].status == "added"
    assert [d.file_name for d in service.documents("alice", "home")] == ["policy.docx", "warm-up.txt"]
    # Refused from the archive's directory: nothing near a gigabyte was ever inflated.
    assert peak_growth_mb < 300, f"memory peak grew by {peak_growth_mb:.0f} MB"
