"""A team-mode app for security tests: users made with the real ``users`` command, served on the LAN flags."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.app_server import ROOT, RunningApp, running_app
from tests.support.gradio_queue import GradioSession

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}
ADMINS = {"alice"}


def users_command(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``launcher.py users ...`` in its own process, as an admin would run it next to the server."""
    return subprocess.run([sys.executable, str(ROOT / "launcher.py"), "users", *args, "--data-dir", str(data_dir)],
                          input=stdin, text=True, capture_output=True, timeout=120, check=False)


def user_id(data_dir: Path, name: str) -> str:
    """The id that owns *name*'s data (chats, collections, presets, keys), as ``users add`` made it."""
    from webui.auth import UserStore

    user = UserStore(data_dir / "users.json").get(name)
    assert user is not None, f"no user {name!r} in {data_dir}"
    return user.id


def add_users(data_dir: Path, passwords: dict[str, str] = PASSWORDS) -> None:
    for name, password in passwords.items():
        extra = ["--admin"] if name in ADMINS else []
        result = users_command(data_dir, "add", name, *extra, "--password-stdin", stdin=password + "\n")
        assert result.returncode == 0, result.stderr


def team_args(workdir: Path, model: Path, *extra: str) -> list[str]:
    return ["--listen", "--model", str(model), "--offline", "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--ctx-size", "1024", *extra]


@contextmanager
def team_app(workdir: Path, model: Path, *extra: str, https: bool = False) -> Iterator[RunningApp]:
    """A fresh data dir with alice (admin), bob and carol, and the app serving it in team mode."""
    if not (workdir / "data" / "users.json").exists():
        add_users(workdir / "data")
    with running_app(workdir, team_args(workdir, model, *extra), https=https,
                     status_auth=("alice", PASSWORDS["alice"])) as app:
        yield app


def signed_in(app: RunningApp, name: str, **headers: str) -> GradioSession:
    """A session logged in through the page's own POST /login."""
    session = GradioSession(app.url, headers=headers or None)
    response = session.login(name, PASSWORDS[name])
    assert response.status_code == 200, response.text
    return session
