"""Playwright in Chromium against an app started through launcher.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, running_app

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_path() -> str | None:
    """The system Chromium; None lets Playwright use its own browser where that is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def smollm_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    workdir = tmp_path_factory.mktemp("app")
    args = ["--model", str(smollm_path), "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(workdir, args) as app:
        yield app
