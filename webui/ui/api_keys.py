"""The "API keys" section: every user makes and revokes their own keys; an admin also those of others.

A new key is shown once, here, and stored only as a hash (webui.api_keys).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services import Services
from webui.ui.feedback import warn

KEY_HEADERS = ["Id", "User", "Label", "Made"]


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

    def rows(request: gr.Request, who: str | None = None) -> list[list[str]]:
        user = services.user(request.username)
        keys = services.api_access.list_keys(user, (who or "").strip() or None)
        return [[k.id, k.user, k.label, k.created_at.replace("T", " ")[:16]] for k in keys]

    def on_load(request: gr.Request) -> tuple[Any, Any]:
        user = services.user(request.username)
        return gr.update(visible=user.is_admin), rows(request)

    def make(who: str | None, what: str | None, request: gr.Request) -> tuple[Any, ...]:
        try:
            user = services.user(request.username)
            key, secret = services.api_access.create_key(user, (who or "").strip() or None, what or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return gr.update(), gr.update(visible=False, value=""), f"**Not made:** {warn(exc, 'Making an API key')}"
        return (rows(request, who), gr.update(visible=True, value=secret),
                f"Made key **{key.id}** for **{key.user}**.")

    def drop(who: str | None, which: str | None, request: gr.Request) -> tuple[Any, ...]:
        try:
            user = services.user(request.username)
            key = services.api_access.revoke_key(user, which or "", (who or "").strip() or None)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return gr.update(), gr.update(), f"**Not revoked:** {warn(exc, 'Revoking an API key')}"
        return rows(request, who), "", f"Revoked key **{key.id}** of **{key.user}**; it stops working at once."

    def show_for(who: str | None, request: gr.Request) -> Any:
        try:
            return rows(request, who)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Listing API keys")
            return gr.update()

    gr.on(triggers=None, fn=on_load, inputs=None, outputs=[owner, table], queue=False)
    owner.submit(show_for, [owner], [table], queue=False)
    create.click(make, [owner, label], [table, shown, result], queue=False)
    revoke.click(drop, [owner, key_id], [table, key_id, result], queue=False)
