"""Team mode's own screens in Chromium at 1366x768: the login page, alice's Users tab, bob's read-only Models
tab, and the API keys tab where a key's own Revoke button ends it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import RunningApp
from tests.support.team import PASSWORDS, team_app
from tests.support.ui import log_in

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    with team_app(tmp_path_factory.mktemp("team-screens"), smollm_path) as app:
        yield app


@pytest.fixture()
def laptop(browser) -> Iterator[object]:
    """A fresh browser context (its own login) with a laptop's window."""
    context = browser.new_context(viewport=LAPTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


def models_with(app: RunningApp, key: str) -> int:
    return httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def make_key(page, label: str, before: str = "") -> str:
    """Make a key in the API keys tab; the new one, once the box shows a key other than ``before``."""
    page.get_by_label("Label (what the key is for)").fill(label)
    page.get_by_role("button", name="Make a new key").click()
    page.wait_for_function("(before) => { const box = document.querySelector('#api-keys-new textarea, "
                           "#api-keys-new input'); return box?.value.startsWith('sk-local-') && box.value !== before; }",
                           arg=before)
    return page.locator("#api-keys-new").locator("textarea, input").input_value()


def wait_for_text(page, selector: str, text: str) -> None:
    """Until the element shows ``text`` (a table is filled after the tab opens)."""
    page.wait_for_function("([selector, text]) => document.querySelector(selector)?.innerText.includes(text)",
                           arg=[selector, text])


def key_id_of(key: str) -> str:
    return key.removeprefix("sk-local-").split("-")[0]


def test_the_login_page_names_the_app_and_its_fields_in_the_pages_theme(laptop, team, page_screenshots) -> None:
    laptop.goto(team.url)
    laptop.get_by_role("heading", name="Local LLM").wait_for()
    assert laptop.locator("label").all_inner_texts() == ["User name", "Password"], "the form's words, not Gradio's"
    login_button = laptop.get_by_role("button", name="Login")
    login_colour = login_button.evaluate("b => getComputedStyle(b).backgroundColor")
    laptop.screenshot(path=str(page_screenshots / "team-login-1366x768.png"))
    log_in(laptop, team.url, "alice", PASSWORDS["alice"])
    send_colour = laptop.get_by_role("button", name="Send").evaluate("b => getComputedStyle(b).backgroundColor")
    assert login_colour == send_colour, "the login page wears the page's theme"


def test_alices_users_table_is_filled_when_the_users_tab_opens(laptop, team, page_screenshots) -> None:
    log_in(laptop, team.url, "alice", PASSWORDS["alice"])
    laptop.get_by_role("tab", name="Users").click()
    table = laptop.locator("#users-table")
    wait_for_text(laptop, "#users-table", "carol")
    assert all(name in table.inner_text() for name in ("alice", "bob", "carol", "admin"))
    laptop.screenshot(path=str(page_screenshots / "team-users-1366x768.png"))


def test_bobs_models_tab_lists_the_models_read_only_and_says_who_can_change_them(
        laptop, team, smollm_path, page_screenshots) -> None:
    log_in(laptop, team.url, "bob", PASSWORDS["bob"])
    laptop.get_by_role("tab", name="Models").click()
    wait_for_text(laptop, "#models-shared-table", smollm_path.name)
    assert "● in use" in laptop.locator("#models-shared-table").inner_text()
    assert "Only an admin can load, download or change them: ask alice." in laptop.locator(
        "#models-shared-note").inner_text()
    assert not laptop.get_by_role("button", name="Load", exact=True).is_visible()
    assert not laptop.locator("#models-table").is_visible()
    laptop.screenshot(path=str(page_screenshots / "team-models-bob-1366x768.png"))


def test_a_key_revoked_by_its_button_leaves_the_table_and_stops_working(browser, team, page_screenshots) -> None:
    bob_context, alice_context = browser.new_context(viewport=LAPTOP), browser.new_context(viewport=LAPTOP)
    try:
        bob, alice = bob_context.new_page(), alice_context.new_page()
        log_in(bob, team.url, "bob", PASSWORDS["bob"])
        bob.get_by_role("tab", name="API keys").click()
        editor = make_key(bob, "my editor")
        laptop_key = make_key(bob, "my laptop", before=editor)
        assert models_with(team, editor) == 200 and models_with(team, laptop_key) == 200
        rows = bob.locator("#api-keys-table")
        rows.get_by_text("my laptop").wait_for()

        bob.locator(f"#api-key-revoke-{key_id_of(editor)}").click()  # bob's own key, by its row's button
        bob.locator("#api-keys-result").get_by_text(f"Revoked key {key_id_of(editor)}").wait_for()
        rows.get_by_text("my editor").wait_for(state="detached")
        assert models_with(team, editor) == 401 and models_with(team, laptop_key) == 200
        bob.screenshot(path=str(page_screenshots / "team-api-keys-bob-1366x768.png"))

        log_in(alice, team.url, "alice", PASSWORDS["alice"])  # an admin sees everyone's keys, with their owner
        alice.get_by_role("tab", name="API keys").click()
        listed = alice.locator("#api-keys-table")
        listed.get_by_text("my laptop").wait_for()
        assert "Owner" in listed.inner_text() and "bob" in listed.inner_text()
        alice.locator(f"#api-key-revoke-{key_id_of(laptop_key)}").click()
        listed.get_by_text("my laptop").wait_for(state="detached")
        assert models_with(team, laptop_key) == 401
        alice.screenshot(path=str(page_screenshots / "team-api-keys-alice-1366x768.png"))
    finally:
        bob_context.close()
        alice_context.close()
