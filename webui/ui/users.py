"""The Users tab (admins only): list, add, remove users and reset passwords.

Removing a user or resetting a password signs that user out everywhere at once (the users file's
credential stamp changes, and the session guard in webui/web/security.py checks it on every request)
and revokes their API keys (webui/services/users.py).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services import Services
from webui.ui.feedback import as_user, handled


def _not_done(message: str) -> tuple[Any, str, Any]:
    """A refused action: the table and the password box as they were, the reason shown."""
    return gr.update(), f"**Not done:** {message}", gr.update()


class UsersHandlers:
    """What the Users tab's buttons do, for the signed-in admin's name and the form's values."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _table(self, username: str | None) -> list[list[str]]:
        return self.services.user_actions.table(self.services.require_admin(username))

    @handled("Adding a user", _not_done)
    def add_user(self, username: str | None, name: str | None, password: str | None,
                 admin: bool | None) -> tuple[Any, str, str]:
        me = self.services.require_admin(username)
        message = self.services.user_actions.add(me, name or "", password or "", is_admin=bool(admin))
        return self._table(username), message, ""

    @handled("Resetting a password", _not_done)
    def reset_password(self, username: str | None, name: str | None, password: str | None,
                       _admin: bool | None) -> tuple[Any, str, str]:
        me = self.services.require_admin(username)
        message = self.services.user_actions.reset_password(me, name or "", password or "")
        return self._table(username), message, ""

    @handled("Removing a user", _not_done)
    def remove_user(self, username: str | None, name: str | None, _password: str | None,
                    _admin: bool | None) -> tuple[Any, str, str]:
        me = self.services.require_admin(username)
        message = self.services.user_actions.remove(me, name or "")
        return self._table(username), message, ""

    @handled("Listing users", lambda message: gr.update())
    def rows(self, username: str | None) -> list[list[str]]:
        """Refresh: the users as they are now (another admin, or the command line, may have changed them)."""
        return self._table(username)


def build_users_tab(services: Services, tab: gr.Tab) -> None:
    """The tab's content; the table is filled each time ``tab`` is opened (filled while the tab was hidden,
    at page load, Chromium drew it empty)."""
    gr.Markdown("Resetting a password or removing a user signs them out everywhere and revokes their API keys. "
                "A user added later under a removed user's name starts with nothing of theirs.")
    users_table = gr.Dataframe(headers=["User", "Role"], interactive=False, label="Users", elem_id="users-table")
    refresh = gr.Button("Refresh", size="sm")
    with gr.Row():
        name = gr.Textbox(label="User name", max_lines=1)
        password = gr.Textbox(label="Password (at least 8 characters)", type="password", max_lines=1)
        is_admin = gr.Checkbox(label="Admin")
    with gr.Row():
        add = gr.Button("Add user", variant="primary")
        reset = gr.Button("Reset password")
        remove = gr.Button("Remove user", variant="stop")
    result = gr.Markdown()

    handlers = UsersHandlers(services)
    inputs = [name, password, is_admin]
    outputs = [users_table, result, password]
    add.click(as_user(handlers.add_user), inputs, outputs)
    reset.click(as_user(handlers.reset_password), inputs, outputs)
    remove.click(as_user(handlers.remove_user), inputs, outputs)
    refresh.click(as_user(handlers.rows), None, users_table)
    tab.select(as_user(handlers.rows), None, users_table, queue=False)
