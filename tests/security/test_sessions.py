"""Sessions (issue 14, item 4): removing a user or changing a password ends their sessions at once,
from the page or from the ``users`` command in another process; sessions expire when idle or old."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.gradio_queue import GradioSession
from tests.support.team import PASSWORDS, add_users, signed_in, team_app, users_command

pytestmark = pytest.mark.slow

MORE = {"dave": "dave-secret-4444", "erin": "erin-secret-55555"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("sessions")
    add_users(workdir / "data")
    add_users(workdir / "data", MORE)
    return workdir


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path):
    with team_app(workdir, smollm_path) as running:
        yield running


def log_in(app: RunningApp, name: str, password: str) -> GradioSession:
    session = GradioSession(app.url)
    assert session.login(name, password).status_code == 200
    return session


def access(session: GradioSession, uploaded: str) -> dict[str, int | bool]:
    """What the session's cookie opens: the page, /status, the queue API and a file route."""
    page = session.http.get("/")
    joined = session.http.post("/gradio_api/queue/join", json={
        "data": [], "fn_index": 0, "session_hash": session.session_hash, "event_data": None, "trigger_id": None})
    return {
        "page": '"auth_required":true' not in page.text.replace(" ", "") and page.status_code == 200,
        "status": session.http.get("/status").status_code,
        "queue": joined.status_code,
        "file": session.http.get(f"/gradio_api/file={uploaded}").status_code,
        "config": session.http.get("/config").status_code,
    }


SIGNED_IN = {"page": True, "status": 200, "queue": 200, "file": 200, "config": 200}


def assert_signed_out(seen: dict) -> None:
    assert seen["page"] is False, "the page shows the login form again"
    assert seen["status"] == 401 and seen["queue"] == 401 and seen["config"] == 401
    assert seen["file"] in (401, 403)


def test_users_remove_from_the_command_line_ends_the_users_sessions(app: RunningApp, workdir: Path,
                                                                      tmp_path: Path) -> None:
    bob = log_in(app, "bob", PASSWORDS["bob"])
    note = tmp_path / "note.txt"
    note.write_text("bob's note")
    uploaded = bob.upload(note)
    assert access(bob, uploaded) == SIGNED_IN
    result = users_command(workdir / "data", "remove", "bob")
    assert result.returncode == 0, result.stderr
    assert_signed_out(access(bob, uploaded))
    assert app.wait_for_log_line("signed out 'bob': the user was removed")


def test_users_passwd_from_the_command_line_ends_the_users_sessions(app: RunningApp, workdir: Path,
                                                                      tmp_path: Path) -> None:
    carol = log_in(app, "carol", PASSWORDS["carol"])
    other_carol = log_in(app, "carol", PASSWORDS["carol"])  # a second browser
    note = tmp_path / "note.txt"
    note.write_text("carol's note")
    uploaded = carol.upload(note)
    assert access(carol, uploaded) == SIGNED_IN
    result = users_command(workdir / "data", "passwd", "carol", "--password-stdin", stdin="a brand new pass\n")
    assert result.returncode == 0, result.stderr
    assert_signed_out(access(carol, uploaded))
    assert_signed_out(access(other_carol, uploaded))
    assert log_in(app, "carol", "a brand new pass").http.get("/status").status_code == 200
    assert GradioSession(app.url).login("carol", PASSWORDS["carol"]).status_code == 400


def test_remove_and_reset_from_the_users_tab_end_sessions_at_once(app: RunningApp, tmp_path: Path) -> None:
    dave = log_in(app, "dave", MORE["dave"])
    erin = log_in(app, "erin", MORE["erin"])
    note = tmp_path / "note.txt"
    note.write_text("a note")
    uploaded = dave.upload(note)
    assert access(dave, uploaded) == SIGNED_IN and access(erin, erin.upload(note)) == SIGNED_IN
    alice = signed_in(app, "alice")
    reset = alice.call(alice.button_click("Reset password"), ["dave", "dave-new-password", False])
    assert reset.success and "New password set" in reset.text, reset.text
    assert_signed_out(access(dave, uploaded))
    removed = alice.call(alice.button_click("Remove user"), ["erin", "", False])
    assert removed.success and "Removed" in removed.text, removed.text
    assert_signed_out(access(erin, uploaded))
    assert access(alice, alice.upload(note))["status"] == 200, "the admin's own session is untouched"


def test_sessions_expire_when_idle_and_at_their_maximum_age(tmp_path: Path, smollm_path: Path) -> None:
    idle_s, max_s = 4.0, 12.0
    flags = ["--session-idle-hours", str(idle_s / 3600), "--session-max-days", str(max_s / 86400)]
    with team_app(tmp_path, smollm_path, *flags) as app:
        idle = log_in(app, "bob", PASSWORDS["bob"])
        busy = log_in(app, "carol", PASSWORDS["carol"])
        started = time.monotonic()
        assert idle.http.get("/status").status_code == 200
        while time.monotonic() - started < idle_s + 1.5:  # carol keeps using hers; bob does not
            assert busy.http.get("/status").status_code == 200
            time.sleep(1)
        assert idle.http.get("/status").status_code == 401, "bob's idle session ended"
        assert busy.http.get("/status").status_code == 200, "carol's, in use, did not"
        while time.monotonic() - started < max_s - 2:
            assert busy.http.get("/status").status_code == 200
            time.sleep(1)
        time.sleep(3.5)
        assert busy.http.get("/status").status_code == 401, "carol's ended at its maximum age, in use or not"
        assert busy.http.get("/config").status_code == 401
        assert log_in(app, "carol", PASSWORDS["carol"]).http.get("/status").status_code == 200
