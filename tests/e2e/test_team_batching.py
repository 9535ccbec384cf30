"""Team mode with continuous batching: two people asking at once both see their reply grow at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.app_server import ROOT, running_app
from tests.support.ui import log_in, set_slider

pytestmark = pytest.mark.e2e

PASSWORDS = {"dora": "dora-secret-1", "eli": "eli-secret-22"}
# Each page notes, with the shared wall clock, every moment its newest reply got longer; sampled in
# the browser, so a slow test process (a busy machine) cannot miss the overlap.
RECORD_GROWTH = """() => { window.grew = []; let last = 0; setInterval(() => {
  const r = document.querySelectorAll("[data-testid='bot']");
  const n = r.length ? r[r.length - 1].innerText.length : 0;
  if (n > last) window.grew.push(Date.now());
  last = n; }, 50); }"""
REPLY_DONE = ("() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
              " return r.length && r[r.length-1].innerText.includes('tokens/s'); }")


@pytest.fixture(scope="module")
def batching_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path):
    workdir = tmp_path_factory.mktemp("batching")
    for name, password in PASSWORDS.items():
        result = subprocess.run(
            [sys.executable, str(ROOT / "launcher.py"), "users", "add", name, "--password-stdin",
             "--data-dir", str(workdir / "data")],
            input=password + "\n", text=True, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
    args = ["--listen", "--model", str(smollm_path), "--offline", "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--ctx-size", "1024", "--parallel", "2"]
    with running_app(workdir, args, timeout=600) as app:  # a busy machine starts it slowly
        yield app


def test_two_users_sending_at_once_see_both_replies_grow_at_the_same_time(browser, batching_app) -> None:
    contexts = {name: browser.new_context() for name in PASSWORDS}
    pages = {name: contexts[name].new_page() for name in PASSWORDS}
    try:
        for name, page in pages.items():
            page.set_default_timeout(60_000)
            log_in(page, batching_app.url, name, PASSWORDS[name])
            page.get_by_text("System prompt and sampling").click()
            set_slider(page, "max-tokens", 96)  # long enough to overlap, short enough for a busy machine
            page.get_by_label("Message", exact=True).fill(f"Write a very long story about a lighthouse, {name} here.")
        for page in pages.values():
            page.evaluate(RECORD_GROWTH)
        for page in pages.values():
            page.get_by_role("button", name="Send").click()
        for page in pages.values():
            page.wait_for_function(REPLY_DONE, timeout=300_000)
        dora, eli = (pages[name].evaluate("() => window.grew") for name in PASSWORDS)
        assert len(dora) > 3 and len(eli) > 3, "both replies streamed"
        assert dora[0] < eli[-1] and eli[0] < dora[-1], "each reply grew while the other was still growing"
        close = [t for t in dora if any(abs(t - u) < 500 for u in eli)]
        assert len(close) > 3, "again and again both pages showed new text within half a second"
        for page in pages.values():
            assert "queue" not in page.locator("#chat-notice").inner_text().lower(), "nobody waited in line"
    finally:
        for context in contexts.values():
            context.close()
