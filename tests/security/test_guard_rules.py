"""The rules behind the HTTP guards, with plain values: origins, login throttling, session endings."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from webui.auth import UserStore
from webui.config import Settings
from webui.web.hosts import HostAllowList, host_name, origin_allowed
from webui.web.security import LoginLocked, LoginThrottle, SessionRegistry

CHEAP = PasswordHasher.from_parameters(CHEAPEST)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("origin", "host", "scheme", "listed", "allowed"), [
    ("http://192.168.1.5:7860", "192.168.1.5:7860", "http", (), True),
    ("https://llm.lan", "llm.lan:443", "https", (), True),
    ("https://llm.lan", "llm.lan", "http", (), True),  # TLS ends at a proxy: host and port decide
    ("http://192.168.1.5:8000", "192.168.1.5:7860", "http", (), False),  # another port is another site
    ("http://evil.example", "192.168.1.5:7860", "http", (), False),
    ("null", "192.168.1.5:7860", "http", (), False),
    ("http://192.168.1.5:8000", "192.168.1.5:7860", "http", ("http://192.168.1.5:8000",), True),
    ("HTTP://192.168.1.5:8000/", "192.168.1.5:7860", "http", ("http://192.168.1.5:8000",), True),
    ("http://192.168.1.5:7860", "", "http", (), False),
])
def test_only_the_apps_own_origin_or_a_listed_one_is_allowed(origin, host, scheme, listed, allowed) -> None:
    hosts = HostAllowList(names=frozenset({"192.168.1.5", "llm.lan"}))
    assert origin_allowed(origin, host, scheme, listed, hosts) is allowed


def test_an_origin_equal_to_the_host_header_is_not_enough() -> None:
    """DNS rebinding: the attacker's page sends its own name as both Host and Origin."""
    hosts = HostAllowList(names=frozenset({"127.0.0.1", "localhost"}))
    assert not origin_allowed("http://evil.example:7860", "evil.example:7860", "http", (), hosts)
    assert origin_allowed("http://localhost:7860", "localhost:7860", "http", (), hosts)


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:7860", "127.0.0.1"), ("LocalHost", "localhost"), ("localhost.:80", "localhost"),
    ("[::1]:7860", "::1"), ("[::1]", "::1"), ("::1", "::1"), ("llm.lan", "llm.lan"),
    ("", None), ("[::1", None), ("[::1]x", None), ("[nope]:1", None), ("a:b", None), ("evil@127.0.0.1", None),
    ("127.0.0.1/x", None), (None, None),
])
def test_host_headers_are_read_as_browsers_send_them(header, name) -> None:
    assert host_name(header) == name


def test_a_localhost_app_answers_only_as_its_own_names() -> None:
    hosts = HostAllowList.for_settings(Settings(), addresses=lambda: {"10.1.2.3"}, names=lambda: {"box"})
    for host in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "localhost"):
        assert hosts.allows(host), host
    for host in ("evil.example:7860", "10.1.2.3:7860", "box:7860", "127.0.0.2:7860", None, "localhost.evil.example"):
        assert not hosts.allows(host), host


def test_a_lan_app_adds_the_machines_names_addresses_proxies_and_cors_origins() -> None:
    addresses = {"192.168.1.5"}
    settings = Settings(host="0.0.0.0", allowed_hosts=("llm.example.org",), cors_origins=("https://tools.lan:8443",))
    clock = Clock()
    hosts = HostAllowList.for_settings(settings, addresses=lambda: set(addresses), names=lambda: {"box", "box.local"})
    hosts.clock = clock
    for host in ("192.168.1.5:7860", "box:7860", "box.local:7860", "llm.example.org", "tools.lan:7860", "localhost"):
        assert hosts.allows(host), host
    assert not hosts.allows("evil.example:7860")
    addresses.add("10.0.0.9")  # the laptop joined another network
    assert not hosts.allows("10.0.0.9:7860"), "addresses are read again at most every 30 s"
    clock.now += 31
    assert hosts.allows("10.0.0.9:7860")


def test_failures_earn_growing_delays_then_a_lock_that_ends() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, lockout_seconds=60, clock=clock)
    delays = []
    for _ in range(5):
        assert throttle.seconds_locked("alice", "10.0.0.2") == 0
        delays.append(throttle.delay("alice", "10.0.0.2"))
        throttle.failed("alice", "10.0.0.2")
    assert delays[:3] == [0, 0, 0] and 0 < delays[3] < delays[4] <= 2
    assert throttle.seconds_locked("alice", "10.0.0.2") == pytest.approx(60)
    assert throttle.seconds_locked("alice", "10.0.0.99") > 0, "the name is locked from every address"
    assert throttle.seconds_locked("bob", "10.0.0.99") == 0, "other names and addresses are not"
    clock.now += 61
    assert throttle.seconds_locked("alice", "10.0.0.2") == 0
    assert throttle.delay("alice", "10.0.0.2") == 0, "failures are forgotten after a quiet lockout period"


def test_an_address_guessing_many_names_is_locked_too() -> None:
    throttle = LoginThrottle(max_failures=4, lockout_seconds=60, clock=Clock())
    for index in range(4 * 5):
        assert throttle.seconds_locked(f"name{index}", "10.0.0.2") == 0
        throttle.failed(f"name{index}", "10.0.0.2")
    assert throttle.seconds_locked("someone-new", "10.0.0.2") > 0
    assert throttle.seconds_locked("someone-new", "10.0.0.3") == 0


def test_a_right_password_clears_the_names_failures_not_the_addresss() -> None:
    throttle = LoginThrottle(max_failures=3, lockout_seconds=60, clock=Clock())
    throttle.failed("alice", "10.0.0.2")
    throttle.failed("alice", "10.0.0.2")
    throttle.succeeded("alice")
    throttle.failed("alice", "10.0.0.2")
    assert throttle.seconds_locked("alice", "10.0.0.2") == 0


def test_the_lock_message_names_the_wait() -> None:
    assert "Try again in 15 minutes" in str(LoginLocked(15 * 60))
    assert "Try again in 1 minute." in str(LoginLocked(5))


@pytest.fixture()
def users(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.json", hasher=CHEAP)
    store.add("alice", "alice password")
    store.add("bob", "bob password")
    return store


def test_sessions_end_when_idle_or_too_old(users: UserStore) -> None:
    clock = Clock()
    registry = SessionRegistry(users, idle_seconds=10, max_seconds=25, clock=clock)
    tokens = {"t1": "alice", "t2": "alice"}
    registry.started(tokens, "t1")
    registry.started(tokens, "t2")
    for _ in range(3):  # used every 8 s: never idle, but too old after 25 s
        clock.now += 8
        assert registry.check(tokens, "t1") == "alice"
    clock.now += 8
    assert registry.check(tokens, "t1") is None and "t1" not in tokens
    assert registry.check(tokens, "t2") is None and "t2" not in tokens, "t2 was idle for 32 s"


def test_sessions_end_when_the_user_is_removed_or_the_password_changes(users: UserStore) -> None:
    registry = SessionRegistry(users, idle_seconds=100, max_seconds=1000, clock=Clock())
    tokens = {"a": "alice", "b": "bob"}
    registry.started(tokens, "a")
    registry.started(tokens, "b")
    users.set_password("alice", "a new password")
    users.remove("bob")
    assert registry.check(tokens, "a") is None and registry.check(tokens, "b") is None
    assert tokens == {}
    tokens["c"] = "alice"
    registry.started(tokens, "c")
    assert registry.check(tokens, "c") == "alice", "a login with the new password works"


def test_a_token_for_a_user_who_is_gone_is_dropped(users: UserStore) -> None:
    registry = SessionRegistry(users, idle_seconds=100, max_seconds=1000, clock=Clock())
    tokens = {"x": "mallory"}
    registry.started(tokens, "x")
    assert tokens == {}
    assert registry.check(tokens, "unknown-token") is None


def test_a_session_ended_by_the_periodic_sweep_is_logged_with_its_reason(
    users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep, not only a request's own check, may be what ends a session; the admin's log says why either way."""
    clock = Clock()
    registry = SessionRegistry(users, idle_seconds=100, max_seconds=1000, clock=clock)
    tokens = {"a": "alice", "b": "bob"}
    registry.started(tokens, "a")
    registry.started(tokens, "b")
    users.remove("bob")
    clock.now += SessionRegistry.SWEEP_SECONDS + 1
    with caplog.at_level("INFO", logger="webui.web.security"):
        assert registry.check(tokens, "a") == "alice"  # alice's request runs the sweep, which ends bob's session
    assert "b" not in tokens
    assert "signed out 'bob': the user was removed" in caplog.text
