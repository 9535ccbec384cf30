"""Model servers for tests: llama-cpp-python's OpenAI-compatible server and `chroma run` as subprocesses,
and a small scripted OpenAI-compatible server in a thread, for what a real one cannot show on demand
(which credentials arrive, replies held open for as long as a test needs)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def start_llama_server(model: Path, port: int, *, log: Path | None = None,
                       api_key: str | None = None) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` on 127.0.0.1:port, returned once it lists its model; ``log`` gets its output.

    With ``api_key`` it answers only requests that send it as a Bearer token, as a shared server would.
    """
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2", *(["--api_key", api_key] if api_key else [])],
        stdout=out, stderr=subprocess.STDOUT,
    )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return wait_until_serving(process, f"http://127.0.0.1:{port}/v1/models", "llama_cpp.server", timeout=120,
                              headers=headers)


@dataclass
class ScriptedServer:
    """An OpenAI-compatible server that lists ``model`` and streams ``reply`` word by word.

    It answers only requests whose Authorization header is ``authorization`` (when set) and records
    every header and request body it got. While ``hold`` is set, a reply stops after its first word until
    it is cleared. With ``events`` set, a chat reply streams those chunks (OpenAI's ``chat.completion.chunk``
    objects, e.g. tool-call deltas) as they are instead.
    """

    url: str
    model: str = "scripted-model"
    reply: str = "Hello from the scripted server."
    authorization: str | None = None
    seen_authorizations: list[str | None] = field(default_factory=list)
    seen_bodies: list[dict] = field(default_factory=list)
    events: list[dict] | None = None
    hold: threading.Event = field(default_factory=threading.Event)
    replies_open: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for_open_replies(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.replies_open < count:
            assert time.monotonic() < deadline, f"{self.replies_open} replies open, not {count}"
            time.sleep(0.05)


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a streamed reply ends when the connection closes
    scripted: ScriptedServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _allowed(self) -> bool:
        got = self.headers.get("Authorization")
        self.scripted.seen_authorizations.append(got)
        if self.scripted.authorization is None or got == self.scripted.authorization:
            return True
        self._json(401, {"error": {"message": "Unauthorized", "type": "authentication_error"}})
        return False

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self._allowed():
            self._json(200, {"object": "list", "data": [{"id": self.scripted.model, "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self._allowed():
            return
        self.scripted.seen_bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        server = self.scripted
        with server._lock:
            server.replies_open += 1
        try:
            if server.events is not None and "messages" in body:
                for event in server.events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                return
            for index, word in enumerate(server.reply.split(" ")):
                piece = word if index == 0 else " " + word
                delta = {"delta": {"content": piece}} if "messages" in body else {"text": piece}
                self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, **delta}]})}\n\n".encode())
                self.wfile.flush()
                while server.hold.is_set():
                    time.sleep(0.05)
            done = {"choices": [{"index": 0, "finish_reason": "stop", **({"delta": {}} if "messages" in body else
                                                                           {"text": ""})}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the app hung up: its client went away
        finally:
            with server._lock:
                server.replies_open -= 1


@contextmanager
def scripted_server(**settings: object) -> Iterator[ScriptedServer]:
    """A ScriptedServer on a free port of 127.0.0.1, serving from threads of this process until the block ends."""
    handler = type("Handler", (_ScriptedHandler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    scripted = ScriptedServer(url=f"http://127.0.0.1:{httpd.server_address[1]}", **settings)  # type: ignore[arg-type]
    handler.scripted = scripted
    thread = threading.Thread(target=httpd.serve_forever, name="scripted-model-server", daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        scripted.hold.clear()
        httpd.shutdown()
        httpd.server_close()


def start_chroma(path: Path, port: int) -> subprocess.Popen[bytes]:
    """`chroma run` on 127.0.0.1:port, returned once its heartbeat answers."""
    chroma = Path(sys.executable).parent / "chroma"
    process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_until_serving(process, f"http://127.0.0.1:{port}/api/v2/heartbeat", "chroma run", timeout=60)


def wait_until_serving(process: subprocess.Popen[bytes], url: str, name: str, *, timeout: float,
                       headers: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``process`` once ``url`` answers 200; killed, and the test failed, if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{name} exited at start"
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"{name} did not answer within {timeout:.0f} s")
