"""How a reply written with tools looks: its text parts with each tool call folded between them, in order.

A call is a dict like ``ToolCallRecord.as_meta()`` (what a saved reply keeps), with a ``state`` while the
reply streams ("waiting" for Run or Skip, "running"); the same view serves the stream and a reopened chat.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from webui.services.chat import TOOL_CALLS_KEY, TOOL_TURNS_KEY
from webui.services.tools import cut_result

SHOWN_RESULT_CHARS = 1500  # a result longer than this is cut in the page (the model got up to RESULT_LIMIT_CHARS)
TOOL_STATS_KEY = "tool_stats"

Segment = str | Mapping[str, Any]  # a text part, or a call


def call_summary(call: Mapping[str, Any]) -> str:
    """The folded block's one line: the tool, where it comes from, and how it went."""
    source = call.get("source")
    name = str(call.get("name", ""))
    if source and name.startswith(f"{source}__"):
        name = name[len(source) + 2:]  # an MCP server's tool, named after its server in the summary
    name = html.escape(name)
    label = f"Tool <b>{name}</b>" + (f" ({html.escape(str(source))})" if source and source != "built-in" else "")
    state = call.get("state")
    if state == "waiting":
        return f"{label} · waiting for Run or Skip"
    if state == "running":
        return f"{label} · running…"
    if call.get("skipped"):
        return f"{label} · not run"
    took = call.get("duration_s")
    seconds = f" · {float(took):.2f} s" if isinstance(took, (int, float)) else ""
    return f"{label}{seconds}" + (" · failed" if call.get("error") else "")


def call_block(call: Mapping[str, Any]) -> str:
    """One call folded: its summary, then the arguments, the result (cut) and the error, if any, escaped."""
    arguments = html.escape(json.dumps(call.get("arguments") or {}, ensure_ascii=False, indent=1))
    parts = [f"<p>Arguments</p><pre>{arguments}</pre>"]
    result = str(call.get("result") or "")
    if result:
        parts.append(f"<p>Result</p><pre>{html.escape(cut_result(result, SHOWN_RESULT_CHARS))}</pre>")
    if call.get("error"):
        parts.append(f"<p class=\"tool-error\">Error: {html.escape(str(call['error']))}</p>")
    return f"<details class=\"tool-call\"><summary>{call_summary(call)}</summary>\n\n" + "\n".join(parts) + \
        "\n\n</details>"


def segments_view(segments: Sequence[Segment]) -> str:
    """The text parts as Markdown and the calls as folded blocks, in the order they came."""
    shown = [part.strip() if isinstance(part, str) else call_block(part) for part in segments]
    return "\n\n".join(part for part in shown if part)


def stored_segments(content: str, meta: Mapping[str, Any]) -> list[Segment]:
    """A saved reply's parts in order: each tool-call turn's text and its calls, then the answer."""
    records = {str(r.get("id")): r for r in meta.get(TOOL_CALLS_KEY) or [] if isinstance(r, Mapping)}
    segments: list[Segment] = []
    shown: set[str] = set()
    for turn in meta.get(TOOL_TURNS_KEY) or []:
        if not isinstance(turn, Mapping) or turn.get("role") != "assistant":
            continue  # a tool result: its call's record shows it
        if turn.get("content"):
            segments.append(str(turn["content"]))
        for call in turn.get("tool_calls") or []:
            call_id = str(call.get("id")) if isinstance(call, Mapping) else ""
            if call_id in records:
                segments.append(records[call_id])
                shown.add(call_id)
    segments += [record for call_id, record in records.items() if call_id not in shown]
    segments.append(content)
    return segments


def tool_stats_line(stats: Mapping[str, Any]) -> str:
    """The small line under a reply with tools: calls, rounds, tokens, time."""
    calls = int(stats.get("tool_calls") or 0)
    line = (f"{calls} tool call{'' if calls == 1 else 's'} · {int(stats.get('rounds') or 0)} rounds · "
            f"{int(stats.get('completion_tokens') or 0)} tokens · {float(stats.get('total_s') or 0):.1f} s")
    if stats.get("limit_reached"):
        line += " · call limit reached"
    if stats.get("stopped_by_user"):
        line += " · stopped"
    return line


def reply_with_calls(content: str, meta: Mapping[str, Any]) -> str:
    """A saved reply's text with its tool calls folded in order and its tools stats line; as saved if it has none."""
    if not meta.get(TOOL_CALLS_KEY) and not meta.get(TOOL_TURNS_KEY):
        return content
    body = segments_view(stored_segments(content, meta))
    stats = meta.get(TOOL_STATS_KEY)
    return f"{body}\n\n<sub>{tool_stats_line(stats)}</sub>" if isinstance(stats, Mapping) else body
