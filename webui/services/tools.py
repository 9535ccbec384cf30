"""Tools the model calls itself in a chat: which ones a user may offer, and the call loop behind the page.

``ToolsService.run_turn`` asks the model with the tools offered, runs each call it makes (after the
user's Run when the tool is not trusted), hands the results back and asks again, until the model
answers in text, the call limit is reached, or Stop is pressed. It yields events the page renders as
they come: text, thinking, a confirmation wanted, a call started, a call finished, and the end.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui.auth import User
from webui.engine import Engine, Message, PromptRequest, SamplingParams
from webui.errors import UserError
from webui.prompts.toolcalls import ToolCall, ToolChoice, ToolRequest, ToolSpec
from webui.rag import Passage, RagError, build_context
from webui.services.access import NotAuthorized
from webui.services.admission import admit
from webui.services.chat import ChatService, ReplyInProgress
from webui.services.documents import DocumentService
from webui.services.streaming import UpdatePacer
from webui.tools import BUILT_IN, CALCULATOR, CLOCK, McpServers, McpServerStatus, Tool, ToolFailed

log = logging.getLogger(__name__)

DEFAULT_TOOL_TIMEOUT_S = 30.0  # --tool-timeout
DEFAULT_MAX_TOOL_CALLS = 8  # --max-tool-calls
RESULT_LIMIT_CHARS = 4000  # a result longer than this is cut for the model (and the page shows what it got)
CONFIRMATION_WAIT_S = 900.0  # a call nobody answers Run or Skip to in this long is skipped
POLL_S = 0.05  # how often a wait looks at Stop
SEARCH_DOCUMENTS = "search_documents"
_SEARCH_SPEC = ToolSpec(
    SEARCH_DOCUMENTS,
    "Search the user's documents for passages about a question. Returns numbered passages with their file "
    "and page; cite them in the answer by number, like [1].",
    {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}},
     "required": ["query"]},
)
LIMIT_NOTE = ("Not run: the limit of {limit} tool calls for one reply was reached. Answer now with what you have, "
              "without calling tools.")
SKIPPED_NOTE = "Not run: the user chose to skip this call."
STOPPED_NOTE = "Not run: the user pressed Stop."


class ToolNotAvailable(NotAuthorized):
    """A tool the user may not offer (unknown, or from a server an admin has not allowed for users)."""


@dataclass(frozen=True)
class ToolInfo:
    """One tool as the page's picker lists it."""

    name: str
    description: str
    source: str  # "built-in" or the MCP server's name
    trusted: bool  # runs without asking


@dataclass(frozen=True)
class TurnRequest:
    """What one reply with tools is asked for."""

    messages: tuple[Message, ...]  # the conversation, a system message first if any; the last is the user's
    tool_names: tuple[str, ...]  # the tools offered (ToolInfo.name)
    sampling: SamplingParams
    conversation_id: str | None = None  # lets the engine reuse the chat's cache
    collections: tuple[str, ...] | None = None  # what search_documents searches; None: every visible one
    first_choice: ToolChoice = ToolChoice()  # e.g. required: the first round must call a tool
    parallel_calls: bool = True  # the model may make several calls in one reply
    thinking: bool | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallAsked:
    """A call the model asked for: its id, the tool, its arguments and where the tool comes from."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    source: str


@dataclass(frozen=True)
class ConfirmationNeeded(ToolCallAsked):
    """The model wants to call a tool that is not trusted: answer with ``ToolsService.answer`` (Run or Skip)."""


@dataclass(frozen=True)
class CallStarted(ToolCallAsked):
    """A call now running."""


@dataclass(frozen=True)
class ToolCallRecord(ToolCallAsked):
    """One call as it went: what was asked, what came back (cut to RESULT_LIMIT_CHARS), how long, what failed."""

    result: str
    duration_s: float
    error: str | None = None
    skipped: bool = False  # not run: skipped by the user, over the limit, stopped or unknown

    def as_meta(self) -> dict[str, Any]:
        """As saved with a reply (JSON)."""
        return {"id": self.call_id, "name": self.name, "arguments": dict(self.arguments), "source": self.source,
                "result": self.result, "duration_s": round(self.duration_s, 3), "error": self.error,
                "skipped": self.skipped}


@dataclass(frozen=True)
class CallFinished:
    record: ToolCallRecord


@dataclass(frozen=True)
class TurnStats:
    rounds: int  # times the model was asked
    tool_calls: int  # calls the model made (run or not)
    prompt_tokens: int  # summed over the rounds
    completion_tokens: int
    total_s: float
    stopped_by_user: bool
    limit_reached: bool
    finish_reason: str


@dataclass(frozen=True)
class TurnDone:
    """The end of the reply: the answer, every call, the messages to keep, and the stats; ``error`` if it failed."""

    text: str
    reasoning: str
    calls: tuple[ToolCallRecord, ...]
    messages: tuple[Message, ...]  # what follows the request's messages: tool-call turns, results, the answer
    stats: TurnStats
    sources: tuple[Passage, ...] = ()  # passages search_documents found, numbered as the answer cites them
    error: str | None = None


ToolTurnEvent = TextDelta | ReasoningDelta | ConfirmationNeeded | CallStarted | CallFinished | TurnDone


@dataclass
class _Decision:
    made: threading.Event = field(default_factory=threading.Event)
    run: bool = False


@dataclass
class _TurnControl:
    """One page's running turn: its Stop flag and the confirmations it waits for."""

    cancel: threading.Event = field(default_factory=threading.Event)
    pending: dict[str, _Decision] = field(default_factory=dict)


def cut_result(text: str, limit: int = RESULT_LIMIT_CHARS) -> str:
    """``text`` within ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters cut]"


class ToolsService:
    """The tools a user may offer the model, and the loop that runs the model's calls."""

    def __init__(self, engine: Engine, chat: ChatService, documents: DocumentService, mcp: McpServers, *,
                 team_mode: bool = False, tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
                 max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS, pacer: UpdatePacer | None = None) -> None:
        """``pacer`` shares the page's redraws with the other replies streaming at once."""
        self._engine = engine
        self._pacer = pacer or UpdatePacer()
        self._chat = chat
        self._documents = documents
        self._mcp = mcp
        self._team_mode = team_mode
        self.tool_timeout_s = tool_timeout_s
        self.max_tool_calls = max_tool_calls
        self._turns: dict[str, _TurnControl] = {}
        self._guard = threading.Lock()

    # -- what may be offered ------------------------------------------------------------------

    def _allowed_servers(self, user: User) -> list[str]:
        """In team mode a plain user gets only the servers the admin allowed for users; admins get all."""
        return [c.name for c in self._mcp.configured()
                if user.is_admin or not self._team_mode or c.allowed_for_users]

    def available(self, user: User) -> list[ToolInfo]:
        """Every tool ``user`` may offer: the built-ins, then the allowed MCP servers' (connected on first use)."""
        tools = self._builtins(user, None) + self._mcp.tools(self._allowed_servers(user))
        return [ToolInfo(t.name, t.spec.description, t.source, t.trusted) for t in tools]

    def server_statuses(self, user: User) -> list[McpServerStatus]:
        """The MCP servers ``user`` may use, as they stand (not started, ready, failed and why)."""
        allowed = set(self._allowed_servers(user))
        return [s for s in self._mcp.statuses() if s.name in allowed]

    def config_error(self) -> str | None:
        """Why the MCP servers file was not used (for an admin), or None."""
        return self._mcp.config_error

    def _builtins(self, user: User, collections: tuple[str, ...] | None, sources: list[Passage] | None = None,
                  ) -> list[Tool]:
        search = Tool(_SEARCH_SPEC, _DocumentSearch(self._chat, self._documents, user.id, collections,
                                                    sources if sources is not None else []), trusted=True)
        return [CALCULATOR, CLOCK, search]

    def _resolve(self, user: User, names: Sequence[str], collections: tuple[str, ...] | None,
                 sources: list[Passage]) -> dict[str, Tool]:
        """The tools named, ToolNotAvailable naming one the user may not offer."""
        by_name = {t.name: t for t in self._builtins(user, collections, sources)}
        allowed = self._allowed_servers(user)
        wanted_servers = {n.split("__", 1)[0] for n in names if n not in by_name and "__" in n}
        by_name.update({t.name: t for t in self._mcp.tools([s for s in allowed if s in wanted_servers])})
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ToolNotAvailable(f"These tools are not available to you: {', '.join(missing)}. "
                                   "Pick tools from the list (an MCP server that failed to start has none).")
        return {n: by_name[n] for n in dict.fromkeys(names)}

    # -- the call loop ------------------------------------------------------------------------

    def run_turn(self, user: User, session_key: str, request: TurnRequest) -> Iterator[ToolTurnEvent]:
        """Stream one reply with tools (see the module's docstring); the tools are checked before it starts.

        ToolNotAvailable at once for a tool the user may not offer; ReplyInProgress at the first event
        when this page already runs a turn. Everything after the start ends in a TurnDone, errors
        included. Text and thinking come in pieces paced like the Chat tab's redraws.
        """
        sources: list[Passage] = []
        tools = self._resolve(user, request.tool_names, request.collections, sources) if request.tool_names else {}
        return self._turn(user, session_key, request, tools, sources)

    def _turn(self, user: User, session_key: str, request: TurnRequest, tools: dict[str, Tool],
              sources: list[Passage]) -> Iterator[ToolTurnEvent]:
        # Claimed when the turn starts (its first event), so a turn never started never holds the page.
        with self._guard:
            if session_key in self._turns:
                raise ReplyInProgress(session_key)
            control = self._turns[session_key] = _TurnControl()
        started = time.monotonic()
        messages: list[Message] = list(request.messages)
        added: list[Message] = []
        records: list[ToolCallRecord] = []
        text = reasoning = ""
        rounds = prompt_tokens = completion_tokens = calls_made = 0
        limit_reached = stopped = False
        finish = "stop"
        error: str | None = None
        try:
            while True:
                choice = request.first_choice if rounds == 0 else ToolChoice()
                if limit_reached:
                    choice = ToolChoice("none")
                offered = ToolRequest(tuple(t.spec for t in tools.values()), choice=choice,
                                      parallel=request.parallel_calls) if tools else None
                rounds += 1
                text, reasoning, calls, stats = "", "", [], None
                prompt = admit(self._engine, PromptRequest(request.sampling, messages=tuple(messages), tools=offered,
                                                           thinking=request.thinking))
                chunks = self._engine.stream(prompt, cancel=control.cancel, user=user.id,
                                             conversation=request.conversation_id)
                pending_text = pending_reasoning = ""
                shown_at = 0.0
                try:
                    for chunk in chunks:
                        text += chunk.text
                        reasoning += chunk.reasoning
                        pending_text += chunk.text
                        pending_reasoning += chunk.reasoning
                        calls.extend(chunk.tool_calls)
                        if chunk.stats is not None:
                            stats = chunk.stats
                        if time.monotonic() - shown_at >= self._pacer.interval() or chunk.stats is not None:
                            shown_at = time.monotonic()
                            if pending_reasoning:
                                yield ReasoningDelta(pending_reasoning)
                            if pending_text:
                                yield TextDelta(pending_text)
                            pending_text = pending_reasoning = ""
                finally:
                    if hasattr(chunks, "close"):
                        chunks.close()
                if pending_reasoning:
                    yield ReasoningDelta(pending_reasoning)
                if pending_text:
                    yield TextDelta(pending_text)
                if stats is not None:
                    prompt_tokens += stats.prompt_tokens
                    completion_tokens += stats.completion_tokens
                    finish = stats.finish_reason
                    stopped = stats.stopped_by_user
                stopped = stopped or control.cancel.is_set()
                if not calls or stopped:
                    if text or not calls:
                        added.append({"role": "assistant", "content": text})
                    break
                turn: Message = {"role": "assistant", "content": text, "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": dict(c.arguments)}}
                    for c in calls]}
                messages.append(turn)
                added.append(turn)
                for call in calls:
                    calls_made += 1
                    if calls_made > self.max_tool_calls:
                        limit_reached = True
                        record = self._not_run(call, tools, LIMIT_NOTE.format(limit=self.max_tool_calls))
                    else:
                        record = yield from self._one_call(call, tools, control)
                    records.append(record)
                    yield CallFinished(record)
                    result = record.result if record.error is None else f"Error: {record.error}"
                    tool_turn: Message = {"role": "tool", "tool_call_id": call.id, "name": call.name,
                                          "content": result}
                    messages.append(tool_turn)
                    added.append(tool_turn)
                if calls_made >= self.max_tool_calls:
                    limit_reached = True
                if control.cancel.is_set():
                    stopped = True
                    break
        except UserError as exc:  # a refusal (too long, over the context) or an engine failure
            log.warning("tool turn failed: %s", exc)
            error = str(exc)
            finish = "error"
        finally:
            control.cancel.set()  # the page went away mid-turn: a running call is abandoned too
            with self._guard:
                self._turns.pop(session_key, None)
        yield TurnDone(
            text=text, reasoning=reasoning, calls=tuple(records), messages=tuple(added), sources=tuple(sources),
            error=error, stats=TurnStats(
                rounds=rounds, tool_calls=calls_made, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens, total_s=time.monotonic() - started, stopped_by_user=stopped,
                limit_reached=limit_reached, finish_reason="stopped" if stopped else finish),
        )

    def _not_run(self, call: ToolCall, tools: Mapping[str, Tool], note: str) -> ToolCallRecord:
        source = tools[call.name].source if call.name in tools else BUILT_IN
        return ToolCallRecord(call.id, call.name, call.arguments, source, note, 0.0, skipped=True)

    def _one_call(self, call: ToolCall, tools: Mapping[str, Tool],
                  control: _TurnControl) -> Iterator[ToolTurnEvent]:
        """Ask (if untrusted), run with the timeout, and return the record (a generator's return value)."""
        tool = tools.get(call.name)
        if tool is None:
            return ToolCallRecord(call.id, call.name, call.arguments, "", "", 0.0, skipped=True,
                                  error=f"There is no tool named {call.name!r}; the tools are "
                                        f"{', '.join(tools)}.")
        if not tool.trusted:
            decision = _Decision()
            control.pending[call.id] = decision
            yield ConfirmationNeeded(call.id, call.name, call.arguments, tool.source)
            answered = _wait(decision.made, control.cancel, CONFIRMATION_WAIT_S)
            control.pending.pop(call.id, None)
            if control.cancel.is_set():
                return self._not_run(call, tools, STOPPED_NOTE)
            if not answered or not decision.run:
                return self._not_run(call, tools, SKIPPED_NOTE)
        yield CallStarted(call.id, call.name, call.arguments, tool.source)
        started = time.monotonic()
        result, error = self._run_with_timeout(tool, call, control.cancel)
        return ToolCallRecord(call.id, call.name, call.arguments, tool.source, cut_result(result),
                              time.monotonic() - started, error=error)

    def _run_with_timeout(self, tool: Tool, call: ToolCall, cancel: threading.Event) -> tuple[str, str | None]:
        """(result, None) or ("", the reason it failed); never waits past the timeout or a Stop."""
        abandoned = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = tool.run(call.arguments, abandoned)
            except ToolFailed as exc:
                outcome["error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a tool's own bug is reported to the model, and logged
                log.exception("tool %s failed", call.name)
                outcome["error"] = f"The tool failed unexpectedly ({type(exc).__name__}: {exc})."
            finally:
                finished.set()

        finished = threading.Event()
        threading.Thread(target=work, name=f"tool-{call.name}", daemon=True).start()
        if not _wait(finished, cancel, self.tool_timeout_s):
            abandoned.set()
            if cancel.is_set():
                return "", "Stopped by the user."
            log.warning("tool %s did not answer within %.0f s", call.name, self.tool_timeout_s)
            return "", f"The tool did not answer within {self.tool_timeout_s:g} seconds."
        if "error" in outcome:
            return "", outcome["error"]
        return str(outcome.get("result", "")), None

    # -- the page's controls -------------------------------------------------------------------

    def answer(self, session_key: str, call_id: str, run: bool) -> bool:
        """Run (True) or Skip (False) the call awaiting confirmation; False if none is waiting."""
        with self._guard:
            control = self._turns.get(session_key)
        decision = control.pending.get(call_id) if control else None
        if decision is None:
            return False
        decision.run = run
        decision.made.set()
        return True

    def stop(self, session_key: str) -> bool:
        """Stop this page's turn: the reply, a waiting confirmation and a running call end; False if none runs."""
        with self._guard:
            control = self._turns.get(session_key)
        if control is None:
            return False
        control.cancel.set()
        return True

    def close(self) -> None:
        """At shutdown: close the MCP connections (stdio servers are stopped)."""
        self._mcp.close()


def _wait(done: threading.Event, cancel: threading.Event, timeout: float) -> bool:
    """Wait for ``done`` up to ``timeout`` seconds, giving up at once when ``cancel`` is set."""
    deadline = time.monotonic() + timeout
    while not done.wait(POLL_S):
        if cancel.is_set() or time.monotonic() >= deadline:
            return done.is_set()
    return True


@dataclass
class _DocumentSearch:
    """search_documents for one user's turn: their visible collections (or the chat's), with the
    Documents path's per-collection k and cut-off; passages are numbered across the turn's searches."""

    chat: ChatService
    documents: DocumentService
    owner: str
    collections: tuple[str, ...] | None
    sources: list[Passage]

    def __call__(self, arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed('search_documents needs {"query": "..."}, the words to look for.')
        try:
            names = list(self.collections) if self.collections is not None else \
                self.documents.collection_names(self.owner)
            if not names:
                return "The user has no document collections to search."
            found = self.chat.document_library().retrieve(self.owner, query, names)
        except RagError as exc:
            raise ToolFailed(str(exc)) from None
        if not found:
            return "Nothing in the documents matches this query."
        first = len(self.sources) + 1
        numbered = [dataclasses.replace(p, number=first + i) for i, p in enumerate(found)]
        self.sources.extend(numbered)
        return build_context(numbered, max_chars=RESULT_LIMIT_CHARS - 200) + \
            "\n\nCite the passages you use by their number, like [1]."


# What the page may name (McpServerStatus comes from webui.tools, which the faces do not import).
__all__ = [
    "DEFAULT_MAX_TOOL_CALLS", "DEFAULT_TOOL_TIMEOUT_S", "RESULT_LIMIT_CHARS", "CallFinished", "CallStarted",
    "ConfirmationNeeded", "McpServerStatus", "ReasoningDelta", "TextDelta", "ToolCallRecord", "ToolChoice", "ToolInfo",
    "ToolNotAvailable", "ToolTurnEvent", "ToolsService", "TurnDone", "TurnRequest", "TurnStats", "cut_result",
]
