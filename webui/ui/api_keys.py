"""The "API keys" tab: every user makes and revokes their own keys; an admin sees and revokes everyone's.

A new key is shown once, here, and stored only as a hash (webui.api_keys). The keys are listed one row
each, with a Revoke button on the row; an admin's list holds every user's keys, with their owner.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from webui.services import Services
from webui.ui.feedback import as_user, handled

KEY_HEADERS = ["Id", "Owner", "Label", "Made"]
NO_KEYS = "No API keys yet."


class ApiKeyHandlers:
    """What the tab's events do, for a user name and the form's values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def rows(self, username: str | None) -> list[list[str]]:
        """The keys listed for the caller (an admin: everyone's), as [id, owner, label, made]."""
        keys = self.services.api_access.keys_shown_to(self.services.user(username))
        return [[k.id, k.user, k.label, k.created_at.replace("T", " ")[:16]] for k in keys]

    @handled("Listing API keys", lambda message: (gr.update(), gr.update()))
    def opened(self, username: str | None) -> tuple[Any, list[list[str]]]:
        """The "for another user" box for admins only, and the keys listed."""
        user = self.services.user(username)
        return gr.update(visible=user.is_admin), self.rows(username)

    @handled("Making an API key", lambda message: (gr.update(), gr.update(visible=False, value=""),
                                                   f"**Not made:** {message}"))
    def make(self, username: str | None, owner: str | None, label: str | None) -> tuple[Any, ...]:
        user = self.services.user(username)
        key, secret = self.services.api_access.create_key(user, (owner or "").strip() or None, label or "")
        return (self.rows(username), gr.update(visible=True, value=secret),
                f"Made key **{key.id}** for **{key.user}**.")

    @handled("Revoking an API key", lambda message: (gr.update(), f"**Not revoked:** {message}"))
    def revoke(self, username: str | None, owner: str | None, key_id: str | None) -> tuple[Any, str]:
        """One row's Revoke: the key of ``owner`` (the row's) ends at once; the list without it."""
        user = self.services.user(username)
        key = self.services.api_access.revoke_key(user, key_id or "", (owner or "").strip() or None)
        return self.rows(username), f"Revoked key **{key.id}** of **{key.user}**; it stops working at once."


def key_row_cells(row: list[str]) -> list[str]:
    """A key's cells as the tab writes them: the id as code, the rest as text (a label may hold markup)."""
    key_id, owner, label, made = row
    return [f"`{key_id}`", html.escape(owner), html.escape(label) or "—", made]


def build_api_keys_tab(services: Services, tab: gr.Tab) -> None:
    """The tab's content (team mode, where every API call needs a key); filled each time ``tab`` is opened."""
    gr.Markdown("Programs that use the OpenAI or Ollama API (`/v1`, `/api` on this address) send a key as "
                "`Authorization: Bearer <key>`. A key acts as its user: it sees their collections, nobody else's.")
    handlers = ApiKeyHandlers(services)
    listed = gr.State([])  # the rows shown, each with its own Revoke button
    result = gr.Markdown(elem_id="api-keys-result")
    with gr.Column(elem_id="api-keys-table"):
        @gr.render(inputs=[listed])
        def key_rows(rows: list[list[str]]) -> None:
            if not rows:
                gr.Markdown(NO_KEYS)
                return
            with gr.Row(equal_height=True, elem_classes="api-key-row"):
                for header in KEY_HEADERS:
                    gr.Markdown(f"**{header}**")
                gr.Markdown("")
            for row in rows:
                with gr.Row(equal_height=True, elem_classes="api-key-row"):
                    for cell in key_row_cells(row):
                        gr.Markdown(cell)
                    revoke = gr.Button("Revoke", variant="stop", size="sm", scale=0, min_width=90,
                                       elem_id=f"api-key-revoke-{row[0]}")
                revoke.click(as_user(handlers.revoke), [gr.State(row[1]), gr.State(row[0])], [listed, result])

    with gr.Accordion("New key", open=True):
        with gr.Row():
            label = gr.Textbox(label="Label (what the key is for)", max_lines=1, elem_id="api-keys-label")
            owner = gr.Textbox(label="For user (admins; empty: yourself)", max_lines=1, visible=False,
                               elem_id="api-keys-owner")
        create = gr.Button("Make a new key", variant="primary", size="sm")
        shown = gr.Textbox(label="New key (copy it now: it is not shown again)", interactive=False, visible=False,
                           elem_id="api-keys-new", buttons=["copy"])

    # Queued (not queue=False): a State set by an unqueued event does not redraw the rows in Gradio 6.
    tab.select(as_user(handlers.opened), None, [owner, listed])
    create.click(as_user(handlers.make), [owner, label], [listed, shown, result])
