"""The API keys tab's handlers with a fake Services: what each button shows, for users and admins."""

from __future__ import annotations

import gradio as gr

from webui.services.types import User
from webui.ui.api_keys import ApiKeyHandlers, build_api_keys_tab, key_row_cells

from tests.unit.ui.fakes import FakeServices


def services() -> FakeServices:
    return FakeServices(users={"alice": User("alice", is_admin=True), "bob": User("bob", is_admin=False)})


def test_opening_lists_a_users_own_keys_and_an_admin_everyones_with_their_owner() -> None:
    fake = services()
    fake.api_access.create_key(fake.users["bob"], label="editor")
    fake.api_access.create_key(fake.users["alice"], label="backup script")
    owner_box, rows = ApiKeyHandlers(fake).opened("bob")
    assert owner_box["visible"] is False
    assert [row[:3] for row in rows] == [["k1", "bob", "editor"]]
    owner_box, rows = ApiKeyHandlers(fake).opened("alice")
    assert owner_box["visible"] is True
    assert [row[:3] for row in rows] == [["k1", "bob", "editor"], ["k2", "alice", "backup script"]]


def test_a_new_key_is_shown_once_with_the_list_updated() -> None:
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
    fake.api_access.create_key(fake.users["alice"])
    rows, result = handlers.revoke("bob", "alice", "k1")  # a Revoke sent for a row bob was never shown
    assert result == "**Not revoked:** Only an admin can manage another user's keys." and rows == {"__type__": "update"}
    assert [k.id for k in fake.api_access.keys] == ["k1"]


def test_a_rows_revoke_ends_that_key_and_the_list_is_shown_without_it() -> None:
    fake = services()
    fake.api_access.create_key(fake.users["bob"], label="old")
    fake.api_access.create_key(fake.users["bob"], label="new")
    rows, result = ApiKeyHandlers(fake).revoke("bob", "bob", "k1")
    assert [row[:3] for row in rows] == [["k2", "bob", "new"]]
    assert result == "Revoked key **k1** of **bob**; it stops working at once."
    rows, result = ApiKeyHandlers(fake).revoke("alice", "bob", "k2")  # an admin, from the list of everyone's keys
    assert rows == [] and "stops working at once" in result


def test_a_label_shows_as_text_and_a_signed_out_caller_gets_the_login_sentence() -> None:
    assert key_row_cells(["k1", "bob", "<b>mine</b>", "2026-12-07 08:00"]) == [
        "`k1`", "bob", "&lt;b&gt;mine&lt;/b&gt;", "2026-12-07 08:00"]
    assert key_row_cells(["k1", "bob", "", "2026-12-07 08:00"])[2] == "—"
    assert ApiKeyHandlers(services()).make(None, "", "x")[2] == "**Not made:** Please log in again."


def test_the_keys_are_listed_each_time_the_tab_is_opened() -> None:
    with gr.Blocks() as blocks, gr.Tabs(), gr.Tab("API keys") as tab:
        build_api_keys_tab(services(), tab)
    [opened] = [fn for fn in blocks.fns.values() if fn.targets == [(tab._id, "select")]]
    assert opened.name == "opened"
