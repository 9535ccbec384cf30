"""The API keys section's handlers with a fake Services: what each button shows, for users and admins."""

from __future__ import annotations

from webui.services.types import User
from webui.ui.api_keys import ApiKeyHandlers

from tests.unit.ui.fakes import FakeServices


def services() -> FakeServices:
    return FakeServices(users={"alice": User("alice", is_admin=True), "bob": User("bob", is_admin=False)})


def test_opening_shows_the_owner_box_to_admins_only_and_lists_the_callers_keys() -> None:
    fake = services()
    fake.api_access.create_key(fake.users["bob"], label="editor")
    owner_box, rows = ApiKeyHandlers(fake).opened("bob")
    assert owner_box["visible"] is False
    assert [row[1:3] for row in rows] == [["bob", "editor"]]
    assert ApiKeyHandlers(fake).opened("alice")[0]["visible"] is True


def test_a_new_key_is_shown_once_with_the_table_updated() -> None:
    handlers = ApiKeyHandlers(services())
    rows, shown, result = handlers.make("bob", "", "laptop")
    assert shown["visible"] is True and shown["value"] == "secret-k1"
    assert rows[0][:3] == ["k1", "bob", "laptop"]
    assert result == "Made key **k1** for **bob**."


def test_a_refusal_is_a_sentence_and_changes_nothing() -> None:
    fake = services()
    handlers = ApiKeyHandlers(fake)
    rows, shown, result = handlers.make("bob", "alice", "sneaky")
    assert result == "**Not made:** Only an admin can manage another user's keys."
    assert rows == {"__type__": "update"} and shown["visible"] is False
    assert fake.api_access.keys == []
    table, box, result = handlers.revoke("bob", "", "k9")
    assert result == "**Not revoked:** There is no key 'k9' of bob." and box == {"__type__": "update"}


def test_an_admin_revokes_another_users_key() -> None:
    fake = services()
    key, _ = fake.api_access.create_key(fake.users["bob"])
    rows, box, result = ApiKeyHandlers(fake).revoke("alice", "bob", key.id)
    assert rows == [] and box == "" and "stops working at once" in result


def test_a_signed_out_caller_gets_the_login_sentence() -> None:
    assert ApiKeyHandlers(services()).make(None, "", "x")[2] == "**Not made:** Please log in again."
