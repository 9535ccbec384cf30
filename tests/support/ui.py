"""Small Playwright helpers shared by the browser tests."""

from __future__ import annotations

import re

ATTEMPTS = 5
SETTLE_MS = 400


def _settled(page, script: str) -> bool:
    """True when ``script`` holds now and still holds a moment later."""
    try:
        page.wait_for_function(script, timeout=2_000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: try again
        return False
    page.wait_for_timeout(SETTLE_MS)
    return bool(page.evaluate(script))


def set_slider(page, elem_id: str, value: int) -> None:
    """Type a value into a Gradio slider and make sure the page kept it.

    A component inside an accordion that was just opened may still be mounting and reset a value
    typed into it, so the helper checks that the slider's range input shows the value and still
    does a moment later, and types again if not.
    """
    box = page.locator(f"#{elem_id} input[type=number]")
    check = f"() => document.querySelector('#{elem_id} input[type=range]').value === '{value}'"
    for _ in range(ATTEMPTS):
        box.fill(str(value))
        box.press("Enter")
        box.blur()
        if _settled(page, check):
            return
    raise AssertionError(f"the slider #{elem_id} did not keep the value {value}")


def set_number(page, elem_id: str, value: str) -> None:
    """Type into a Gradio Number field and make sure the page kept it (see set_slider)."""
    box = page.locator(f"#{elem_id} input")
    check = f"() => document.querySelector('#{elem_id} input').value === '{value}'"
    for _ in range(ATTEMPTS):
        box.fill(value)
        box.press("Tab")
        if _settled(page, check):
            return
    raise AssertionError(f"the field #{elem_id} did not keep the value {value}")


def fill_settled(page, box, value: str) -> None:
    """Fill a text box (a locator) and make sure the page kept the text (see set_slider).

    A box inside an accordion that was just opened may still be mounting, and a button clicked right
    after the fill then sent the box's old, empty value (seen in CI: "Listing the files of ''").
    """
    for _ in range(ATTEMPTS):
        box.fill(value)
        box.blur()
        page.wait_for_timeout(SETTLE_MS)
        if box.input_value() == value:
            return
    raise AssertionError(f"the text box did not keep {value!r}")


def record_lengths(page, script: str) -> None:
    """Have the page itself sample ``script``'s value (a text's length) every 10 ms into ``window.seenLengths``.

    Polling from the test saw a streamed reply only once or twice on a loaded machine: each poll is a
    round trip to the browser. Read the samples with ``seen_lengths``.
    """
    page.evaluate(f"() => {{ window.seenLengths = []; setInterval(() => window.seenLengths.push(({script})()), 10); }}")


def seen_lengths(page) -> list[int]:
    """The distinct non-zero lengths ``record_lengths`` saw, in increasing order."""
    return sorted({n for n in page.evaluate("() => window.seenLengths") if n > 0})


def log_in(page, url: str, name: str, password: str) -> None:
    """Sign in on a team-mode app's login page and wait for the chat page."""
    page.goto(url)
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("button", name="Send").wait_for()


# A dropped file shows in the upload box once Gradio has received it; on a loaded machine (a CI run
# with a benchmark beside it) that once took more than 60 s.
UPLOAD_SHOWN_TIMEOUT_MS = 180_000


def upload_files(page, elem_id: str, *paths) -> None:
    """Send files through the upload box ``#elem_id`` and wait until each is listed as uploaded.

    Gradio lists an uploaded file as ``<span class="stem">name</span> <span class="ext">.txt</span>``,
    so the page's text reads "name .txt"; only the brief "Uploading name.txt" indicator holds the name
    whole. Matching the whole name therefore passed only when the wait caught that indicator, and
    failed when the upload finished first. This waits for the finished row instead.
    """
    page.locator(f"#{elem_id} input[type='file']").set_input_files([str(p) for p in paths])
    for path in paths:
        listed = re.compile(rf"^\s*{re.escape(path.stem)}\s*{re.escape(path.suffix)}\s*$")
        try:
            page.locator(f"#{elem_id} td.filename", has_text=listed).wait_for(timeout=UPLOAD_SHOWN_TIMEOUT_MS)
        except Exception:
            # What the page showed instead (an error toast, "Uploading…"), for failures seen only in CI.
            shown = page.evaluate(f"() => [...document.querySelectorAll('#{elem_id}, .toast-body')]"
                                  ".map(e => e.innerText).join(' | ')")
            print(f"the upload of {path.name} was not listed in #{elem_id}; the page had: {shown!r}")
            raise


def create_collection(page, name: str) -> None:
    """Make a document collection from the Documents tab (already open) and wait until it is the one shown."""
    page.get_by_label("New collection name").fill(name)
    page.get_by_role("button", name="Create collection").click()
    page.locator("#doc-summary", has_text=name).wait_for()
