"""Playwright in Chromium against an app started through launcher.py (the browser fixtures live in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp, running_app

@pytest.fixture(scope="module")
def smollm_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    workdir = tmp_path_factory.mktemp("app")
    args = ["--model", str(smollm_path), "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--offline", "--ctx-size", "2048"]
    with running_app(workdir, args) as app:
        yield app


SCREENSHOTS_ENV = "WEBUI_SCREENSHOTS"  # where page screenshots go; default: test-screenshots/ under pytest's basetemp
SCREENSHOTS_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def page_screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder for screenshots a person looks at after the run (its path is printed at the end)."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path_factory.getbasetemp() / "test-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOTS_KEY] = folder
    return folder


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    folder = config.stash.get(SCREENSHOTS_KEY, None)
    if folder is not None and any(folder.iterdir()):
        terminalreporter.write_line(f"page screenshots: {folder}")
