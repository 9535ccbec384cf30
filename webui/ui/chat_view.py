"""How saved messages look in the chat page: a reply with its folded thinking, its sources, its stats line
and, if cut off, a note."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from webui.services.types import StoredMessage
from webui.ui.citations_view import answer_with_chips, sources_view
from webui.ui.tool_calls_view import reply_with_calls

INCOMPLETE_NOTE = "unfinished reply: it was cut off before its end"


def stats_line(stats: dict[str, Any]) -> str:
    """The small line under each reply: tokens, speed, time to first token, and drafted tokens the model
    accepted when prompt lookup drafted any."""
    line = (
        f"{stats['completion_tokens']} tokens · {stats['tokens_per_s']:.1f} tokens/s · "
        f"first token {stats['ttft_ms']:.0f} ms"
    )
    if stats.get("drafted_tokens"):
        line += f" · drafts {stats.get('accepted_tokens', 0)}/{stats['drafted_tokens']} accepted"
    if stats.get("stopped_by_user"):
        line += " · stopped"
    return line


def version_switch(message_id: int, number: int, count: int) -> str:
    """The "‹ 1/2 ›" under a reply that has other versions (regenerated, or its question edited);
    the page's script sends the pick to ChatHandlers.switch_version."""
    def arrow(label: str, to: int, name: str) -> str:
        # Gradio keeps classes but not data- attributes: the pick travels in the class.
        pick = f"version-to-{message_id}-{to}" if 1 <= to <= count else "version-off"
        return f'<button class="version-step {pick}" title="{name} version">{label}</button>'
    return (f'<div class="version-switch">{arrow("‹", number - 1, "Previous")}'
            f'<span class="version-count">{number}/{count}</span>{arrow("›", number + 1, "Next")}</div>')


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
    finished: bool = False, switch: str = "",
) -> dict[str, str]:
    """A chatbot message; a reply is preceded by its folded thinking and followed by its sources and stats,
    none of which the model sees again. A ``finished`` document answer has its citations checked;
    ``switch`` is its versions' switch (``version_switch``)."""
    answer = content
    if sources:
        content = answer_with_chips(content, {int(s.get("number") or 0) for s in sources})
    if reasoning.strip():
        thinking = thinking_view(reasoning, thinking_s, still_thinking=still_thinking)
        content = f"{thinking}\n\n{content}" if content else thinking
    if sources:
        content = f"{content}\n\n{sources_view(sources, answer, checked=finished)}"
    if stats:
        content = f"{content}\n\n<sub>{stats_line(stats)}</sub>"
    if incomplete:  # saved while it streamed, and the server stopped (or failed) before its end
        content = f"{content}\n\n<sub>{INCOMPLETE_NOTE}</sub>"
    if switch:
        content = f"{content}\n\n{switch}"
    return {"role": role, "content": content}


def stored_view(messages: Sequence[StoredMessage]) -> list[dict[str, str]]:
    """A saved conversation as the chatbot shows it (the system message is not shown); a branch with
    other versions has its switch under its first reply (under the reply to an edited question)."""
    shown = []
    switch = ""
    for m in messages:
        if m.version is not None:
            switch = version_switch(m.id, *m.version)
        if m.role == "system":
            continue
        shown.append(message_view(m.role, reply_with_calls(m.content, m.meta), m.meta.get("stats"),
                                  m.meta.get("sources"), incomplete=bool(m.meta.get("incomplete")), reasoning=m.reasoning,
                                  thinking_s=m.meta.get("thinking_s"), finished=True,
                                  switch=switch if m.role == "assistant" else ""))
        if m.role == "assistant":
            switch = ""
    return shown


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
