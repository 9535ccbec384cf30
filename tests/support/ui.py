"""Small Playwright helpers shared by the browser tests."""

from __future__ import annotations


def set_slider(page, elem_id: str, value: int) -> None:
    """Type a value into a Gradio slider and wait until the page has taken it.

    Typing alone races with the click that follows: under load the slider may not have taken the
    new value yet, so the test waits for its range input to show it.
    """
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    page.wait_for_function(
        f"() => document.querySelector('#{elem_id} input[type=range]').value === '{value}'", timeout=10_000
    )
