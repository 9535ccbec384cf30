"""Tools from real MCP servers (a stdio one the client starts, a streamable HTTP one on a local port), through
the call loop: listing, calls, timeouts, failures, the limit, Stop, team rules, shutdown, and SmolLM2 calling add."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.mcp_servers import REPO_ROOT, http_server, stdio_command
from tests.support.tool_turns import GREEDY, ScriptedEngine, call, of_type, run_answering
from webui.auth import User
from webui.engine import Engine, LoadSettings
from webui.prompts.toolcalls import ToolChoice
from webui.services.access import LOCAL_USER
from webui.services.tools import (
    LIMIT_NOTE,
    CallFinished,
    CallStarted,
    ConfirmationNeeded,
    ToolNotAvailable,
    ToolsService,
    TurnRequest,
)
from webui.tools import McpServers, ToolFailed

pytestmark = pytest.mark.slow
PLAIN_USER = User(name="ann", is_admin=False)
QUESTION = ({"role": "user", "content": "What is 2 + 3?"},)


def write_config(path: Path, remote_url: str) -> Path:
    command, args = stdio_command()
    path.write_text(json.dumps({"mcpServers": {
        "local": {"command": command, "args": args, "cwd": str(REPO_ROOT), "tools": {"add": {"trusted": True}}},
        "remote": {"url": remote_url, "allowed_for_users": True},
        "broken": {"command": "/nonexistent/mcp-server"},
    }}))
    return path


def stdio_servers_running() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "tests.support.mcp_servers" in " ".join(p.cmdline()) and "stdio" in p.cmdline()]


@pytest.fixture(scope="module")
def remote_url() -> Iterator[str]:
    with http_server() as url:
        yield url


@pytest.fixture(scope="module")
def servers(remote_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServers]:
    folder = tmp_path_factory.mktemp("mcp")
    pool = McpServers(write_config(folder / "mcp.json", remote_url), log_dir=folder)
    yield pool
    pool.close()


def loop(servers: McpServers, rounds, *, timeout: float = 10.0, limit: int = 8, team: bool = False):
    engine = ScriptedEngine(list(rounds))
    return ToolsService(engine, chat=None, documents=None, mcp=servers, team_mode=team,  # type: ignore[arg-type]
                        tool_timeout_s=timeout, max_tool_calls=limit), engine


def ask(*names: str) -> TurnRequest:
    return TurnRequest(QUESTION, names, GREEDY)


def test_servers_start_only_when_first_used(tmp_path: Path, remote_url: str) -> None:
    pool = McpServers(write_config(tmp_path / "mcp.json", remote_url))
    before = len(stdio_servers_running())
    assert [s.state for s in pool.statuses()] == ["not started"] * 3
    assert len(stdio_servers_running()) == before
    pool.close()


def test_tools_are_listed_with_their_server_as_prefix_and_a_broken_server_is_reported(servers: McpServers) -> None:
    tools, _ = loop(servers, [])
    names = {t.name: t for t in tools.available(LOCAL_USER)}
    for server in ("local", "remote"):
        assert {f"{server}__add", f"{server}__sleep", f"{server}__fail"} <= set(names)
    assert names["local__add"].trusted and not names["local__sleep"].trusted and not names["remote__add"].trusted
    assert names["remote__add"].description == "Add two numbers."
    states = {s.name: s for s in tools.server_statuses(LOCAL_USER)}
    assert states["local"].state == states["remote"].state == "ready"
    assert states["broken"].state == "failed"
    assert "the command was not found" in states["broken"].error


def test_calls_on_both_transports_return_their_results(servers: McpServers) -> None:
    both = [call("local__add", {"a": 2, "b": 3}, "c1"), call("remote__add", {"a": 4, "b": 5}, "c2")]
    tools, engine = loop(servers, [both, ["5 and 9."]])
    events, done = run_answering(tools, LOCAL_USER, ask("local__add", "remote__add"))
    assert [(r.name, r.result, r.source) for r in done.calls] == [("local__add", "5", "local"),
                                                                   ("remote__add", "9", "remote")]
    assert [c.name for c in of_type(events, ConfirmationNeeded)] == ["remote__add"], "only the untrusted one asks"
    assert [m["content"] for m in engine.requests[1].messages if m["role"] == "tool"] == ["5", "9"]
    assert done.text == "5 and 9."


def test_a_call_past_the_timeout_is_reported_and_the_server_still_answers(servers: McpServers) -> None:
    tools, engine = loop(servers, [[call("local__sleep", {"seconds": 30})], [call("local__add", {"a": 1, "b": 1})],
                                   ["2"]], timeout=1.0)
    started = time.monotonic()
    _, done = run_answering(tools, LOCAL_USER, ask("local__sleep", "local__add"))
    assert time.monotonic() - started < 10
    assert done.calls[0].error == "The tool did not answer within 1 seconds."
    assert "did not answer within 1 seconds" in engine.requests[1].messages[-1]["content"]
    assert done.calls[1].result == "2"


def test_a_tool_that_raises_is_reported(servers: McpServers) -> None:
    tools, engine = loop(servers, [[call("remote__fail")], ["It failed."]])
    _, done = run_answering(tools, LOCAL_USER, ask("remote__fail"))
    assert done.calls[0].error == "Error executing tool fail"
    assert engine.requests[1].messages[-1]["content"] == "Error: Error executing tool fail"


def test_the_call_limit_holds_with_real_servers(servers: McpServers) -> None:
    two = [call("local__add", {"a": 1, "b": 2}, "c1"), call("local__add", {"a": 3, "b": 4}, "c2")]
    tools, engine = loop(servers, [two, ["3."]], limit=1)
    _, done = run_answering(tools, LOCAL_USER, ask("local__add"))
    assert [c.result for c in done.calls] == ["3", LIMIT_NOTE.format(limit=1)]
    assert engine.requests[1].tools.choice.mode == "none"


@pytest.mark.parametrize("server", ["local", "remote"])
def test_stop_during_a_call_cancels_it(servers: McpServers, server: str) -> None:
    tools, engine = loop(servers, [[call(f"{server}__sleep", {"seconds": 30})], ["never"]], timeout=60)
    started = time.monotonic()
    events = []
    for event in tools.run_turn(LOCAL_USER, "page-1", ask(f"{server}__sleep")):
        events.append(event)
        if isinstance(event, ConfirmationNeeded):
            tools.answer("page-1", event.call_id, True)
        if isinstance(event, CallStarted):
            threading.Timer(0.5, tools.stop, args=("page-1",)).start()
    assert time.monotonic() - started < 5
    assert events[-1].stats.stopped_by_user and events[-1].calls[0].error == "Stopped by the user."
    assert len(engine.requests) == 1
    after, _ = loop(servers, [[call(f"{server}__add", {"a": 20, "b": 22})], ["42"]])
    assert run_answering(after, LOCAL_USER, ask(f"{server}__add"))[1].calls[0].result == "42"


def test_a_plain_user_is_refused_a_server_not_allowed_for_users(servers: McpServers) -> None:
    tools, _ = loop(servers, [[call("remote__add", {"a": 1, "b": 1})], ["2"]], team=True)
    with pytest.raises(ToolNotAvailable, match="local__add"):
        tools.run_turn(PLAIN_USER, "page-1", ask("local__add"))
    assert {s.name for s in tools.server_statuses(PLAIN_USER)} == {"remote"}
    assert not any(t.source == "local" for t in tools.available(PLAIN_USER))
    assert run_answering(tools, PLAIN_USER, ask("remote__add"))[1].calls[0].result == "2"


def test_close_stops_the_stdio_server(tmp_path: Path, remote_url: str) -> None:
    pool = McpServers(write_config(tmp_path / "mcp.json", remote_url))
    before = len(stdio_servers_running())
    pool.tools(["local"])
    assert len(stdio_servers_running()) == before + 1
    pool.close()
    deadline = time.monotonic() + 10
    while len(stdio_servers_running()) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(stdio_servers_running()) == before
    assert pool.tools() == [], "a closed pool starts nothing again"


def test_only_the_configured_server_is_contacted(tmp_path: Path, remote_url: str) -> None:
    """Under an audit hook: listing and calling the HTTP server's tools connect to its address and nowhere else,
    proxy variables notwithstanding."""
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"remote": {"url": remote_url}}}))
    script = textwrap.dedent(f"""
        import json, sys, threading
        seen = []
        sys.addaudithook(lambda event, args: seen.append(repr(args[1])) if event == "socket.connect" else None)
        from pathlib import Path
        from webui.tools import McpServers
        pool = McpServers(Path({str(config)!r}))
        tools = {{t.name: t for t in pool.tools()}}
        print("RESULT", tools["remote__add"].run({{"a": 1, "b": 2}}, threading.Event()))
        pool.close()
        print("CONNECTS", json.dumps(seen))
    """)
    env = {"PATH": "/usr/bin:/bin", "HTTP_PROXY": "http://10.255.255.1:3128", "HTTPS_PROXY": "http://10.255.255.1:3128",
           "ALL_PROXY": "http://10.255.255.1:3128"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert "RESULT 3" in out.stdout, out.stderr
    port = remote_url.split(":")[2].split("/")[0]
    connects = json.loads(out.stdout.split("CONNECTS ", 1)[1])
    inet = [c for c in connects if c.startswith("(")]
    assert inet and all(c == f"('127.0.0.1', {port})" for c in inet), connects


@pytest.fixture(scope="module")
def smollm_engine(smollm_path: Path) -> Iterator[Engine]:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=2048, n_threads=2))
    yield engine
    engine.unload()


def test_smollm_calls_add_on_the_mcp_server_and_then_answers(smollm_engine: Engine, servers: McpServers) -> None:
    tools = ToolsService(smollm_engine, chat=None, documents=None, mcp=servers,  # type: ignore[arg-type]
                         tool_timeout_s=20, max_tool_calls=1)
    request = TurnRequest(({"role": "user", "content": "Use the add tool to add 2 and 3."},), ("local__add",),
                          replace(GREEDY, max_tokens=96), first_choice=ToolChoice("required"), parallel_calls=False)
    events, done = run_answering(tools, LOCAL_USER, request)
    assert done.error is None, done.error
    record = done.calls[0]
    assert record.name == "local__add" and record.error is None
    total = float(record.arguments["a"]) + float(record.arguments["b"])
    assert float(record.result) == total
    assert of_type(events, CallFinished)[0].record == record
    assert done.stats.rounds == 2 and done.text.strip(), "the model answered after the call"
    assert done.messages[-1] == {"role": "assistant", "content": done.text}


def test_the_app_starts_with_a_broken_servers_file_and_says_why(tmp_path: Path, smollm_path: Path) -> None:
    from tests.api.conftest import app_args
    from tests.support.app_server import running_app

    config = tmp_path / "servers.json"
    config.write_text('{"mcpServers": {"files": {"command": "npx",}}}')
    with running_app(tmp_path, [*app_args(tmp_path, smollm_path), "--mcp-config", str(config)]) as app:
        assert httpx.get(f"{app.url}/health", timeout=10).status_code == 200
        assert f"warning: MCP servers are off: {config} is not valid JSON (line 1, column" in app.log()


def test_a_stdio_server_that_exits_is_reported_and_started_again_on_next_use(tmp_path: Path, remote_url: str) -> None:
    pool = McpServers(write_config(tmp_path / "mcp.json", remote_url))
    try:
        before = {p.pid for p in stdio_servers_running()}
        add = {t.name: t for t in pool.tools(["local"])}["local__add"]
        for process in stdio_servers_running():
            if process.pid not in before:
                process.kill()
                process.wait(5)
        with pytest.raises(ToolFailed, match="local could not run add: Connection closed"):
            add.run({"a": 1, "b": 2}, threading.Event())
        assert {s.name: s.state for s in pool.statuses()}["local"] == "failed"
        assert add.run({"a": 1, "b": 2}, threading.Event()) == "3"
        assert {s.name: s.state for s in pool.statuses()}["local"] == "ready"
    finally:
        pool.close()


def test_a_server_that_never_answers_is_given_up_and_the_others_still_work(tmp_path: Path, remote_url: str) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"mute": {"command": "sleep", "args": ["60"]},
                                                 "remote": {"url": remote_url}}}))
    pool = McpServers(config, connect_timeout=1.0)
    try:
        started = time.monotonic()
        names = [t.name for t in pool.tools()]
        assert time.monotonic() - started < 8
        assert "remote__add" in names and not any(n.startswith("mute__") for n in names)
        mute = {s.name: s for s in pool.statuses()}["mute"]
        assert mute.state == "failed" and mute.error == "could not start or list its tools: it did not answer in time"
    finally:
        pool.close()
    assert not [p for p in psutil.Process().children(recursive=True) if p.cmdline() == ["sleep", "60"]], \
        "the server given up was stopped, not left behind"
