"""The MCP servers file (``data/mcp.json`` or ``--mcp-config``): Claude Desktop's ``mcpServers`` shape, checked.

Each entry is a command to start (stdio) or a URL (streamable HTTP). Beyond the common shape, an entry
may say ``"allowed_for_users": true`` (team mode: plain users may use it; default: admins only),
``"trusted": true`` (its tools run without asking) or ``"tools": {"name": {"trusted": true}}`` per tool,
and ``"disabled": true``. The file is the admin's: it is read, never written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from webui.errors import UserError

SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # leaves room for "__tool" within a tool name's 64 characters


class McpConfigError(UserError):
    """The MCP servers file cannot be read or does not have the expected shape; str() says where."""


class _ToolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trusted: bool = False


class _ServerEntry(BaseModel):
    # Other apps' files carry keys of their own (type, description...): those are accepted and ignored,
    # but a misspelt key of ours would silently grant nothing, so ours are checked by name below.
    model_config = ConfigDict(extra="allow")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    allowed_for_users: bool = False
    trusted: bool = False
    tools: dict[str, _ToolEntry] = Field(default_factory=dict)
    disabled: bool = False

    @model_validator(mode="after")
    def _one_transport(self) -> _ServerEntry:
        if bool(self.command) == bool(self.url):
            raise ValueError('give either "command" (a program to start) or "url" (a streamable HTTP server)')
        if self.url and not re.match(r"https?://", self.url):
            raise ValueError(f'"url" must start with http:// or https://, not {self.url!r}')
        for key in self.model_extra or {}:
            if key.replace("-", "_").lower() in {"allowed_for_users", "allowedforusers", "trusted_tools"}:
                raise ValueError(f'unknown key "{key}": write "allowed_for_users" or "tools": {{"name": '
                                 '{"trusted": true}}')
        return self


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    mcpServers: dict[str, _ServerEntry] = Field(default_factory=dict)  # noqa: N815 - the file's own key


@dataclass(frozen=True)
class McpServerConfig:
    """One configured server: how to reach it and what its tools may do."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold keys: never printed
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    allowed_for_users: bool = False
    trusted: bool = False
    trusted_tools: frozenset[str] = frozenset()

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def is_trusted(self, tool_name: str) -> bool:
        return self.trusted or tool_name in self.trusted_tools


def parse_mcp_config(text: str, *, source: str = "mcp.json") -> tuple[McpServerConfig, ...]:
    """The enabled servers of a file's text; McpConfigError naming the line or entry that is wrong."""
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise McpConfigError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    if not isinstance(raw, dict):
        raise McpConfigError(f'{source} must hold an object like {{"mcpServers": {{...}}}}.')
    try:
        parsed = _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise McpConfigError(f"{source}: {where}: {first['msg']}.") from None
    servers = []
    for name, entry in parsed.mcpServers.items():
        if not SERVER_NAME.fullmatch(name):
            raise McpConfigError(f"{source}: the server name {name!r} must be 1-32 letters, digits, '_' or '-' "
                                 "(it prefixes its tools' names).")
        if entry.disabled:
            continue
        servers.append(McpServerConfig(
            name=name, command=entry.command, args=tuple(entry.args), env=tuple(entry.env.items()), cwd=entry.cwd,
            url=entry.url, headers=tuple(entry.headers.items()), allowed_for_users=entry.allowed_for_users,
            trusted=entry.trusted, trusted_tools=frozenset(t for t, e in entry.tools.items() if e.trusted),
        ))
    return tuple(servers)


def read_mcp_config(path: Path) -> tuple[McpServerConfig, ...]:
    """The servers in ``path``; none when the file does not exist; McpConfigError when it is unreadable or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"{path} cannot be read: {exc}") from None
    return parse_mcp_config(text, source=str(path))
