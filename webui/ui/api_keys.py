"""The "API keys" section: every user makes and revokes their own keys; an admin also those of others.

A new key is shown once, here, and stored only as a hash (webui.api_keys).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services import Services
from webui.ui.feedback import as_user, handled

KEY_HEADERS = ["Id", "User", "Label", "Made"]


class ApiKeyHandlers:
    """What the section's events do, for a user name and the form's values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def rows(self, username: str | None, owner: str | None = None) -> list[list[str]]:
        user = self.services.user(username)
        keys = self.services.api_access.list_keys(user, (owner or "").strip() or None)
        return [[k.id, k.user, k.label, k.created_at.replace("T", " ")[:16]] for k in keys]

    def opened(self, username: str | None) -> tuple[Any, list[list[str]]]:
        """The owner box for admins only, and the caller's keys."""
        user = self.services.user(username)
        return gr.update(visible=user.is_admin), self.rows(username)

    @handled("Making an API key", lambda message: (gr.update(), gr.update(visible=False, value=""),
                                                   f"**Not made:** {message}"))
    def make(self, username: str | None, owner: str | None, label: str | None) -> tuple[Any, ...]:
        user = self.services.user(username)
        key, secret = self.services.api_access.create_key(user, (owner or "").strip() or None, label or "")
        return (self.rows(username, owner), gr.update(visible=True, value=secret),
                f"Made key **{key.id}** for **{key.user}**.")

    @handled("Revoking an API key", lambda message: (gr.update(), gr.update(), f"**Not revoked:** {message}"))
    def revoke(self, username: str | None, owner: str | None, key_id: str | None) -> tuple[Any, ...]:
        user = self.services.user(username)
        key = self.services.api_access.revoke_key(user, key_id or "", (owner or "").strip() or None)
        return self.rows(username, owner), "", f"Revoked key **{key.id}** of **{key.user}**; it stops working at once."

    @handled("Listing API keys", lambda message: gr.update())
    def show_for(self, username: str | None, owner: str | None) -> list[list[str]]:
        return self.rows(username, owner)


def build_api_keys_section(services: Services) -> None:
    """Inside an accordion the caller opens (shown in team mode, where every API call needs a key)."""
    gr.Markdown("Programs that use the OpenAI or Ollama API (`/v1`, `/api` on this address) send a key as "
                "`Authorization: Bearer <key>`. A key acts as you: it sees your collections, nobody else's.")
    with gr.Row():
        owner = gr.Textbox(label="User (admins: anyone's keys; empty: your own)", max_lines=1, visible=False,
                           elem_id="api-keys-owner")
        label = gr.Textbox(label="Label (what the key is for)", max_lines=1, elem_id="api-keys-label")
    table = gr.Dataframe(headers=KEY_HEADERS, type="array", interactive=False, label="Your API keys",
                         elem_id="api-keys-table")
    with gr.Row():
        create = gr.Button("Make a new key", variant="primary", size="sm")
        key_id = gr.Textbox(label="Key id to revoke", max_lines=1, elem_id="api-keys-revoke-id")
        revoke = gr.Button("Revoke", variant="stop", size="sm")
    shown = gr.Textbox(label="New key (copy it now: it is not shown again)", interactive=False, visible=False,
                       elem_id="api-keys-new", buttons=["copy"])
    result = gr.Markdown(elem_id="api-keys-result")

    handlers = ApiKeyHandlers(services)
    gr.on(triggers=None, fn=as_user(handlers.opened), inputs=None, outputs=[owner, table], queue=False)
    owner.submit(as_user(handlers.show_for), [owner], [table], queue=False)
    create.click(as_user(handlers.make), [owner, label], [table, shown, result], queue=False)
    revoke.click(as_user(handlers.revoke), [owner, key_id], [table, key_id, result], queue=False)
