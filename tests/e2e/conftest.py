"""Playwright in Chromium against an app started through launcher.py (the browser fixtures live in tests/conftest.py)."""

from __future__ import annotations

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
