"""The chat header and the notice while a reply streams, as the page writes them."""

from __future__ import annotations

from webui.ui.chat_view import chat_header, stats_line, writing_notice


def test_the_header_names_the_model_the_preset_and_the_collections_or_says_the_chat_is_plain() -> None:
    assert chat_header("tiny.gguf", "Coder", ["manuals", "a<b"]) == (
        "Model **tiny.gguf** · Preset **Coder** · Answers from **manuals**, **a&lt;b**")
    assert chat_header(None, None, []) == "No model loaded · No preset applied · Plain chat: no documents"


def test_the_notice_counts_the_tokens_written_and_keeps_the_engines_notice() -> None:
    assert writing_notice(None) == "Writing…"
    assert writing_notice(1) == "Writing… 1 token"
    assert writing_notice(1234, "2 older messages were left out") == (
        "Writing… 1,234 tokens · 2 older messages were left out")


def test_the_stats_line_counts_accepted_drafts_only_when_prompt_lookup_drafted() -> None:
    stats = {"completion_tokens": 120, "tokens_per_s": 95.04, "ttft_ms": 210.4}
    assert stats_line(stats) == "120 tokens · 95.0 tokens/s · first token 210 ms"
    assert stats_line({**stats, "drafted_tokens": 0, "accepted_tokens": 0}) == stats_line(stats)
    assert stats_line({**stats, "drafted_tokens": 96, "accepted_tokens": 81}) == (
        "120 tokens · 95.0 tokens/s · first token 210 ms · drafts 81/96 accepted")
