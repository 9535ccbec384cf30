"""The page's "API keys" tab: a user makes a key, an API client uses it, the user revokes it."""

from __future__ import annotations

import pytest

from tests.api.conftest import PASSWORDS, Team

openai = pytest.importorskip("openai")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_user_makes_and_revokes_a_key_in_the_page(page, team: Team) -> None:
    page.goto(team.app.url)
    page.get_by_label("User name", exact=True).fill("bob")
    page.get_by_label("Password", exact=True).fill(PASSWORDS["bob"])
    page.get_by_role("button", name="Login").click()
    page.get_by_role("button", name="Send").wait_for()
    page.get_by_role("tab", name="API keys").click()
    assert not page.locator("#api-keys-owner").is_visible(), "only admins manage other users' keys"
    page.get_by_label("Label (what the key is for)").fill("my editor")
    page.get_by_role("button", name="Make a new key").click()
    shown = page.locator("#api-keys-new").locator("textarea, input")
    shown.wait_for()
    page.wait_for_function(
        "() => (document.querySelector('#api-keys-new textarea, #api-keys-new input') || {}).value?.startsWith('sk-local-')")
    key = shown.input_value()
    client = openai.OpenAI(base_url=f"{team.app.url}/v1", api_key=key, max_retries=0, timeout=60)
    assert client.models.list().data, "the new key works at once"
    key_id = key.removeprefix("sk-local-").split("-")[0]
    page.wait_for_function("() => document.querySelector('#api-keys-table').innerText.includes('my editor')")
    page.locator(f"#api-key-revoke-{key_id}").click()
    page.locator("#api-keys-result").get_by_text(f"Revoked key {key_id}").wait_for()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
