"""Start the real app through launcher.py on a free port, and stop it again."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AUDIT_RUNNER = Path(__file__).with_name("audited_launch.py")


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log_path: Path

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/status", timeout=10) as response:
            return json.load(response)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(
    workdir: Path,
    args: Sequence[str],
    *,
    audit_log: Path | None = None,
    env: dict[str, str] | None = None,
    drop_env: Sequence[str] = (),
    timeout: float = 120,
) -> Iterator[RunningApp]:
    """Run ``launcher.py args --port <free>``; with ``audit_log``, every socket connect is recorded."""
    port = free_port()
    log_path = workdir / f"app-{port}.log"
    command = [sys.executable]
    if audit_log is not None:
        command += [str(AUDIT_RUNNER), str(audit_log)]
    command += [str(ROOT / "launcher.py"), *args, "--port", str(port)]
    process_env = {k: v for k, v in os.environ.items() if k not in drop_env}
    process_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, env=process_env)
    app = RunningApp(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{app.log()}")
            try:
                app.status()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not answer within {timeout}s:\n{app.log()}")
                time.sleep(0.3)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
