"""The Chat tab's tools with the real tool loop over a scripted engine: the picker, a reply's calls folded in
order, Run / Skip, Stop, the reply saved with its calls and shown again, and the chat's tools kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from tests.support.tool_turns import PythonServers, ScriptedEngine, call
from tests.unit.ui.fake_chat import FakeChatServices
from tests.unit.ui.test_chat_handlers import PAGE, form, send
from webui.history import Conversation
from webui.prompts.toolcalls import ToolSpec
from webui.services.conversations import chat_json, chat_markdown
from webui.services.tools import McpServerStatus, ToolsService
from webui.tools import Tool
from webui.ui.chat import build_chat_tab
from webui.ui.chat_handlers import ChatHandlers
from webui.ui.chat_tools import ToolChatHandlers
from webui.ui.chat_view import stored_view


def shout(arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
    return str(arguments.get("text", "")).upper()


def slow(_arguments: Mapping[str, Any], abandoned: threading.Event) -> str:
    abandoned.wait(30)
    return "too late"


def with_tools(rounds: list, *, team: bool = False, allowed: frozenset[str] = frozenset(),
               ) -> tuple[FakeChatServices, ToolChatHandlers, ScriptedEngine]:
    """A page whose tools service is the real loop: built-ins and an MCP-like server "py" (shout asks first)."""
    fake = FakeChatServices()
    engine = ScriptedEngine(list(rounds))
    servers = PythonServers({"py": [Tool(ToolSpec("py__shout", "shout"), shout, source="py", trusted=False),
                                    Tool(ToolSpec("py__slow", "slow"), slow, source="py", trusted=True)]},
                            allowed_for_users=allowed)
    fake.tools = ToolsService(engine, chat=None, documents=None, mcp=servers, team_mode=team,  # type: ignore[arg-type]
                              tool_timeout_s=10)
    return fake, ToolChatHandlers(fake, ChatHandlers(fake)), engine


def reply(handlers: ToolChatHandlers, current: str, tools: list[str], **changes: Any) -> list[tuple]:
    return list(handlers.generate("alice", PAGE, current, form(tools=tools, **changes)))


def test_a_reply_shows_each_call_folded_between_its_text_parts_and_is_saved_with_them() -> None:
    fake, handlers, engine = with_tools([["Let me compute. ", call("calculator", {"expression": "1234*5678"})],
                                         ["It is 7006652."]])
    current = send(handlers.chat, "alice", "What is 1234 * 5678?", None)[1]
    outputs = reply(handlers, current, ["calculator"])

    shown = outputs[-1][0][-1]["content"]
    assert shown.index("Let me compute.") < shown.index("Tool <b>calculator</b>") < shown.index("It is 7006652.")
    assert "&quot;expression&quot;: &quot;1234*5678&quot;" in shown and "<pre>7006652</pre>" in shown
    assert "1 tool call · 2 rounds" in shown and outputs[-1][1] == ""
    saved = fake.chat.chats[current].messages[-1]
    assert saved.content == "It is 7006652." and saved.meta["tool_calls"][0]["result"] == "7006652"
    assert [m["role"] for m in saved.meta["tool_turns"]] == ["assistant", "tool"]
    # The model was offered the calculator, and asked again with its result.
    assert [s.name for s in engine.requests[0].tools.tools] == ["calculator"]
    assert engine.requests[1].messages[-1]["content"] == "7006652"
    # Reopened, the chat shows the same block, and the next question shows the model the earlier calls.
    assert stored_view(fake.chat.messages("u-alice", current))[-1]["content"] == shown
    assert [m["role"] for m in fake.chat.tool_conversation("u-alice", current, "")][1:] == [
        "user", "assistant", "tool", "assistant"]


def test_while_streaming_the_call_shows_running_then_its_result() -> None:
    _, handlers, _ = with_tools([[call("calculator", {"expression": "2+2"})], ["Four."]])
    current = send(handlers.chat, "alice", "2+2?", None)[1]
    contents = [out[0][-1]["content"] for out in reply(handlers, current, ["calculator"]) if out[0]]
    running = next(i for i, c in enumerate(contents) if "running…" in c)
    finished = next(i for i, c in enumerate(contents) if "<pre>4</pre>" in c)
    assert running < finished


def run_in_thread(handlers: ToolChatHandlers, current: str, tools: list[str]) -> tuple[list, threading.Thread]:
    """The reply streamed on another thread, as Gradio runs it; ``outputs`` grows as it yields."""
    outputs: list = []

    def stream() -> None:
        for out in handlers.generate("alice", PAGE, current, form(tools=tools)):
            outputs.append(out)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    return outputs, thread


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_untrusted_tool_waits_for_run_and_its_result_follows() -> None:
    fake, handlers, _ = with_tools([[call("py__shout", {"text": "hi"})], ["Done."]])
    current = send(handlers.chat, "alice", "Shout hi", None)[1]
    outputs, thread = run_in_thread(handlers, current, ["py__shout"])
    wait_for(lambda: outputs and outputs[-1][3])
    view, notice, row, call_id = outputs[-1]
    assert "waiting for Run or Skip" in view[-1]["content"] and "Run or Skip?" in notice
    assert row["visible"] is True
    assert handlers.run_call("alice", PAGE, call_id) == (gr.update(visible=False), "")
    thread.join(5)
    saved = fake.chat.chats[current].messages[-1]
    assert saved.meta["tool_calls"][0]["result"] == "HI" and "<pre>HI</pre>" in outputs[-1][0][-1]["content"]


def test_skip_leaves_the_call_not_run_and_the_model_answers() -> None:
    fake, handlers, engine = with_tools([[call("py__shout", {"text": "hi"})], ["Skipped, then."]])
    current = send(handlers.chat, "alice", "Shout hi", None)[1]
    outputs, thread = run_in_thread(handlers, current, ["py__shout"])
    wait_for(lambda: outputs and outputs[-1][3])
    handlers.skip_call("alice", PAGE, outputs[-1][3])
    thread.join(5)
    shown = outputs[-1][0][-1]["content"]
    assert "Tool <b>shout</b> (py) · not run" in shown
    assert "Skipped, then." in shown and "skip" in engine.requests[1].messages[-1]["content"]


def test_stop_ends_a_waiting_confirmation_and_the_turn() -> None:
    fake, handlers, _ = with_tools([[call("py__shout", {"text": "hi"})], ["never asked"]])
    current = send(handlers.chat, "alice", "Shout hi", None)[1]
    outputs, thread = run_in_thread(handlers, current, ["py__shout"])
    wait_for(lambda: outputs and outputs[-1][3])
    ChatHandlers(fake).stop_reply("alice", PAGE)
    thread.join(5)
    assert not thread.is_alive()
    shown = outputs[-1][0][-1]["content"]
    assert "not run" in shown and "stopped" in shown and "never asked" not in shown
    assert outputs[-1][2] == gr.update(visible=False)


def test_stop_ends_a_running_call() -> None:
    _, handlers, _ = with_tools([[call("py__slow")], ["never asked"]])
    current = send(handlers.chat, "alice", "Go slow", None)[1]
    outputs, thread = run_in_thread(handlers, current, ["py__slow"])
    wait_for(lambda: outputs and outputs[-1][0] and "running…" in outputs[-1][0][-1]["content"])
    started = time.monotonic()
    ChatHandlers(handlers.services).stop_reply("alice", PAGE)
    thread.join(5)
    assert time.monotonic() - started < 3
    assert "Stopped by the user." in outputs[-1][0][-1]["content"]


def test_with_no_tool_picked_the_reply_is_the_plain_one() -> None:
    fake, handlers, engine = with_tools([])
    current = send(handlers.chat, "alice", "Hi", None)[1]
    outputs = reply(handlers, current, [])
    assert outputs[-1][0][-1]["content"].startswith("Hello there friend") and not engine.requests
    assert len(fake.chat.reply_calls) == 1


def test_the_picker_groups_tools_by_source_and_a_plain_user_gets_no_server_not_allowed() -> None:
    fake, handlers, _ = with_tools([], team=True)
    fake.auth_required = True
    labels = [label for label, _ in handlers.choices("alice")]
    assert labels[:3] == ["built-in: calculator", "built-in: current_time", "built-in: search_documents"]
    assert "py: shout (asks before running)" in labels
    assert all(not name.startswith("py__") for _, name in handlers.choices("bob"))


def test_a_failed_server_shows_with_its_reason() -> None:
    fake, handlers, _ = with_tools([])
    failed = fake.tools._mcp  # noqa: SLF001 - the stand-in servers: one of them failed to start
    failed.statuses = lambda: [McpServerStatus("py", "stdio", "failed", error="the command 'nope' was not found")]
    _, note = handlers.tool_choices("alice", [])
    assert "MCP server **py** is not available: the command 'nope' was not found" in note


def test_each_chat_keeps_its_tools_and_a_new_chat_starts_with_none() -> None:
    fake, handlers, _ = with_tools([["One."], ["Two."]])
    first = send(handlers.chat, "alice", "Hi", None)[1]
    reply(handlers, first, ["calculator", "current_time"])
    second = send(handlers.chat, "alice", "Hello", None)[1]
    reply(handlers, second, [])
    assert handlers.restore_tools("alice", first)[0]["value"] == ["calculator", "current_time"]
    assert handlers.restore_tools("alice", second)[0]["value"] == []
    assert handlers.restore_tools("alice", None)[0]["value"] == []
    handlers.save_tools("alice", second, ["current_time"])
    assert fake.chat.chats[second].tools == ("current_time",)


def test_a_tool_not_offered_is_refused_in_words() -> None:
    _, handlers, _ = with_tools([], team=True)
    handlers.services.auth_required = True
    current = send(handlers.chat, "bob", "Shout", None)[1]
    outputs = list(handlers.generate("bob", PAGE, current, form(tools=["py__shout"])))
    assert "not available to you: py__shout" in outputs[-1][1]


def test_the_tab_wires_the_tool_events() -> None:
    fake = FakeChatServices()
    with gr.Blocks() as blocks:
        build_chat_tab(fake, blocks)
    names = {fn.name for fn in blocks.fns.values()}
    assert {"generate", "restore_tools", "save_tools", "run_call", "skip_call"} <= names


def test_the_markdown_and_json_exports_keep_the_calls() -> None:
    fake, handlers, _ = with_tools([[call("calculator", {"expression": "1234*5678"})], ["It is 7006652."]])
    current = send(handlers.chat, "alice", "What is 1234 * 5678?", None)[1]
    reply(handlers, current, ["calculator"])
    messages = fake.chat.messages("u-alice", current)
    conversation = Conversation(current, "u-alice", "Sums", datetime.now(timezone.utc), datetime.now(timezone.utc),
                                None)
    markdown = chat_markdown(conversation, messages)
    assert markdown.index("<summary>Tool calculator") < markdown.index("It is 7006652.")
    assert '"expression": "1234*5678"' in markdown and "```\n7006652\n```" in markdown
    exported = json.loads(chat_json(conversation, messages))
    assert exported["messages"][-1]["meta"]["tool_calls"][0]["result"] == "7006652"


def test_call_a_tool_first_makes_the_first_round_require_a_call() -> None:
    _, handlers, engine = with_tools([[call("calculator", {"expression": "2+2"})], ["Four."]])
    current = send(handlers.chat, "alice", "2+2?", None)[1]
    reply(handlers, current, ["calculator"], tool_first=True)
    assert [r.tools.choice.mode for r in engine.requests] == ["required", "auto"]


def test_the_real_store_keeps_a_chats_tools_and_a_reply_with_calls(tmp_path) -> None:
    """History (migration m005) and ChatService: what the page saves comes back after a restart."""
    from types import SimpleNamespace

    from webui.history import HistoryStore
    from webui.services.chat import ChatService

    chat = ChatService(SimpleNamespace(info=None), HistoryStore(tmp_path / "h.db"))  # type: ignore[arg-type]
    current = chat.add_user_message("u1", None, "What is 2+2?")
    chat.set_tools("u1", current, ["calculator", "calculator", "current_time"])
    turns = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": {"expression": "2+2"}}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "calculator", "content": "4"}]
    chat.save_tool_reply("u1", current, "Four.", {"tool_calls": [{"id": "c1", "name": "calculator", "result": "4"}],
                                                  "tool_turns": turns})
    reopened = ChatService(SimpleNamespace(info=None), HistoryStore(tmp_path / "h.db"))  # type: ignore[arg-type]
    assert reopened.conversation("u1", current).tools == ("calculator", "current_time")
    assert reopened.tool_conversation("u1", current, "Be brief.") == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}, *turns,
        {"role": "assistant", "content": "Four."}]
    assert "<pre>4</pre>" in stored_view(reopened.messages("u1", current))[-1]["content"]
