"""The Chat tab's tools: the per-chat Tools picker, a reply written with tools, and its Run / Skip buttons.

With no tool picked the reply is the plain one of ``ChatHandlers.generate``; with tools, Send runs
``ToolsService.run_turn`` and the reply shows its text and thinking as they stream, each call folded
between the text parts (tool_calls_view.py). An untrusted tool's call waits for Run or Skip; Stop ends
the loop and any running call. The reply is saved with its calls and the tool turns the model saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from webui.services import Services
from webui.services.chat import TOOL_CALLS_KEY, TOOL_TURNS_KEY, sources_meta
from webui.services.tools import (
    CallFinished,
    CallStarted,
    ConfirmationNeeded,
    ReasoningDelta,
    TextDelta,
    ToolChoice,
    ToolInfo,
    ToolTurnEvent,
    TurnDone,
    TurnRequest,
)
from webui.services.types import HistoryError
from webui.ui.chat_handlers import ChatHandlers, ReplyForm
from webui.ui.chat_view import message_view, writing_notice
from webui.ui.feedback import handled
from webui.ui.tool_calls_view import TOOL_STATS_KEY, Segment, segments_view

BUILT_IN_SOURCE = "built-in"
NO_CONFIRMATION = (gr.update(visible=False), "")  # the Run / Skip row hidden, no call waiting


def tool_label(tool: ToolInfo) -> str:
    """How the picker names a tool: grouped by where it comes from ("built-in: calculator", "files: read")."""
    name = tool.name.split("__", 1)[1] if tool.source != BUILT_IN_SOURCE and "__" in tool.name else tool.name
    ask = "" if tool.trusted else " (asks before running)"
    return f"{tool.source}: {name}{ask}"


@dataclass
class ToolReplyProgress:
    """A reply with tools as it streams: text parts and calls in order, and all its thinking."""

    segments: list[Segment] = field(default_factory=list)
    reasoning: str = ""

    def add(self, event: ToolTurnEvent) -> None:
        if isinstance(event, TextDelta):
            if self.segments and isinstance(self.segments[-1], str):
                self.segments[-1] += event.text
            else:
                self.segments.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, ConfirmationNeeded | CallStarted):
            state = "waiting" if isinstance(event, ConfirmationNeeded) else "running"
            self._put({"id": event.call_id, "name": event.name, "arguments": dict(event.arguments),
                       "source": event.source, "state": state})
        elif isinstance(event, CallFinished):
            self._put(event.record.as_meta())

    def _put(self, call: dict[str, Any]) -> None:
        """A call's block, in place of its earlier state (waiting, running), else after what came before."""
        for index, segment in enumerate(self.segments):
            if isinstance(segment, Mapping) and segment.get("id") == call["id"]:
                self.segments[index] = call
                return
        self.segments.append(call)

    def has_text(self) -> bool:
        return any(isinstance(s, str) and s.strip() for s in self.segments)

    def view(self, sources: list[dict[str, Any]] | None = None) -> dict[str, str]:
        return message_view("assistant", segments_view(self.segments), sources=sources, reasoning=self.reasoning,
                            still_thinking=not self.segments)


def tool_reply_meta(done: TurnDone) -> tuple[str, dict[str, Any]]:
    """The answer to save and its meta: the call records, the tool turns the model saw, sources and stats.

    A turn stopped during its calls has no answer of its own: its last text is kept in its tool turn.
    """
    turns = list(done.messages)
    answer = ""
    if turns and turns[-1].get("role") == "assistant" and not turns[-1].get("tool_calls"):
        answer = str(turns.pop()["content"])
    meta: dict[str, Any] = {TOOL_CALLS_KEY: [r.as_meta() for r in done.calls], TOOL_TURNS_KEY: turns,
                            TOOL_STATS_KEY: dataclasses.asdict(done.stats)}
    if done.sources:
        meta["sources"] = sources_meta(done.sources)
    if done.error:
        meta["incomplete"] = True
    return answer, meta


class ToolChatHandlers:
    """The events of the Chat tab that concern tools; the rest is ``ChatHandlers``'."""

    def __init__(self, services: Services, chat: ChatHandlers) -> None:
        self.services = services
        self.chat = chat

    def choices(self, username: str | None) -> list[tuple[str, str]]:
        return [(tool_label(t), t.name) for t in self.services.tools.available(self.services.user(username))]

    def servers_note(self, username: str | None) -> str:
        """The servers that failed, with their reason (their tools are not offered)."""
        user = self.services.user(username)
        lines = [f"- MCP server **{s.name}** is not available: {s.error or 'it failed to start'}"
                 for s in self.services.tools.server_statuses(user) if s.state == "failed"]
        problem = self.services.tools.config_error() if user.is_admin else None
        if problem:
            lines.append(f"- The MCP servers file was not used: {problem}")
        return "\n".join(lines)

    @handled("Listing the tools for the chat", lambda message: (gr.update(), f"Tools unavailable: {message}"))
    def tool_choices(self, username: str | None, picked: Sequence[str] | None) -> tuple[Any, str]:
        """The tools this user may offer, keeping the picks that are still offered, and the failed servers."""
        choices = self.choices(username)
        offered = {name for _, name in choices}
        return (gr.update(choices=choices, value=[p for p in picked or [] if p in offered]),
                self.servers_note(username))

    @handled("Opening the chat's tools", lambda message: (gr.update(), ""))
    def restore_tools(self, username: str | None, current: str | None) -> tuple[Any, str]:
        """The open chat's own tools picked again (those still offered); a new chat starts with none."""
        saved: Sequence[str] = ()
        if current:
            try:
                saved = self.services.chat.conversation(self.chat.owner(username), current).tools
            except HistoryError:
                saved = ()
        return self.tool_choices(username, saved)

    @handled("Choosing the chat's tools", lambda message: None)
    def save_tools(self, username: str | None, current: str | None, picked: Sequence[str] | None) -> None:
        """The picked tools belong to the open chat (a new chat saves them with its first reply)."""
        if current is not None:
            try:
                self.services.chat.set_tools(self.chat.owner(username), current, list(picked or []))
            except HistoryError:
                pass  # deleted meanwhile (another page)

    def generate(self, username: str | None, page_key: str, current: str | None,
                 form: ReplyForm) -> Iterator[tuple[Any, ...]]:
        """The reply: with tools picked, through the tool loop; else the plain one. Outputs: the conversation,
        the notice, the Run / Skip row and the id of the call waiting for it."""
        if current is not None:
            try:
                self.services.chat.set_tools(self.chat.owner(username), current, list(form.tools or []))
            except HistoryError:
                pass  # deleted meanwhile: the reply shows that
        if not form.tools:
            for view, notice in self.chat.generate(username, page_key, current, form):
                yield view, notice, *NO_CONFIRMATION
            return
        yield from self.tool_reply(username, page_key, current, form)

    @handled("Writing a reply with tools", lambda message: (gr.update(), f"**Error:** {message}", *NO_CONFIRMATION))
    def tool_reply(self, username: str | None, page_key: str, current: str | None,
                   form: ReplyForm) -> Iterator[tuple[Any, ...]]:
        """Stream a reply with the chat's tools, each call folded in as it goes; then show the chat as saved."""
        if current is None:
            return
        owner = self.chat.owner(username)
        saved = self.chat.shown(owner, current)
        if not saved or saved[-1]["role"] != "user":
            yield saved, "", *NO_CONFIRMATION
            return
        request = TurnRequest(
            messages=tuple(self.services.chat.tool_conversation(owner, current, form.system_prompt)),
            tool_names=tuple(form.tools or ()), sampling=form.sampling(), conversation_id=current,
            collections=tuple(form.collections) if form.collections else None, thinking=form.thinking(),
            first_choice=ToolChoice("required") if form.tool_first else ToolChoice())
        events = self.services.tools.run_turn(self.services.user(username), page_key, request)
        yield saved, writing_notice(None), *NO_CONFIRMATION
        progress = ToolReplyProgress()
        done: TurnDone | None = None
        for event in events:
            if isinstance(event, TurnDone):
                done = event
                break
            progress.add(event)
            if isinstance(event, ConfirmationNeeded):
                yield (saved + [progress.view()], f"The model wants to run **{event.name}**: Run or Skip?",
                       gr.update(visible=True), event.call_id)
            else:
                yield saved + [progress.view()], writing_notice(None), *NO_CONFIRMATION
        if done is None:
            return
        answer, meta = tool_reply_meta(done)
        if answer or done.calls:
            try:
                self.services.chat.save_tool_reply(owner, current, answer, meta, progress.reasoning)
            except HistoryError:  # cleared or deleted meanwhile: nothing to show it in
                yield self.chat.shown(owner, current), "", *NO_CONFIRMATION
                return
        shown = self.chat.shown(owner, current)
        if done.error:
            gr.Warning(done.error)
            yield shown, f"**Error:** {done.error}", *NO_CONFIRMATION
            return
        yield shown, "", *NO_CONFIRMATION

    @handled("Answering a tool call", lambda message: NO_CONFIRMATION)
    def answer_call(self, username: str | None, page_key: str, call_id: str | None, run: bool) -> tuple[Any, str]:
        """Run or Skip the call waiting; the row hides either way (a call no longer waiting is let be)."""
        self.services.user(username)  # a signed-out page answers nothing
        if call_id:
            self.services.tools.answer(page_key, call_id, run)
        return NO_CONFIRMATION

    def run_call(self, username: str | None, page_key: str, call_id: str | None) -> tuple[Any, str]:
        return self.answer_call(username, page_key, call_id, True)

    def skip_call(self, username: str | None, page_key: str, call_id: str | None) -> tuple[Any, str]:
        return self.answer_call(username, page_key, call_id, False)
