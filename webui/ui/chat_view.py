"""How saved messages look in the chat page: a reply with its folded thinking, its sources, its stats line
and, if cut off, a note."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from webui.services.types import StoredMessage
from webui.ui.tool_calls_view import reply_with_calls

INCOMPLETE_NOTE = "unfinished reply: it was cut off before its end"


def stats_line(stats: dict[str, Any]) -> str:
    """The small line under each reply: tokens, speed, time to first token."""
    line = (
        f"{stats['completion_tokens']} tokens · {stats['tokens_per_s']:.1f} tokens/s · "
        f"first token {stats['ttft_ms']:.0f} ms"
    )
    if stats.get("stopped_by_user"):
        line += " · stopped"
    return line


def sources_view(sources: Sequence[dict[str, Any]]) -> str:
    """A collapsible block listing each source (file, page or heading) with its passage text."""
    items = []
    for source in sources:
        text = html.escape(" ".join(str(source.get("text", "")).split()))
        citation = html.escape(str(source.get("citation") or source.get("file_name", "")))
        items.append(f"<p><b>[{source.get('number')}] {citation}</b><br>{text}</p>")
    files = ", ".join(dict.fromkeys(html.escape(str(s.get("file_name", ""))) for s in sources))
    return (f"<details class=\"sources\"><summary>Sources: {files}</summary>\n"
            + "\n".join(items) + "\n</details>")


def thinking_view(reasoning: str, seconds: float | None = None, *, still_thinking: bool = False) -> str:
    """A reply's thinking folded into a "Thinking (4.2 s)" block, to open on demand; escaped like the
    sources, so markup the model wrote in its thinking shows as text."""
    if still_thinking:
        summary = "Thinking…" if seconds is None else f"Thinking… {seconds:.1f} s"
    else:
        summary = "Thinking" if seconds is None else f"Thinking ({seconds:.1f} s)"
    paragraphs = [html.escape(part.strip()) for part in reasoning.strip().split("\n\n") if part.strip()]
    body = "\n\n".join(part.replace("\n", "<br>") for part in paragraphs)
    return f"<details class=\"thinking\"><summary>{summary}</summary>\n\n{body}\n\n</details>"


def message_view(
    role: str, content: str, stats: dict[str, Any] | None = None, sources: Sequence[dict[str, Any]] | None = None,
    *, incomplete: bool = False, reasoning: str = "", thinking_s: float | None = None, still_thinking: bool = False,
) -> dict[str, str]:
    """A chatbot message; a reply is preceded by its folded thinking and followed by its sources and stats,
    none of which the model sees again."""
    if reasoning.strip():
        thinking = thinking_view(reasoning, thinking_s, still_thinking=still_thinking)
        content = f"{thinking}\n\n{content}" if content else thinking
    if sources:
        content = f"{content}\n\n{sources_view(sources)}"
    if stats:
        content = f"{content}\n\n<sub>{stats_line(stats)}</sub>"
    if incomplete:  # saved while it streamed, and the server stopped (or failed) before its end
        content = f"{content}\n\n<sub>{INCOMPLETE_NOTE}</sub>"
    return {"role": role, "content": content}


def stored_view(messages: Sequence[StoredMessage]) -> list[dict[str, str]]:
    """A saved conversation as the chatbot shows it (the system message is not shown)."""
    return [message_view(m.role, reply_with_calls(m.content, m.meta), m.meta.get("stats"), m.meta.get("sources"),
                         incomplete=bool(m.meta.get("incomplete")), reasoning=m.reasoning,
                         thinking_s=m.meta.get("thinking_s"))
            for m in messages if m.role != "system"]


def edited_text(value: Any) -> str:
    """The text of an edited chatbot message, which Gradio may send as a list of content parts."""
    if isinstance(value, list):
        return "\n".join(edited_text(part) for part in value)
    if isinstance(value, dict):
        return str(value.get("text") or value.get("content") or "")
    return "" if value is None else str(value)


def chat_header(model: str | None, preset: str | None, collections: Sequence[str]) -> str:
    """The small line above the conversation: the model, the preset applied, the collections answered from."""
    parts = [f"Model **{html.escape(model)}**" if model else "No model loaded",
             f"Preset **{html.escape(preset)}**" if preset else "No preset applied"]
    if collections:
        parts.append("Answers from " + ", ".join(f"**{html.escape(name)}**" for name in collections))
    else:
        parts.append("Plain chat: no documents")
    return " · ".join(parts)


def writing_notice(tokens: int | None, notice: str | None = None) -> str:
    """What the notice line says while a reply streams: "Writing… 57 tokens", then any notice of the engine's."""
    line = "Writing…" if tokens is None else f"Writing… {tokens:,} token{'' if tokens == 1 else 's'}"
    return f"{line} · {notice}" if notice else line
