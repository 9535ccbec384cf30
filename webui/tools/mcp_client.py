"""Connections to the configured MCP servers: made on first use, kept open, closed at shutdown.

The MCP SDK is asynchronous; the app's services are threads. One event loop in a background thread
(started with the first connection) holds every connection, each in a task that keeps its ``Client``
open until ``close()``. Calls come from any thread and wait on that loop; an abandoned call (Stop,
timeout) cancels its task, which the SDK turns into a cancellation sent to the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from webui.prompts.toolcalls import ToolSpec
from webui.tools.mcp_config import McpConfigError, McpServerConfig, read_mcp_config
from webui.tools.types import Tool, ToolFailed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 60.0  # a server started through npx or uvx may first download itself
CLOSE_TIMEOUT_S = 10.0  # the SDK gives a stdio server 2 s to exit, then terminates, then kills it
MAX_LISTING_PAGES = 20
RETRY_AFTER_S = 30.0  # a server that failed to start is not tried again sooner (each try may take a while)
POLL_S = 0.05  # how often a waiting call looks at its abandon flag
MAX_TOOL_NAME = 64
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")

ServerState = Literal["not started", "ready", "failed"]


@dataclass(frozen=True)
class McpServerStatus:
    """What the admin sees of one server: whether it answered, its tools, and why it failed."""

    name: str
    transport: str  # stdio | http
    state: ServerState
    tools: tuple[str, ...] = ()  # the model-facing (prefixed) names
    error: str | None = None
    allowed_for_users: bool = False


def spaced_tool_name(server: str, tool: str) -> str:
    """``server__tool`` within the 64-character rule; a long or odd name is cut and made unique by a hash."""
    name = f"{server}__{_NOT_NAME.sub('_', tool)}"
    if len(name) <= MAX_TOOL_NAME and name == f"{server}__{tool}":
        return name
    digest = hashlib.sha1(tool.encode()).hexdigest()[:8]
    return f"{name[:MAX_TOOL_NAME - 9]}_{digest}"


def result_text(result: Any) -> str:
    """An MCP CallToolResult as text for the model: text parts joined, other parts described; ToolFailed on is_error."""
    parts: list[str] = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind in ("image", "audio"):
            size = len(item.data) * 3 // 4  # base64
            parts.append(f"[{kind}: {item.mime_type}, about {size:,} bytes, not shown to the model]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {item.uri}" + (f" ({item.name})" if item.name else "") + "]")
        elif kind == "resource":
            inner = item.resource
            text = getattr(inner, "text", None)
            parts.append(text if text is not None
                         else f"[resource: {inner.uri}, {inner.mime_type or 'binary'}, not shown to the model]")
        else:
            parts.append(f"[{kind or 'unknown'} content, not shown to the model]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if result.is_error:
        raise ToolFailed(text or "The tool reported an error and gave no detail.")
    return text


def _connection_closed(exc: BaseException) -> bool:
    """Whether the SDK says the server's connection is gone (a stdio server that exited, say)."""
    from mcp_types.jsonrpc import CONNECTION_CLOSED

    return getattr(exc, "code", None) == CONNECTION_CLOSED


def _reason(exc: BaseException) -> str:
    """The innermost sentence of an error (the SDK's task groups wrap failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "it did not answer in time"
    if isinstance(exc, FileNotFoundError):
        return f"the command was not found ({exc.filename or exc})"
    return str(exc) or type(exc).__name__


@dataclass
class _Connection:
    client: Any  # mcp.Client
    tools: tuple[Any, ...]  # mcp Tool listings
    closing: asyncio.Event
    task: asyncio.Task[None] | None = None


@dataclass
class _ServerSlot:
    config: McpServerConfig
    state: ServerState = "not started"
    error: str | None = None
    connection: _Connection | None = None
    failed_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one connect at a time per server


class McpServers:
    """The servers in the MCP file: their tools (connecting lazily), calls, statuses, and close()."""

    def __init__(self, config_file: Path, *, log_dir: Path | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        """``log_dir`` gets each stdio server's stderr as ``mcp-NAME.log`` (None: the app's stderr)."""
        self.config_file = config_file
        self._log_dir = log_dir
        self._connect_timeout = connect_timeout
        self._guard = threading.Lock()
        self._slots: dict[str, _ServerSlot] | None = None
        self._config_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._logs: list[IO[str]] = []
        self._holds: dict[asyncio.Task[None], Any] = {}  # each connection's task and its anyio cancel scope
        self._closed = False

    # -- configuration -----------------------------------------------------------------------

    def _servers(self) -> dict[str, _ServerSlot]:
        """The configured servers, read from the file once; a bad file is logged and means none."""
        with self._guard:
            if self._slots is None:
                try:
                    configs = read_mcp_config(self.config_file)
                except McpConfigError as exc:
                    log.error("MCP servers are off: %s", exc)
                    self._config_error, configs = str(exc), ()
                self._slots = {c.name: _ServerSlot(c) for c in configs}
                if configs:
                    log.info("MCP servers configured in %s: %s", self.config_file, ", ".join(self._slots))
            return self._slots

    @property
    def config_error(self) -> str | None:
        """Why the MCP file was not used, or None."""
        self._servers()
        return self._config_error

    def configured(self) -> tuple[McpServerConfig, ...]:
        return tuple(slot.config for slot in self._servers().values())

    def statuses(self) -> list[McpServerStatus]:
        """Every configured server as it stands now; nothing is started to answer this."""
        return [McpServerStatus(
            slot.config.name, slot.config.transport, slot.state, error=slot.error,
            tools=tuple(spaced_tool_name(slot.config.name, t.name) for t in slot.connection.tools)
            if slot.connection else (),
            allowed_for_users=slot.config.allowed_for_users,
        ) for slot in self._servers().values()]

    # -- tools -------------------------------------------------------------------------------

    def tools(self, servers: Sequence[str] | None = None) -> list[Tool]:
        """The tools of ``servers`` (None: all), connecting to each on first use; a server that fails is
        skipped (its status says why), so one broken server never hides the others' tools."""
        found: list[Tool] = []
        wanted = [slot for name, slot in self._servers().items() if servers is None or name in servers]
        starting = [threading.Thread(target=self._connected, args=(slot,), daemon=True)
                    for slot in wanted if slot.connection is None]
        for thread in starting:  # servers start side by side: a slow one does not hold up the others
            thread.start()
        for thread in starting:
            thread.join()
        for slot in wanted:
            name = slot.config.name
            connection = self._connected(slot)
            if connection is None:
                continue
            for listed in connection.tools:
                spec = ToolSpec(spaced_tool_name(name, listed.name), listed.description or "",
                                _object_schema(listed.input_schema))
                found.append(Tool(spec, _Caller(self, name, listed.name), source=name,
                                  trusted=slot.config.is_trusted(listed.name)))
        return found

    def call(self, server: str, tool: str, arguments: Mapping[str, Any], abandoned: threading.Event) -> str:
        """Call ``tool`` on ``server`` and return its result as text; ToolFailed when it fails or is abandoned."""
        slot = self._servers().get(server)
        connection = self._connected(slot) if slot else None
        if connection is None:
            raise ToolFailed(f"The MCP server {server} is not available" + (f": {slot.error}" if slot else "."))
        future = asyncio.run_coroutine_threadsafe(connection.client.call_tool(tool, dict(arguments)), self._loop)
        while True:
            try:
                return result_text(future.result(timeout=POLL_S))
            except concurrent.futures.TimeoutError:
                if abandoned.is_set():
                    future.cancel()
                    raise ToolFailed(f"The call to {server} was stopped.") from None
            except concurrent.futures.CancelledError:
                raise ToolFailed(f"The call to {server} was stopped.") from None
            except ToolFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the server or transport raised, the model is told
                log.warning("MCP call %s on %s failed: %s", tool, server, _reason(exc))
                if _connection_closed(exc) or (connection.task is not None and connection.task.done()):
                    self._drop(slot, connection, exc)  # the next use starts the server again
                raise ToolFailed(f"{server} could not run {tool}: {_reason(exc)}.") from None

    # -- connections -------------------------------------------------------------------------

    def _connected(self, slot: _ServerSlot) -> _Connection | None:
        with slot.lock:
            if slot.connection is not None and slot.connection.task is not None and slot.connection.task.done():
                self._lost(slot, RuntimeError("the connection closed"))
            if slot.connection is not None:
                return slot.connection
            if self._closed or (slot.failed_at is not None and time.monotonic() - slot.failed_at < RETRY_AFTER_S):
                return None
            config = slot.config
            log.info("MCP: connecting to %s (%s)", config.name, config.transport)
            try:
                future = asyncio.run_coroutine_threadsafe(self._open(config), self._event_loop())
                slot.connection = future.result(timeout=self._connect_timeout + 5)
            except Exception as exc:  # noqa: BLE001 - a server that cannot start never breaks the app
                slot.state, slot.error = "failed", f"could not start or list its tools: {_reason(exc)}"
                slot.failed_at = time.monotonic()
                log.warning("MCP server %s %s", config.name, slot.error)
                return None
            slot.state, slot.error, slot.failed_at = "ready", None, None
            log.info("MCP server %s ready with %d tools", config.name, len(slot.connection.tools))
            return slot.connection

    def _drop(self, slot: _ServerSlot | None, connection: _Connection, exc: BaseException) -> None:
        """Forget a connection whose server went away, and let its task close what is left of it."""
        with self._guard:
            loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(connection.closing.set)
        if slot is not None and slot.connection is connection:
            self._lost(slot, exc)

    def _lost(self, slot: _ServerSlot | None, exc: BaseException) -> None:
        if slot is None:
            return
        slot.connection, slot.state, slot.error = None, "failed", f"the connection was lost: {_reason(exc)}"
        log.warning("MCP server %s: %s", slot.config.name, slot.error)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client", daemon=True)
                self._thread.start()
            return self._loop

    async def _open(self, config: McpServerConfig) -> _Connection:
        import anyio

        ready: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        # Given up through anyio's own cancellation, which lets the SDK stop a stdio server it started
        # (a plain task.cancel() can cut its shutdown short and leave the process behind).
        scope = anyio.CancelScope()
        task = asyncio.create_task(self._hold(config, ready, scope), name=f"mcp-{config.name}")
        self._holds[task] = scope
        task.add_done_callback(lambda done: self._holds.pop(done, None))
        try:
            connection = await asyncio.wait_for(asyncio.shield(ready), self._connect_timeout)
        except BaseException:
            ready.cancel()  # nobody waits for it any more
            scope.cancel()
            raise
        connection.task = task
        return connection

    async def _hold(self, config: McpServerConfig, ready: asyncio.Future[_Connection], scope: Any) -> None:
        """Keep one server's client open until close(); its failure at start is handed to ``ready``."""
        from mcp import Client

        closing = asyncio.Event()
        try:
            with scope:
                async with Client(self._transport(config), cache=None) as client:
                    listed: list[Any] = []
                    cursor = None
                    for _ in range(MAX_LISTING_PAGES):
                        page = await client.list_tools(cursor=cursor)
                        listed.extend(page.tools)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                    ready.set_result(_Connection(client, tuple(listed), closing))
                    await closing.wait()
            if not ready.done():
                ready.set_exception(TimeoutError())
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for the connection, or logged
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %s closed: %s", config.name, _reason(exc))

    def _transport(self, config: McpServerConfig) -> AbstractAsyncContextManager[Any]:
        """The SDK transport for one server; HTTP ignores proxy variables, so only the configured address is met."""
        if config.url:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers=dict(config.headers), timeout=httpx2.Timeout(30.0, read=300.0),
                                      trust_env=False)
            return _closing_http(streamable_http_client(config.url, http_client=http), http)
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=config.command or "", args=list(config.args), env=dict(config.env),
                                       cwd=config.cwd)
        return stdio_client(params, errlog=self._errlog(config.name))

    def _errlog(self, name: str) -> IO[str]:
        import sys

        if self._log_dir is None:
            return sys.stderr
        self._log_dir.mkdir(parents=True, exist_ok=True)
        handle = (self._log_dir / f"mcp-{name}.log").open("a", encoding="utf-8")
        self._logs.append(handle)
        return handle

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (stdio servers are stopped) and the background loop; idempotent."""
        with self._guard:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is None:
            return
        connections = [slot.connection for slot in (self._slots or {}).values() if slot.connection is not None]

        async def close_all() -> None:
            for connection in connections:
                connection.closing.set()
            connected = {c.task for c in connections}
            for task, scope in self._holds.items():
                if task not in connected:  # still starting: given up
                    scope.cancel()
            if self._holds:
                await asyncio.wait(list(self._holds), timeout=CLOSE_TIMEOUT_S)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=CLOSE_TIMEOUT_S + 2)
        except Exception as exc:  # noqa: BLE001 - shutting down: say so and go on
            log.warning("MCP servers did not all close cleanly: %s", _reason(exc))
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
        for slot in (self._slots or {}).values():
            slot.connection, slot.state = None, "not started"
        for handle in self._logs:
            handle.close()


@dataclass(frozen=True)
class _Caller:
    """A tool's runner: the call through its server."""

    servers: McpServers
    server: str
    tool: str

    def __call__(self, arguments: Mapping[str, Any], abandoned: threading.Event) -> str:
        return self.servers.call(self.server, self.tool, arguments, abandoned)


def _object_schema(schema: Any) -> dict[str, Any]:
    """A tool's input schema as the model is shown it: an object schema, whatever the server sent."""
    if isinstance(schema, Mapping) and schema.get("type", "object") == "object":
        return dict(schema)
    return {"type": "object", "properties": {}}


class _closing_http(AbstractAsyncContextManager[Any]):  # noqa: N801 - used like the SDK's context managers
    """The streamable HTTP transport, closing our HTTP client after it (the SDK leaves a passed-in one open)."""

    def __init__(self, transport: AbstractAsyncContextManager[Any], http: Any) -> None:
        self._transport = transport
        self._http = http

    async def __aenter__(self) -> Any:
        await self._http.__aenter__()
        try:
            return await self._transport.__aenter__()
        except BaseException:
            await self._http.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return await self._transport.__aexit__(*exc)
        finally:
            await self._http.__aexit__(None, None, None)
