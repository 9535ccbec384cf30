"""The chat header and the notice while a reply streams, as the page writes them."""

from __future__ import annotations

from webui.ui.chat_view import chat_header, writing_notice


def test_the_header_names_the_model_the_preset_and_the_collections_or_says_the_chat_is_plain() -> None:
    assert chat_header("tiny.gguf", "Coder", ["manuals", "a<b"]) == (
        "Model **tiny.gguf** · Preset **Coder** · Answers from **manuals**, **a&lt;b**")
    assert chat_header(None, None, []) == "No model loaded · No preset applied · Plain chat: no documents"


def test_the_notice_counts_the_tokens_written_and_keeps_the_engines_notice() -> None:
    assert writing_notice(None) == "Writing…"
    assert writing_notice(1) == "Writing… 1 token"
    assert writing_notice(1234, "2 older messages were left out") == (
        "Writing… 1,234 tokens · 2 older messages were left out")
