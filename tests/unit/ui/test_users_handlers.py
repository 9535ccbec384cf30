"""The Users tab's handlers with a fake Services: admins act, others are refused with a sentence."""

from __future__ import annotations

from dataclasses import dataclass, field

from webui.services import NotAuthorized
from webui.services.types import User
from webui.ui.users import UsersHandlers

from tests.unit.ui.fakes import FakeServices


@dataclass
class FakeUserActions:
    names: dict[str, bool] = field(default_factory=lambda: {"alice": True, "bob": False})

    def table(self, admin: User) -> list[list[str]]:
        return [[name, "admin" if is_admin else "user"] for name, is_admin in self.names.items()]

    def add(self, admin: User, name: str, password: str, *, is_admin: bool = False) -> str:
        if len(password) < 8:
            raise NotAuthorized("A password needs at least 8 characters.")
        self.names[name] = is_admin
        return f"Added **{name}**."

    def reset_password(self, admin: User, name: str, password: str) -> str:
        return f"New password set for **{name}**."

    def remove(self, admin: User, name: str) -> str:
        del self.names[name]
        return f"Removed **{name}**."


@dataclass
class FakeTeam(FakeServices):
    user_actions: FakeUserActions = field(default_factory=FakeUserActions)
    auth_required: bool = True

    def require_admin(self, username: str | None) -> User:
        user = self.user(username)
        if not user.is_admin:
            raise NotAuthorized("Only an admin can do this.")
        return user


def team() -> FakeTeam:
    return FakeTeam(users={"alice": User("alice", is_admin=True), "bob": User("bob", is_admin=False)})


def test_adding_a_user_updates_the_table_and_empties_the_password_box() -> None:
    table, message, password = UsersHandlers(team()).add_user("alice", "carol", "carol-secret-3", False)
    assert ["carol", "user"] in table and message == "Added **carol**." and password == ""


def test_a_refusal_keeps_the_form_and_says_why() -> None:
    fake = team()
    table, message, password = UsersHandlers(fake).add_user("alice", "dave", "short", True)
    assert message == "**Not done:** A password needs at least 8 characters."
    assert table == {"__type__": "update"} and password == {"__type__": "update"}
    assert UsersHandlers(fake).remove_user("bob", "alice", "", False)[1] == "**Not done:** Only an admin can do this."
    assert "alice" in fake.user_actions.names


def test_reset_and_remove_say_what_was_done() -> None:
    handlers = UsersHandlers(team())
    assert handlers.reset_password("alice", "bob", "new-secret-1", False)[1] == "New password set for **bob**."
    table, message, _ = handlers.remove_user("alice", "bob", "", False)
    assert message == "Removed **bob**." and table == [["alice", "admin"]]


def test_opening_the_page_names_the_user_and_shows_the_users_tab_to_admins_only() -> None:
    from webui.ui.app import PageHandlers

    fake = team()
    fake.set_aside_notice = lambda: None
    signed_in, users_tab = PageHandlers(fake).show_role("alice")
    assert signed_in == "Signed in as **alice** (admin)" and users_tab["visible"]
    signed_in, users_tab = PageHandlers(fake).show_role("bob")
    assert signed_in == "Signed in as **bob**" and not users_tab["visible"]
    fake.auth_required = False
    assert PageHandlers(fake).show_role("alice")[0] == "", "no name on a single-user app"


def test_the_users_table_is_filled_each_time_the_users_tab_is_opened() -> None:
    import gradio as gr

    from webui.ui.users import build_users_tab

    with gr.Blocks() as blocks, gr.Tabs(), gr.Tab("Users") as tab:
        build_users_tab(team(), tab)
    [opened] = [fn for fn in blocks.fns.values() if fn.targets == [(tab._id, "select")]]
    assert opened.name == "rows" and [c.elem_id for c in opened.outputs] == ["users-table"]
    assert UsersHandlers(team()).rows("alice") == [["alice", "admin"], ["bob", "user"]]
    assert UsersHandlers(team()).rows("bob") == {"__type__": "update"}, "not an admin: the table is left as is"
