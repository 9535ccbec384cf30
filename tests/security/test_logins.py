"""Logins (issue 14, item 5): guessing is slowed then locked, per user and per address, for the page and
for Basic auth on /status; password checks never freeze other users' requests."""

from __future__ import annotations

import base64
import concurrent.futures
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import RunningApp
from tests.support.team import PASSWORDS, signed_in, team_app

pytestmark = pytest.mark.slow

LOCKOUT_S = 20.0


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path):
    workdir = tmp_path_factory.mktemp("logins")
    with team_app(workdir, smollm_path, "--login-max-failures", "10",
                  "--login-lockout-minutes", str(LOCKOUT_S / 60)) as running:
        yield running


def page_login(app: RunningApp, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{app.url}/login", data={"username": name, "password": password}, timeout=60)


def basic_status(app: RunningApp, name: str, password: str) -> httpx.Response:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return httpx.get(f"{app.url}/status", headers={"Authorization": f"Basic {token}"}, timeout=60)


def test_25_wrong_passwords_lock_the_page_login_even_for_the_right_one(app: RunningApp) -> None:
    """(The login form showing the lock is checked in Chromium in tests/e2e/test_team_mode.py.)"""
    started = time.monotonic()
    codes = [page_login(app, "alice", f"wrong-{i}").status_code for i in range(25)]
    assert codes[:10] == [400] * 10, codes
    assert set(codes[10:]) == {429}, codes
    assert time.monotonic() - started > 3, "later failures were slowed down"
    refused = page_login(app, "alice", PASSWORDS["alice"])
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.json()["detail"] and "Retry-After" in refused.headers
    assert "failed login for 'alice' from 127.0.0.1" in app.log()

    assert signed_in(app, "bob").http.get("/status").status_code == 200, "other users still log in"
    time.sleep(LOCKOUT_S + 1)
    assert page_login(app, "alice", PASSWORDS["alice"]).status_code == 200, "the lock is temporary"


def test_basic_auth_on_status_is_throttled_too(app: RunningApp) -> None:
    codes = [basic_status(app, "carol", f"wrong-{i}").status_code for i in range(25)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}, codes
    assert basic_status(app, "carol", PASSWORDS["carol"]).status_code == 429
    assert page_login(app, "carol", PASSWORDS["carol"]).status_code == 429, "one lock for both doors"
    time.sleep(LOCKOUT_S + 1)
    assert basic_status(app, "carol", PASSWORDS["carol"]).status_code == 200


def test_parallel_wrong_logins_do_not_slow_other_requests(app: RunningApp) -> None:
    """The issue's timing test: during 20 parallel wrong logins an unrelated request gains < 50 ms.

    Medians of many samples, so one scheduling hiccup on a busy machine does not decide it.
    """
    bob = signed_in(app, "bob")

    def sample() -> float:
        began = time.perf_counter()
        assert bob.http.get("/status").status_code == 200
        return time.perf_counter() - began

    for _ in range(5):
        sample()  # warm up
    unloaded = statistics.median(sample() for _ in range(30))

    done = threading.Event()
    loaded: list[float] = []

    def wrong_login(index: int) -> int:
        return page_login(app, f"nobody-{uuid.uuid4().hex[:6]}-{index}", "wrong password").status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(wrong_login, i) for i in range(20)]
        time.sleep(0.2)  # let them all reach the server
        while not all(f.done() for f in futures):
            loaded.append(sample())
            time.sleep(0.02)
        done.set()
        codes = [f.result() for f in futures]
    assert codes.count(400) == 20, codes
    assert len(loaded) >= 5, f"the logins ended too fast to measure ({len(loaded)} samples)"
    gained = statistics.median(loaded) - unloaded
    print(f"unloaded median {unloaded * 1000:.1f} ms, during logins {statistics.median(loaded) * 1000:.1f} ms "
          f"({len(loaded)} samples)")
    assert gained < 0.050, f"an unrelated request gained {gained * 1000:.0f} ms during 20 parallel logins"
