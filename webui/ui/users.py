"""The Users tab (admins only): list, add, remove users and reset passwords.

Removing a user or resetting a password signs that user out everywhere at once: the users file's
credential stamp changes, and the session guard (webui/web/security.py) checks it on every request.
"""

from __future__ import annotations

import gradio as gr

from webui.services import NotAuthorized, Services
from webui.ui.feedback import warn


def build_users_tab(services: Services) -> None:
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
        services.require_admin(request.username)
        return [[u.name, "admin" if u.is_admin else "user"] for u in services.users.list()]

    def guarded(action):
        def run(user_name: str, secret: str, admin: bool, request: gr.Request):
            try:
                services.require_admin(request.username)
                message = action(user_name.strip(), secret, admin, request.username)
            except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
                return gr.update(), f"**Not done:** {warn(exc, 'Managing users')}", gr.update()
            return rows(request), message, ""
        return run

    def add_user(user_name: str, secret: str, admin: bool, _me: str | None) -> str:
        services.users.add(user_name, secret, admin=admin)
        return f"Added **{user_name}**" + (" as an admin." if admin else ".")

    def reset_password(user_name: str, secret: str, _admin: bool, _me: str | None) -> str:
        services.users.set_password(user_name, secret)
        return f"New password set for **{user_name}**; they were signed out everywhere."

    def remove_user(user_name: str, _secret: str, _admin: bool, me: str | None) -> str:
        if user_name == me:
            raise NotAuthorized("You cannot remove yourself while signed in.")
        services.users.remove(user_name)
        return f"Removed **{user_name}** and signed them out everywhere."

    inputs = [name, password, is_admin]
    outputs = [users_table, result, password]
    add.click(guarded(add_user), inputs, outputs)
    reset.click(guarded(reset_password), inputs, outputs)
    remove.click(guarded(remove_user), inputs, outputs)
    refresh.click(rows, None, users_table)
