"""Real servers tests start as subprocesses: llama-cpp-python's OpenAI-compatible server and `chroma run`."""

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
    return wait_until_serving(process, f"http://127.0.0.1:{port}/v1/models", "llama_cpp.server", timeout=120)


def start_chroma(path: Path, port: int) -> subprocess.Popen[bytes]:
    """`chroma run` on 127.0.0.1:port, returned once its heartbeat answers."""
    chroma = Path(sys.executable).parent / "chroma"
    process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_until_serving(process, f"http://127.0.0.1:{port}/api/v2/heartbeat", "chroma run", timeout=60)


def wait_until_serving(process: subprocess.Popen[bytes], url: str, name: str, *, timeout: float) -> subprocess.Popen[bytes]:
    """``process`` once ``url`` answers 200; killed, and the test failed, if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{name} exited at start"
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"{name} did not answer within {timeout:.0f} s")
