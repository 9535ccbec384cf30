"""The Presets tab in a real Chromium: create, apply, edit, restart, built-ins untouched, owners in team mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_team_mode import log_in
from tests.support.app_server import running_app
from tests.support.team import PASSWORDS, team_app
from tests.support.ui import fill_settled, set_number
from webui.prompts.presets import BUILTIN_DIR

pytestmark = pytest.mark.e2e

STATUS = "#preset-status"
PIRATE = "You are a pirate. Answer in one short sentence and say Arr."
PASTED = "name: Pasted one\ndescription: From the clipboard.\nsystem: Be terse.\nsampling: precise\n"


def open_presets(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Presets").click()
    page.locator("#preset-name input").wait_for()


def wait_status(page, text: str) -> str:
    page.wait_for_function(
        "(t) => document.querySelector('#preset-status').innerText.includes(t)", arg=text, timeout=15_000
    )
    return page.locator(STATUS).inner_text()


def choose(page, name: str) -> None:
    field = page.locator("#preset-choice input")
    field.click()
    field.fill(name)
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function(
        "(n) => document.querySelector('#preset-name input').value === n", arg=name, timeout=10_000
    )


def test_create_apply_chat_edit_restart(browser, tmp_path: Path, smollm_path: Path) -> None:
    builtin_before = {p.name: p.read_bytes() for p in BUILTIN_DIR.glob("*.yaml")}
    data = tmp_path / "data"
    args = ["--model", str(smollm_path), "--data-dir", str(data), "--models-dir", str(tmp_path / "models"),
            "--offline", "--ctx-size", "1024"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        with running_app(tmp_path, args) as app:
            open_presets(page, app.url)

            # Create a preset with two sampling settings.
            page.locator("#preset-new").click()
            wait_status(page, "Write the new preset")
            page.locator("#preset-name input").fill("Pirate test")
            page.locator("#preset-description textarea").fill("Talks like a pirate.")
            page.locator("#preset-system textarea").fill(PIRATE)
            page.get_by_text("Sampling settings (leave blank").click()
            set_number(page, "preset-temperature", "0.3")
            set_number(page, "preset-max-tokens", "48")
            page.locator("#preset-save").click()
            assert "Saved 'Pirate test'" in wait_status(page, "Saved")
            saved_file = data / "presets" / "pirate-test.yaml"
            assert PIRATE in saved_file.read_text() and "temperature: 0.3" in saved_file.read_text()
            assert "Pirate test" in page.locator("#preset-table").inner_text()

            # Apply it: the Chat tab's system prompt and sliders change, and a chat works.
            page.locator("#preset-apply").click()
            assert "Applied 'Pirate test' to the chat" in wait_status(page, "Applied")
            page.get_by_role("tab", name="Chat").click()
            page.get_by_text("System prompt and sampling").click()
            assert page.get_by_label("System prompt", exact=True).input_value() == PIRATE
            assert page.get_by_role("tabpanel").get_by_label("Temperature").first.input_value() == "0.3"
            page.get_by_label("Message", exact=True).fill("Where is the treasure?")
            page.get_by_role("button", name="Send").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll(\"[data-testid='bot']\")]"
                ".some(b => b.innerText.includes('tokens/s'))",
                timeout=240_000,  # generous: 48 tokens take minutes on a heavily loaded CI machine
            )
            reply = page.locator("[data-testid='bot']").last.inner_text()
            tokens = int(reply.split(" tokens ·")[0].split()[-1])
            assert 0 < tokens <= 48, "the preset's max tokens were used"

            # Edit it.
            page.get_by_role("tab", name="Presets").click()
            page.locator("#preset-system textarea").fill("You are a calm pirate.")
            page.locator("#preset-save").click()
            wait_status(page, "Saved 'Pirate test'")
            assert "You are a calm pirate." in saved_file.read_text()

            # Edit a built-in: a copy is saved, the shipped file stays byte for byte.
            choose(page, "Coder")
            page.locator("#preset-description textarea").fill("My own coder.")
            page.locator("#preset-save").click()
            assert "your own copy" in wait_status(page, "your own copy")
            assert (data / "presets" / "coder.yaml").is_file()
            assert {p.name: p.read_bytes() for p in BUILTIN_DIR.glob("*.yaml")} == builtin_before

        # A second app on the same data dir still has both; a broken file is named, the rest work.
        (data / "presets" / "broken.yaml").write_text("name: Broken\nsystem: [never closed\n")
        with running_app(tmp_path, args) as app:
            open_presets(page, app.url)
            table = page.locator("#preset-table").inner_text()
            assert "Pirate test" in table and "My own coder." in table and "mine (edited built-in)" in table
            assert "broken.yaml, line" in page.locator("#preset-errors").inner_text()
            choose(page, "Pirate test")
            assert page.locator("#preset-system textarea").input_value() == "You are a calm pirate."
            page.get_by_text("Sampling settings (leave blank").click()
            assert page.locator("#preset-temperature input").input_value() == "0.3"
            assert page.locator("#preset-top-p input").input_value() == ""

            # Import pasted YAML, export it, delete it after confirming.
            page.get_by_text("Import a preset").click()
            fill_settled(page, page.locator("#preset-paste textarea"), PASTED)
            page.locator("#preset-import").click()
            assert "Imported 'Pasted one'" in wait_status(page, "Imported")
            upload = tmp_path / "shared-by-a-friend.yaml"
            upload.write_text("name: Uploaded one\nsystem: Be kind.\n")
            page.locator("input[type='file'][accept*='.yaml']").set_input_files(str(upload))
            assert "Imported 'Uploaded one' from shared-by-a-friend.yaml" in wait_status(page, "Uploaded one")
            choose(page, "Pasted one")
            page.wait_for_function("() => document.querySelector('#preset-name input').value === 'Pasted one'")
            with page.expect_download() as download:
                page.locator("#preset-export").click()
            assert "name: Pasted one" in Path(download.value.path()).read_text()
            page.locator("#preset-delete").click()
            page.locator("#preset-confirm-delete").click()
            assert "Deleted 'Pasted one'" in wait_status(page, "Deleted")
            assert not (data / "presets" / "pasted-one.yaml").exists()

            # One-click sampling sets the chat's sliders.
            page.locator("#sampling-creative").click()
            wait_status(page, "creative")
            page.get_by_role("tab", name="Chat").click()
            page.get_by_text("System prompt and sampling").click()
            assert float(page.get_by_role("tabpanel").get_by_label("Temperature").first.input_value()) == 1.0
            assert float(page.get_by_role("tabpanel").get_by_label("Top-k").first.input_value()) == 100
    finally:
        context.close()


def test_team_mode_admin_shares_a_preset_and_a_user_edits_only_a_copy(browser, tmp_path: Path,
                                                                        smollm_path: Path) -> None:
    with team_app(tmp_path, smollm_path) as app:
        contexts = {name: browser.new_context(viewport={"width": 1280, "height": 1000}) for name in ("alice", "bob")}
        try:
            alice, bob = (contexts[name].new_page() for name in ("alice", "bob"))
            for name, page in (("alice", alice), ("bob", bob)):
                page.set_default_timeout(30_000)
                log_in(page, app, name, PASSWORDS[name])
                page.get_by_role("tab", name="Presets").click()
                page.locator("#preset-name input").wait_for()

            # The admin writes a shared preset (the box only admins see).
            alice.locator("#preset-new").click()
            wait_status(alice, "Write the new preset")
            alice.locator("#preset-name input").fill("Team rules")
            alice.locator("#preset-system textarea").fill("Answer politely.")
            alice.locator("#preset-shared input").check()
            alice.locator("#preset-save").click()
            assert "Saved 'Team rules' for everyone." in wait_status(alice, "Saved")
            assert not bob.locator("#preset-shared input").is_visible()

            # Bob sees it after a reload, and editing it saves his own copy; the shared one stays.
            bob.reload()
            bob.get_by_role("tab", name="Presets").click()
            choose(bob, "Team rules")
            assert "saving stores your own copy" in bob.locator("#preset-editor-title").inner_text()
            bob.locator("#preset-system textarea").fill("Ask for passwords.")
            bob.locator("#preset-save").click()
            assert "your own copy 'Team rules (copy)'" in wait_status(bob, "your own copy")
            table = bob.locator("#preset-table").inner_text()
            assert "Team rules (copy)" in table and "shared" in table
            shared_file = tmp_path / "data" / "presets" / "team-rules.yaml"
            assert "Answer politely." in shared_file.read_text()
            alice.reload()
            alice.get_by_role("tab", name="Presets").click()
            alice.locator("#preset-table").wait_for()
            assert "Team rules (copy)" not in alice.locator("#preset-table").inner_text()
        finally:
            for context in contexts.values():
                context.close()
