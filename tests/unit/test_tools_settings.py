"""The tool flags: where the MCP servers file is, how long a call may take, how many calls a reply may make."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.cli import parse_settings


def test_the_servers_file_defaults_to_mcp_json_in_the_data_dir(tmp_path: Path) -> None:
    settings = parse_settings(["--data-dir", str(tmp_path)])
    assert settings.mcp_config_file == tmp_path.resolve() / "mcp.json"
    assert (settings.tool_timeout_s, settings.max_tool_calls) == (30.0, 8)


def test_flags_and_environment_set_the_tool_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = tmp_path / "servers.json"
    servers.write_text("{}")
    monkeypatch.setenv("WEBUI_MAX_TOOL_CALLS", "3")
    settings = parse_settings(["--mcp-config", str(servers), "--tool-timeout", "5"])
    assert (settings.mcp_config_file, settings.tool_timeout_s, settings.max_tool_calls) == (servers, 5.0, 3)


@pytest.mark.parametrize("flags", [["--mcp-config", "/nonexistent/mcp.json"], ["--tool-timeout", "0"],
                                   ["--max-tool-calls", "0"]])
def test_impossible_tool_settings_stop_the_start(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="error: --(mcp-config|tool-timeout)"):
        parse_settings(flags)
