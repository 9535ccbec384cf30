"""The Notebook tab in a real Chromium: raw continuation streams after the text, and Stop stops."""

from __future__ import annotations

import time

import pytest

from tests.support.ui import record_lengths, seen_lengths, set_slider

pytestmark = pytest.mark.e2e

TEXT = "#notebook-text textarea"
STATS = "#notebook-stats"


def open_notebook(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Notebook").click()
    page.locator(TEXT).wait_for()


def test_generate_appends_a_streamed_continuation_to_the_text(page, smollm_app) -> None:
    open_notebook(page, smollm_app.url)
    prompt = "The three primary colors are red,"
    page.locator(TEXT).fill(prompt)
    set_slider(page, "notebook-max-tokens", 40)
    record_lengths(page, f"() => document.querySelector(\"{TEXT}\").value.length")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        f"() => document.querySelector(\"{STATS}\").innerText.includes('tokens/s')", timeout=300_000)
    lengths = seen_lengths(page)
    result = page.locator(TEXT).input_value()
    assert result.startswith(prompt) and len(result.strip()) > len(prompt)
    assert "<|im_start|>" not in result, "no chat template in the notebook"
    assert len({n for n in lengths if n > len(prompt)}) >= 2, "the continuation should stream in"
    tokens = int(page.locator(STATS).inner_text().split(" tokens")[0].split()[-1])
    assert 0 < tokens <= 40


def test_stop_ends_a_long_generation(page, smollm_app) -> None:
    open_notebook(page, smollm_app.url)
    prompt = "Chapter 1. The long journey began on a cold morning, when"
    page.locator(TEXT).fill(prompt)
    set_slider(page, "notebook-max-tokens", 3000)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        f"() => document.querySelector(\"{TEXT}\").value.length > {len(prompt) + 40}", timeout=60_000
    )
    page.locator("#notebook-stop").click()
    page.wait_for_function(
        "() => document.querySelector(\"#notebook-stats\").innerText.includes('stopped')", timeout=60_000
    )
    stopped = page.locator(TEXT).input_value()
    time.sleep(1.0)
    assert page.locator(TEXT).input_value() == stopped, "nothing more arrives after Stop"
    assert stopped.startswith(prompt)
    tokens = int(page.locator(STATS).inner_text().split(" tokens")[0].split()[-1])
    assert 0 < tokens < 3000
