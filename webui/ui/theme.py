"""How the page looks: the theme (light or dark, as the browser prefers) and the page's own CSS.

Gradio follows the system setting (``prefers-color-scheme``) unless the user picks light or dark
under Settings in the footer; the theme's dark variant and the CSS below use the theme's variables,
so both read well. Fonts are the system's: the page fetches nothing from the internet (privacy).
"""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)

PHONE_WIDTH_PX = 720  # at most this wide, the page is laid out for a phone (one column)

# The Chat tab is a full-height chat: the conversation takes the height the window leaves and scrolls
# in its own area, with the message box pinned under it. The height left is the window's less what
# sits above and below the conversation (header, tabs, model picker; message box, buttons), 320 px
# wide, 500 px on a phone (where the documents chip has a line of its own). The message box is also
# sticky, so it stays in view when more than that is shown (a notice, a long draft, a header that wraps).
# Gradio keeps top-level rules as written but scopes those inside @media to its own container, so
# a rule for the page as a whole (the .gradio-container overflow) must stay outside the media queries.
PAGE_CSS = """
/* Sticky needs the page, not Gradio's container, to be what scrolls: clip instead of hidden. */
.gradio-container { overflow: clip !important; }

/* The conversation fills the height left; the list of chats scrolls in its own area. */
#chatbot { height: calc(100dvh - 320px) !important; min-height: 240px; }
#conversations { max-height: calc(100dvh - 320px); overflow-y: auto; }

/* The message box: pinned under the conversation, on the page's own background (light or dark). */
#composer {
    position: sticky; bottom: 0; z-index: 10; align-items: stretch;
    background: var(--body-background-fill); padding-block: var(--spacing-md);
}
#composer-buttons { gap: var(--spacing-sm); }
#composer-buttons button { flex: 1; }
#chat-actions button { flex: 0 1 auto; }
#chat-confirm-clear-row { flex: 1 1 auto; align-items: center; }

/* Gradio's chatbot toolbar holds only its trash icon here (buttons=["copy"] puts copy on each message),
   which would empty the view and leave the saved chat: the one Clear is the tab's own, which asks first. */
#chatbot .icon-button-wrapper.top-panel { display: none !important; }

/* The line above the conversation (model, preset, documents): small, one line when it fits; the
   drawer's "Chats" before it shows on a phone only. */
#chat-header-row { align-items: center; gap: var(--spacing-md); }
#chat-header { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
#chat-header p { margin: 0; }
#chat-drawer-toggle { display: none !important; }

/* Each row of the chat list ends with its "⋯", which opens the row's menu (placed by chat_script.py);
   drawn by CSS, so the row's text stays the chat's title. */
#conversations label { align-items: center; }
#conversations button.chat-row-actions::before { content: "⋯"; }
#conversations button.chat-row-actions {
    margin-left: var(--spacing-sm); padding: 0 0.45em; border-radius: var(--radius-sm); line-height: 1.3;
    background: none; border: 1px solid transparent; color: var(--body-text-color-subdued); cursor: pointer;
}
#conversations button.chat-row-actions:hover, #conversations button.chat-row-actions:focus-visible {
    border-color: var(--border-color-primary); color: var(--body-text-color);
}
#chat-row-menu {
    position: fixed; z-index: 1100; top: var(--chat-row-menu-top, 25%); left: var(--chat-row-menu-left, 8px);
    width: min(288px, calc(100vw - 16px)); min-width: 0 !important; padding: var(--spacing-md);
    background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
    border-radius: var(--radius-lg); box-shadow: var(--shadow-drop-lg);
}

/* The chip beside the message box: "+ Documents", then a chip with its x for each collection attached,
   as wide as these need (up to half the row). Gradio puts the two in one form, drawn as one box. */
#composer .form { gap: var(--spacing-sm); background: none; border: none; box-shadow: none; }
#composer-documents { flex: 0 1 auto !important; width: auto; max-width: 55%; }
#composer-documents .container { display: flex; flex-direction: row; align-items: center; gap: var(--spacing-sm); }
#composer-documents .container > span { margin: 0; white-space: nowrap; }
#composer-documents .container > .wrap { flex: 1; min-width: 4em; }
#composer-documents .token { white-space: nowrap; }
/* Each chip has its own x, and the label opens the list: no clear-all x, no arrow. */
#composer-documents .remove-all, #composer-documents .icon-wrap { display: none; }
#composer-documents input { width: 1.5em; min-width: 1.5em; }

/* A document answer's sources and a reply's thinking: folded, in the theme's colours. */
#chatbot details.sources, #chatbot details.thinking {
    margin-top: var(--spacing-md); padding: var(--spacing-sm) var(--spacing-md);
    border: 1px solid var(--border-color-primary); border-radius: var(--radius-md);
    background: var(--background-fill-secondary); color: var(--body-text-color);
}
#chatbot details.thinking { margin: 0 0 var(--spacing-md); color: var(--body-text-color-subdued); }
#chatbot details.sources summary, #chatbot details.thinking summary {
    cursor: pointer; color: var(--body-text-color-subdued);
}

/* A document answer's citations: [n] chips that open their passage, the passage's matching
   sentences marked, a warning when the passages do not support the answer; a reply's versions switch. */
#chatbot a.cite-chip {
    display: inline-block; min-width: 1.3em; padding: 0 0.35em; margin: 0 0.1em; border-radius: 0.7em;
    font-size: 0.8em; line-height: 1.4; text-align: center; text-decoration: none; vertical-align: 0.1em;
    background: var(--color-accent-soft); color: var(--body-text-color); border: 1px solid var(--color-accent);
}
#chatbot details.passage { margin: var(--spacing-sm) 0; }
#chatbot details.passage summary { cursor: pointer; }
#chatbot details.passage.cited-now { outline: 2px solid var(--color-accent); border-radius: var(--radius-sm); }
#chatbot .passage-text { white-space: normal; overflow-wrap: anywhere; margin: var(--spacing-sm) 0 0; }
#chatbot .passage-text mark { background: var(--color-accent-soft); color: inherit; padding: 0 0.1em; }
#chatbot .citation-warning {
    color: var(--error-text-color, #c00); font-size: var(--text-sm); margin: var(--spacing-sm) 0 0;
}
#chatbot .sources-note {
    font-size: var(--text-sm); color: var(--body-text-color-subdued); margin: var(--spacing-sm) 0;
}
#chatbot .version-switch { display: inline-flex; align-items: center; gap: var(--spacing-sm); font-size: var(--text-sm);
    color: var(--body-text-color-subdued); }
#chatbot .version-step { padding: 0 0.5em; border-radius: var(--radius-sm); cursor: pointer; background: none;
    border: 1px solid var(--border-color-primary); color: inherit; }
#chatbot .version-step.version-off { opacity: 0.35; cursor: default; }

/* The API keys tab: one row per key, its Revoke button at the end. */
#api-keys-table .api-key-row { align-items: center; border-bottom: 1px solid var(--border-color-primary); }
#api-keys-table .api-key-row p { margin: 0; }
#chatbot sub { color: var(--body-text-color-subdued); }

/* Wide windows: the model picker's label beside the list, in one short row. */
@media (min-width: WIDEpx) {
    #model-picker .container { display: flex; flex-direction: row; align-items: center; gap: var(--spacing-lg); }
    #model-picker .container > span { margin: 0; white-space: nowrap; }
    #model-picker .container > .wrap { flex: 1; }
}

/* A phone: one column (conversation, settings); the chats are a drawer over the conversation that the
   header's "Chats" opens (chat_script.py keeps data-drawer); the message box spans the width. */
@media (max-width: PHONEpx) {
    #chatbot { height: calc(100dvh - 500px) !important; }
    #chat-drawer-toggle { display: inline-flex !important; }
    #chat-sidebar {
        position: fixed; top: 0; bottom: 0; left: 0; z-index: 1000; width: min(85vw, 340px) !important;
        margin: 0; padding: var(--spacing-lg); overflow-y: auto; background: var(--body-background-fill);
        box-shadow: var(--shadow-drop-lg); transition: transform 0.2s ease, visibility 0.2s;
    }
    #chat-sidebar:not([data-drawer="open"]) { transform: translateX(-105%); visibility: hidden; }
    #conversations { max-height: none; }
    #composer { flex-wrap: wrap; }
    #composer > *, #composer .form > * { flex: 1 1 100% !important; max-width: none; }
    #composer-buttons { flex-direction: row; }
    #model-picker-row { flex-wrap: wrap; }
    #model-picker-row > * { flex: 1 1 100% !important; }
}
""".replace("PHONEpx", f"{PHONE_WIDTH_PX}px").replace("WIDEpx", f"{PHONE_WIDTH_PX + 1}px")
