"""Real MCP servers for the tool tests, written with the MCP SDK: run as ``python -m tests.support.mcp_servers
stdio`` (the client starts it) or ``... http PORT`` (streamable HTTP on 127.0.0.1:PORT/mcp)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_server(name: str) -> MCPServer:
    """A server with ``add``, ``sleep`` (outlasts a short timeout), ``fail`` (raises) and ``picture``."""
    server = MCPServer(name, log_level="WARNING")

    @server.tool()
    def add(a: float, b: float) -> str:
        """Add two numbers."""
        total = a + b
        return str(int(total) if total == int(total) else total)

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Wait for the given number of seconds, then say so."""
        await asyncio.sleep(seconds)
        return f"slept {seconds} s"

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise RuntimeError("the disk is on fire")

    @server.tool()
    def picture() -> Image:
        """A tiny PNG."""
        return Image(data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, format="png")

    return server


def stdio_command() -> tuple[str, list[str]]:
    """The command and arguments of the stdio server, as an mcp.json entry names them."""
    return sys.executable, ["-m", "tests.support.mcp_servers", "stdio"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(name: str = "remote") -> Iterator[str]:
    """The streamable HTTP server in a subprocess on a free local port; yields its URL, stops it after."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.support.mcp_servers", "http", str(port), name],
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the MCP HTTP server exited at start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP HTTP server did not start within 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "stdio":
        build_server("local").run("stdio")
    else:
        build_server(sys.argv[3] if len(sys.argv) > 3 else "remote").run(
            "streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
