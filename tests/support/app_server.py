"""Start the real app through launcher.py on a free port, and stop it again."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
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
    status_auth: tuple[str, str] | None = None

    @property
    def _ssl_context(self) -> ssl.SSLContext | None:
        """Tests serve HTTPS with a throwaway self-signed certificate, so it is not verified."""
        return ssl._create_unverified_context() if self.url.startswith("https") else None  # noqa: S323

    def status(self) -> dict:
        request = urllib.request.Request(f"{self.url}/status")
        if self.status_auth:
            token = base64.b64encode(":".join(self.status_auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10, context=self._ssl_context) as response:
            return json.load(response)

    def answers(self) -> bool:
        """True once the server answers HTTP at all (a 401 from a login-protected app counts)."""
        try:
            self.status()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log_line(self, line: str, timeout: float = 15) -> bool:
        """Whether ``line`` shows in the app's log within ``timeout`` s (a loaded machine writes it late)."""
        deadline = time.monotonic() + timeout
        while line not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


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
    status_auth: tuple[str, str] | None = None,
    https: bool = False,
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
    app = RunningApp(url=f"{'https' if https else 'http'}://127.0.0.1:{port}", process=process, log_path=log_path, status_auth=status_auth)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{app.log()}")
            if app.answers():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within {timeout}s:\n{app.log()}")
            time.sleep(0.3)
        yield app
    except BaseException:
        # CI keeps no files: the end of the app's log goes to the test's captured output instead.
        print(f"--- the last lines of the app's log ({log_path.name}) ---\n" + "\n".join(app.log().splitlines()[-80:]))
        raise
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def app_with_hub(workdir: Path, model: Path, hub_endpoint: str) -> Iterator[RunningApp]:
    """The app on ``model`` (context 1024) with models and data under ``workdir``, its hub at
    ``hub_endpoint`` (a FakeHub) and the tests' offline switch lifted, so downloads reach that hub."""
    args = ["--model", str(model), "--models-dir", str(workdir / "models"),
            "--data-dir", str(workdir / "data"), "--ctx-size", "1024"]
    with running_app(workdir, args, env={"HF_ENDPOINT": hub_endpoint}, drop_env=("HF_HUB_OFFLINE",)) as app:
        yield app
