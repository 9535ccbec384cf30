"""Retrieval settings in a real Chromium: a collection's k is saved, refused when out of range, and kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import running_app
from tests.support.ui import create_collection, set_number

pytestmark = pytest.mark.e2e


def test_a_collection_keeps_its_retrieval_settings_across_a_reload(
    tmp_path: Path, smollm_path: Path, page
) -> None:
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir",
            str(tmp_path / "models"), "--ctx-size", "2048"]
    with running_app(tmp_path, args) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Documents").click()
        create_collection(page, "Manuals")

        page.locator("#retrieval-settings").get_by_text("Retrieval settings").click()
        set_number(page, "rs-overlap", "150")
        page.get_by_role("button", name="Save retrieval settings").click()
        page.get_by_text("Overlap must be between 0 and half the chunk size").wait_for()

        set_number(page, "rs-overlap", "20")
        set_number(page, "rs-k", "7")
        page.get_by_role("button", name="Save retrieval settings").click()
        page.get_by_text("Saved the retrieval settings of 'Manuals'.").wait_for()

        page.reload()
        page.get_by_role("tab", name="Documents").click()
        page.locator("#doc-summary", has_text="Manuals").wait_for()
        page.locator("#retrieval-settings").get_by_text("Retrieval settings").click()
        page.wait_for_function(
            "() => document.querySelector('#rs-k input').value === '7'"
            " && document.querySelector('#rs-overlap input').value === '20'",
            timeout=30_000,
        )
