"""The tool-call loop's control flow with a scripted engine: calls run and handed back, Run/Skip, timeouts,
failures, the call limit, Stop, and which tools a user may offer."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.tool_turns import GREEDY, PythonServers, ScriptedEngine, call, of_type, run_answering
from webui.auth import User
from webui.prompts.toolcalls import ToolChoice, ToolSpec
from webui.services.access import LOCAL_USER
from webui.services.chat import ReplyInProgress
from webui.services.tools import (
    LIMIT_NOTE,
    SKIPPED_NOTE,
    CallFinished,
    CallStarted,
    ConfirmationNeeded,
    ReasoningDelta,
    TextDelta,
    ToolNotAvailable,
    ToolsService,
    TurnRequest,
)
from webui.tools import Tool, ToolFailed

QUESTION = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 6 * 7?"})
PLAIN_USER = User(name="ann", is_admin=False)


def python_tool(name: str, run, *, trusted: bool = False) -> Tool:
    return Tool(ToolSpec(f"py__{name}", f"{name} for tests"), run, source="py", trusted=trusted)


def echo(arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
    return f"echo {dict(arguments)}"


def slow(_arguments: Mapping[str, Any], abandoned: threading.Event) -> str:
    abandoned.wait(30)
    slow.abandoned = abandoned.is_set()
    return "too late"


def broken(_arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
    raise ToolFailed("The database is locked.")


def service(rounds, *, timeout: float = 5.0, limit: int = 8, team: bool = False, allowed=frozenset()):
    engine = ScriptedEngine(list(rounds))
    servers = PythonServers({"py": [python_tool("echo", echo), python_tool("slow", slow, trusted=True),
                                    python_tool("broken", broken, trusted=True)]}, allowed_for_users=allowed)
    tools = ToolsService(engine, chat=None, documents=None, mcp=servers, team_mode=team,  # type: ignore[arg-type]
                         tool_timeout_s=timeout, max_tool_calls=limit)
    return tools, engine


def ask(*names: str, first: ToolChoice = ToolChoice()) -> TurnRequest:
    return TurnRequest(QUESTION, names, GREEDY, first_choice=first)


def test_a_reply_without_calls_streams_its_text_and_ends() -> None:
    tools, engine = service([["The answer ", "is 42."]])
    events, done = run_answering(tools, LOCAL_USER, ask("calculator"))
    assert "".join(e.text for e in of_type(events, TextDelta)) == "The answer is 42."
    assert done.text == "The answer is 42." and done.calls == () and done.error is None
    assert done.messages == ({"role": "assistant", "content": "The answer is 42."},)
    assert engine.requests[0].tools.names() == ("calculator",)


def test_a_call_runs_its_result_goes_back_to_the_model_and_the_answer_follows() -> None:
    tools, engine = service([[call("calculator", {"expression": "6 * 7"})], ["6 * 7 = 42."]])
    events, done = run_answering(tools, LOCAL_USER, ask("calculator", "current_time", first=ToolChoice("required")))
    started, finished = of_type(events, CallStarted), of_type(events, CallFinished)
    assert [(s.name, dict(s.arguments), s.source) for s in started] == [("calculator", {"expression": "6 * 7"},
                                                                         "built-in")]
    assert finished[0].record.result == "42" and finished[0].record.error is None
    assert not of_type(events, ConfirmationNeeded), "the calculator is trusted"
    assert done.text == "6 * 7 = 42." and done.stats.rounds == 2 and done.stats.tool_calls == 1
    # The first round was forced to call, the next one left to the model.
    assert [r.tools.choice.mode for r in engine.requests] == ["required", "auto"]
    second = engine.requests[1].messages
    assert second[:2] == QUESTION
    assert second[2]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "6 * 7"}}
    assert second[3] == {"role": "tool", "tool_call_id": "call_1", "name": "calculator", "content": "42"}
    assert done.messages[-1] == {"role": "assistant", "content": "6 * 7 = 42."}
    assert len(done.messages) == 3


def test_thinking_streams_apart_from_the_answer() -> None:
    tools, _ = service([[]])
    engine = tools._engine
    original = engine.stream

    def with_thinking(prompt, **kwargs):
        from webui.engine import StreamChunk
        yield StreamChunk(reasoning="Let me think.")
        yield from original(prompt, **kwargs)

    engine.stream = with_thinking
    events, done = run_answering(tools, LOCAL_USER, ask())
    assert [e.text for e in of_type(events, ReasoningDelta)] == ["Let me think."]
    assert done.reasoning == "Let me think."


def test_an_untrusted_tool_waits_for_run_and_runs() -> None:
    tools, _ = service([[call("py__echo", {"x": 1})], ["done"]])
    events, done = run_answering(tools, LOCAL_USER, ask("py__echo"), decide=lambda _: True)
    asked = of_type(events, ConfirmationNeeded)
    assert [(a.name, dict(a.arguments), a.source) for a in asked] == [("py__echo", {"x": 1}, "py")]
    assert events.index(asked[0]) < events.index(of_type(events, CallStarted)[0])
    assert done.calls[0].result == "echo {'x': 1}" and not done.calls[0].skipped


def test_a_skipped_call_is_not_run_and_the_model_is_told() -> None:
    tools, engine = service([[call("py__echo")], ["I could not check."]])
    events, done = run_answering(tools, LOCAL_USER, ask("py__echo"), decide=lambda _: False)
    assert not of_type(events, CallStarted)
    assert done.calls[0].skipped and done.calls[0].result == SKIPPED_NOTE
    assert engine.requests[1].messages[-1]["content"] == SKIPPED_NOTE
    assert done.text == "I could not check."


def test_a_slow_tool_is_abandoned_at_the_timeout_and_reported() -> None:
    tools, engine = service([[call("py__slow")], ["It took too long."]], timeout=0.3)
    started = time.monotonic()
    _, done = run_answering(tools, LOCAL_USER, ask("py__slow"))
    assert time.monotonic() - started < 3
    record = done.calls[0]
    assert record.error == "The tool did not answer within 0.3 seconds." and 0.3 <= record.duration_s < 2
    assert engine.requests[1].messages[-1]["content"] == "Error: The tool did not answer within 0.3 seconds."
    time.sleep(0.2)
    assert slow.abandoned, "the tool was told to give up"


def test_a_failing_tool_is_reported_to_the_model_and_the_caller() -> None:
    tools, engine = service([[call("py__broken")], ["Sorry."]])
    events, done = run_answering(tools, LOCAL_USER, ask("py__broken"))
    assert of_type(events, CallFinished)[0].record.error == "The database is locked."
    assert engine.requests[1].messages[-1]["content"] == "Error: The database is locked."
    assert done.text == "Sorry." and done.error is None


def test_a_call_to_a_tool_not_offered_is_answered_with_the_tools_that_are() -> None:
    tools, engine = service([[call("rm_rf", {})], ["ok"]])
    _, done = run_answering(tools, LOCAL_USER, ask("calculator"))
    assert "There is no tool named 'rm_rf'; the tools are calculator." in engine.requests[1].messages[-1]["content"]


def test_the_call_limit_stops_calls_and_the_model_must_answer() -> None:
    rounds = [[call("calculator", {"expression": "1+1"}, "a")], [call("calculator", {"expression": "2+2"}, "b"),
                                                                  call("calculator", {"expression": "3+3"}, "c")],
              ["Enough."]]
    tools, engine = service(rounds, limit=2)
    _, done = run_answering(tools, LOCAL_USER, ask("calculator"))
    assert [c.result for c in done.calls] == ["2", "4", LIMIT_NOTE.format(limit=2)]
    assert done.calls[2].skipped
    assert done.stats.limit_reached and done.stats.tool_calls == 3
    assert engine.requests[-1].tools.choice.mode == "none"
    assert done.text == "Enough."


def test_stop_during_a_call_ends_the_turn_and_the_call() -> None:
    tools, engine = service([[call("py__slow")], ["never"]], timeout=20)
    events = []
    started = time.monotonic()
    for event in tools.run_turn(LOCAL_USER, "page-1", ask("py__slow")):
        events.append(event)
        if isinstance(event, CallStarted):
            threading.Timer(0.2, tools.stop, args=("page-1",)).start()
    done = events[-1]
    assert time.monotonic() - started < 3
    assert done.stats.stopped_by_user and done.stats.finish_reason == "stopped"
    assert done.calls[0].error == "Stopped by the user."
    assert len(engine.requests) == 1, "the model is not asked again"
    assert not tools.stop("page-1"), "nothing runs any more"


def test_stop_while_a_confirmation_waits_ends_the_turn() -> None:
    tools, _ = service([[call("py__echo")], ["never"]])
    events = []
    for event in tools.run_turn(LOCAL_USER, "page-1", ask("py__echo")):
        events.append(event)
        if isinstance(event, ConfirmationNeeded):
            threading.Timer(0.1, tools.stop, args=("page-1",)).start()
    assert events[-1].stats.stopped_by_user and events[-1].calls[0].skipped


def test_one_page_runs_one_turn_at_a_time() -> None:
    tools, _ = service([["a"], ["b"]])
    first = tools.run_turn(LOCAL_USER, "page-1", ask())
    next(first)
    with pytest.raises(ReplyInProgress, match="still being written"):
        next(tools.run_turn(LOCAL_USER, "page-1", ask()))
    list(first)
    assert list(tools.run_turn(LOCAL_USER, "page-1", ask()))[-1].text == "b"


def test_a_plain_user_cannot_offer_a_server_not_allowed_for_users() -> None:
    tools, _ = service([["x"]], team=True)
    with pytest.raises(ToolNotAvailable, match="not available to you: py__echo"):
        tools.run_turn(PLAIN_USER, "page-1", ask("py__echo"))
    assert [t.name for t in tools.available(PLAIN_USER)] == ["calculator", "current_time", "search_documents"]
    assert tools.server_statuses(PLAIN_USER) == []
    assert "py__echo" in [t.name for t in tools.available(User(name="root", is_admin=True))]


def test_a_server_allowed_for_users_is_offered_to_them() -> None:
    tools, _ = service([[call("py__echo")], ["ok"]], team=True, allowed=frozenset({"py"}))
    infos = {t.name: t for t in tools.available(PLAIN_USER)}
    assert infos["py__echo"].source == "py" and not infos["py__echo"].trusted
    _, done = run_answering(tools, PLAIN_USER, ask("py__echo"))
    assert done.calls[0].result == "echo {}"


def test_text_comes_in_paced_pieces_not_token_by_token() -> None:
    tools, _ = service([[f"w{i} " for i in range(50)]])
    events, done = run_answering(tools, LOCAL_USER, ask())
    pieces = of_type(events, TextDelta)
    assert "".join(p.text for p in pieces) == done.text == "".join(f"w{i} " for i in range(50))
    assert len(pieces) < 10, "50 tokens streamed at once are not 50 redraws"
