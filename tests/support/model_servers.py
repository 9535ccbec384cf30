"""Real servers the remote-backend tests start as subprocesses: llama-cpp-python's OpenAI-compatible server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_llama_server(model: Path, port: int, *, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` on 127.0.0.1:port, returned once it lists its model; ``log`` gets its output."""
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2"],
        stdout=out, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, "llama_cpp.server exited at start"
        time.sleep(0.5)
    process.kill()
    raise AssertionError("llama_cpp.server did not answer within 120 s")
