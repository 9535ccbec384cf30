"""In Chromium: an admin opening the page is told which damaged data files were kept aside; others are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import running_app
from tests.support.team import PASSWORDS, add_users, team_app
from tests.support.ui import log_in
from webui.api_keys import ApiKeyStore

pytestmark = pytest.mark.e2e


def test_the_page_warns_the_admin_of_files_kept_aside_and_the_warning_stays(tmp_path: Path, smollm_path: Path,
                                                                               page) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "model-settings.json").write_text('{"models": {"a.gguf": {"n_ctx": 64}')  # cut short
    args = ["--model", str(smollm_path), "--data-dir", str(data), "--models-dir", str(tmp_path / "models"),
            "--offline", "--ctx-size", "1024"]
    with running_app(tmp_path, args) as app:  # single-user mode: the local user is the admin
        page.goto(app.url)
        toast = page.locator("[data-testid='toast-body']", has_text="Damaged data files were kept aside")
        toast.wait_for(timeout=60_000)
        text = toast.inner_text()
        assert "model-settings.json.corrupt-" in text and "webui.log says why" in text
        page.wait_for_timeout(12_000)  # longer than an ordinary toast's 10 s
        assert toast.is_visible()


def test_in_team_mode_only_an_admin_is_told(tmp_path: Path, smollm_path: Path, browser) -> None:
    data = tmp_path / "data"
    add_users(data)
    (data / "api-keys.json").write_text("{oops")
    ApiKeyStore(data / "api-keys.json").list()  # read once, as a running app's API would: kept aside
    with team_app(tmp_path, smollm_path) as app:
        seen = {}
        for name in ("bob", "alice"):  # bob first: alice's toast must not be what bob saw
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            log_in(page, app.url, name, PASSWORDS[name])
            toasts = page.locator("[data-testid='toast-body']", has_text="kept aside")
            if name == "alice":
                toasts.first.wait_for()
            else:
                page.wait_for_timeout(5_000)  # the page's load event has run by now
            seen[name] = [t.inner_text() for t in toasts.all()]
            context.close()
    assert seen["bob"] == []
    assert len(seen["alice"]) == 1 and "api-keys.json.corrupt-" in seen["alice"][0]
