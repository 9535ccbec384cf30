"""The built-in tools (calculator, clock), the MCP servers file and how MCP names and results reach the model."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from webui.prompts.toolcalls.types import TOOL_NAME
from webui.tools import (
    CALCULATOR,
    CLOCK,
    CalculationRefused,
    McpConfigError,
    ToolFailed,
    calculate,
    describe_time,
    parse_mcp_config,
    read_mcp_config,
    result_text,
    spaced_tool_name,
)

NOT_ABANDONED = threading.Event()


@pytest.mark.parametrize(("expression", "value"), [
    ("2 + 3 * 4", "14"), ("(17 * 23) / 4", "97.75"), ("-2 ** 2", "-4"), ("7 // 2", "3"), ("7 % 3", "1"),
    ("2 ^ 10", "1024"), ("sqrt(16) + abs(-1)", "5"), ("round(pi, 3)", "3.142"),
    ("factorial(20)", "2432902008176640000"),
    ("0.1 + 0.2", "0.3"), ("10 ** 300", "1" + "0" * 300), ("max(3, 9, 4)", "9"),
])
def test_the_calculator_answers_arithmetic_exactly(expression: str, value: str) -> None:
    assert CALCULATOR.run({"expression": expression}, NOT_ABANDONED) == value


@pytest.mark.parametrize(("expression", "reason"), [
    ('__import__("os").system("id")', "is not allowed"),
    ("open('/etc/passwd').read()", "is not allowed"),
    ("(1).__class__", "is not allowed"),
    ("x + 1", "is not allowed"),
    ("1 / 0", "division by zero"),
    ("2 +", "is not an arithmetic expression"),
    ("", "empty"),
    ("(-8) ** 0.5", "not a real number"),
    ("sqrt(-1)", "cannot be computed"),
    ("'a' * 3", "is not allowed"),
])
def test_the_calculator_refuses_what_is_not_arithmetic_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(CalculationRefused, match=reason):
        calculate(expression)


@pytest.mark.parametrize("expression", ["9**9**9", "2 ** 100000", "10 ** 1001", "factorial(100000)",
                                        "1e308 * 10", "(10**999) * (10**999)", "2.5 ** 1e6"])
def test_huge_results_are_refused_at_once(expression: str) -> None:
    started = time.monotonic()
    with pytest.raises(CalculationRefused):
        calculate(expression)
    assert time.monotonic() - started < 0.1


def test_the_calculator_tells_the_model_what_to_send() -> None:
    with pytest.raises(ToolFailed, match='"expression"'):
        CALCULATOR.run({"formula": "1+1"}, NOT_ABANDONED)


def test_the_clock_says_the_time_in_a_named_zone() -> None:
    fixed = datetime(2026, 12, 7, 11, 30, 5, tzinfo=timezone.utc)
    told = describe_time("Asia/Tokyo", now=lambda zone: fixed.astimezone(zone))
    assert told == "Monday 2026-12-07 20:30:05 (Asia/Tokyo, UTC+09:00)"
    assert "UTC" in CLOCK.run({}, NOT_ABANDONED)


def test_the_clock_refuses_an_unknown_zone() -> None:
    with pytest.raises(ToolFailed, match="'Mars/Olympus' is not a time zone"):
        CLOCK.run({"timezone": "Mars/Olympus"}, NOT_ABANDONED)


def test_the_servers_file_takes_claude_desktops_shape_with_our_team_keys() -> None:
    servers = parse_mcp_config("""{"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"], "env": {"KEY": "secret"}},
        "search": {"url": "http://127.0.0.1:9000/mcp", "allowed_for_users": true, "tools": {"find": {"trusted": true}}},
        "off": {"command": "x", "disabled": true},
        "vscode": {"type": "stdio", "command": "uvx", "description": "another app's key, ignored"}}}""")
    by_name = {s.name: s for s in servers}
    assert list(by_name) == ["files", "search", "vscode"]
    assert by_name["files"].transport == "stdio" and not by_name["files"].allowed_for_users
    assert "secret" not in repr(by_name["files"])
    assert by_name["search"].transport == "http" and by_name["search"].allowed_for_users
    assert by_name["search"].is_trusted("find") and not by_name["search"].is_trusted("other")


@pytest.mark.parametrize(("text", "message"), [
    ('{"mcpServers": {"a": {"command": "x",}}}', "not valid JSON (line 1, column"),
    ('{"mcpServers": {"a": {"command": "x", "url": "http://h/mcp"}}}', 'either "command"'),
    ('{"mcpServers": {"a": {}}}', 'either "command"'),
    ('{"mcpServers": {"a": {"url": "ftp://h"}}}', "must start with http"),
    ('{"mcpServers": {"a b": {"command": "x"}}}', "server name 'a b'"),
    ('{"mcpServers": {"a": {"command": "x", "allowedForUsers": true}}}', 'unknown key "allowedForUsers"'),
    ('{"mcpServers": {"a": {"command": "x", "allowed_for_users": "yes please"}}}', "allowed_for_users"),
    ('[]', "must hold an object"),
])
def test_a_wrong_servers_file_is_refused_saying_where(text: str, message: str) -> None:
    with pytest.raises(McpConfigError, match=message.replace("(", r"\(")):
        parse_mcp_config(text)


def test_no_servers_file_means_no_servers(tmp_path) -> None:
    assert read_mcp_config(tmp_path / "mcp.json") == ()


def test_tool_names_are_spaced_by_server_within_the_64_character_rule() -> None:
    assert spaced_tool_name("files", "read_file") == "files__read_file"
    long_a, long_b = spaced_tool_name("server", "x" * 70 + "a"), spaced_tool_name("server", "x" * 70 + "b")
    odd = spaced_tool_name("server", "get weather/now")
    for name in (long_a, long_b, odd):
        assert TOOL_NAME.fullmatch(name), name
    assert long_a != long_b


def test_results_are_text_and_other_content_is_described() -> None:
    result = SimpleNamespace(is_error=False, structured_content=None, content=[
        SimpleNamespace(type="text", text="42"),
        SimpleNamespace(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
        SimpleNamespace(type="resource_link", uri="file:///a.txt", name="a.txt"),
    ])
    assert result_text(result) == "42\n[image: image/png, about 9 bytes, not shown to the model]\n" \
                                  "[resource link: file:///a.txt (a.txt)]"
    with pytest.raises(ToolFailed, match="boom"):
        result_text(SimpleNamespace(is_error=True, structured_content=None,
                                    content=[SimpleNamespace(type="text", text="boom")]))
