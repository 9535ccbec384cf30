"""What the tool-loop tests share: an engine that replies from a script, a stand-in for the MCP servers
with tools written in Python, and a helper that drives a turn answering confirmations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from webui.auth import User
from webui.engine import FittedPrompt, GenerationStats, PromptRequest, SamplingParams, StreamChunk
from webui.prompts.toolcalls import ToolCall
from webui.services.tools import ConfirmationNeeded, ToolsService, ToolTurnEvent, TurnDone, TurnRequest
from webui.tools import McpServerConfig, McpServerStatus, Tool

GREEDY = SamplingParams(temperature=0.0, top_k=1, max_tokens=64, seed=1)


def stats(*, stopped: bool = False, finish: str = "stop") -> GenerationStats:
    return GenerationStats(prompt_tokens=10, completion_tokens=3, ttft_s=0.01, total_s=0.02, stopped_by_user=stopped,
                           dropped_messages=0, finish_reason="stopped" if stopped else finish)


def call(name: str, arguments: dict | None = None, call_id: str = "call_1") -> ToolCall:
    return ToolCall(call_id, name, arguments or {})


@dataclass
class ScriptedEngine:
    """Replies round by round from ``rounds`` (each: text pieces and tool calls); records every request."""

    rounds: list[Sequence[str | ToolCall]]
    requests: list[PromptRequest] = field(default_factory=list)

    def prepare(self, request: PromptRequest) -> FittedPrompt:
        self.requests.append(request)
        return FittedPrompt(request, tokens=[], prompt_tokens=10, sampling=request.sampling, stop=())

    def stream(self, prompt: FittedPrompt, *, cancel: threading.Event, user: str | None = None,
               conversation: str | None = None) -> Iterator[StreamChunk]:
        script = self.rounds.pop(0) if self.rounds else ["(no more script)"]
        calls = tuple(piece for piece in script if isinstance(piece, ToolCall))
        for piece in script:
            if cancel.is_set():
                yield StreamChunk(stats=stats(stopped=True))
                return
            if isinstance(piece, str):
                yield StreamChunk(text=piece)
        if calls:
            yield StreamChunk(tool_calls=calls)
        yield StreamChunk(stats=stats(finish="tool_calls" if calls else "stop"))


@dataclass
class PythonServers:
    """Stands in for McpServers: ``tools`` as one configured server's, with its team-mode flag."""

    tools_by_server: dict[str, list[Tool]]
    allowed_for_users: frozenset[str] = frozenset()
    closed: bool = False
    config_error: str | None = None

    def configured(self) -> tuple[McpServerConfig, ...]:
        return tuple(McpServerConfig(name, command="python", allowed_for_users=name in self.allowed_for_users)
                     for name in self.tools_by_server)

    def tools(self, servers: Sequence[str] | None = None) -> list[Tool]:
        return [t for name, tools in self.tools_by_server.items() if servers is None or name in servers for t in tools]

    def statuses(self) -> list[McpServerStatus]:
        return [McpServerStatus(name, "stdio", "ready", tuple(t.name for t in tools))
                for name, tools in self.tools_by_server.items()]

    def close(self) -> None:
        self.closed = True


def run_answering(service: ToolsService, user: User, request: TurnRequest, *, session: str = "page-1",
                  decide: Callable[[ConfirmationNeeded], bool | None] = lambda _: True,
                  ) -> tuple[list[ToolTurnEvent], TurnDone]:
    """All of a turn's events, answering each confirmation with ``decide`` (None: leave it unanswered)."""
    events: list[ToolTurnEvent] = []
    for event in service.run_turn(user, session, request):
        events.append(event)
        if isinstance(event, ConfirmationNeeded):
            run = decide(event)
            if run is not None:
                assert service.answer(session, event.call_id, run)
    done = events[-1]
    assert isinstance(done, TurnDone)
    return events, done


def of_type(events: Iterable[ToolTurnEvent], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]
