"""The Users tab (admins only): list, add, remove users and reset passwords.

Removing a user or resetting a password signs that user out everywhere at once (the users file's
credential stamp changes, and the session guard in webui/web/security.py checks it on every request)
and revokes their API keys (webui/services/users.py).
"""

from __future__ import annotations

import gradio as gr

from webui.auth import User
from webui.services import Services
from webui.ui.feedback import warn


def build_users_tab(services: Services) -> None:
    gr.Markdown("Resetting a password or removing a user signs them out everywhere and revokes their API keys. "
                "A user added later under a removed user's name starts with nothing of theirs.")
    users_table = gr.Dataframe(headers=["User", "Role"], interactive=False, label="Users")
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

    def rows(request: gr.Request) -> list[list[str]]:
        return services.user_actions.table(services.require_admin(request.username))

    def guarded(action):
        def run(user_name: str, secret: str, admin: bool, request: gr.Request):
            try:
                me = services.require_admin(request.username)
                message = action(me, user_name or "", secret or "", bool(admin))
            except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
                return gr.update(), f"**Not done:** {warn(exc, 'Managing users')}", gr.update()
            return rows(request), message, ""
        return run

    def add_user(me: User, user_name: str, secret: str, admin: bool) -> str:
        return services.user_actions.add(me, user_name, secret, is_admin=admin)

    def reset_password(me: User, user_name: str, secret: str, _admin: bool) -> str:
        return services.user_actions.reset_password(me, user_name, secret)

    def remove_user(me: User, user_name: str, _secret: str, _admin: bool) -> str:
        return services.user_actions.remove(me, user_name)

    inputs = [name, password, is_admin]
    outputs = [users_table, result, password]
    add.click(guarded(add_user), inputs, outputs)
    reset.click(guarded(reset_password), inputs, outputs)
    remove.click(guarded(remove_user), inputs, outputs)
    refresh.click(rows, None, users_table)
