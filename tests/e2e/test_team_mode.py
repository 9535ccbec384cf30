"""Team mode on the LAN: logins, private conversations, a fair shared queue, history that survives."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.app_server import ROOT, RunningApp, free_port, running_app
from tests.support.gradio_queue import GradioSession
from tests.support.team import user_id
from tests.support.ui import log_in as sign_in

pytestmark = pytest.mark.e2e

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}


def launcher(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launcher.py"), *args], input=stdin, text=True,
                          capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def team_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("team")
    for name, password in PASSWORDS.items():
        extra = ["--admin"] if name == "alice" else []
        result = launcher("users", "add", name, *extra, "--password-stdin", "--data-dir", str(workdir / "data"),
                          stdin=password + "\n")
        assert result.returncode == 0, result.stderr
    return workdir


def team_args(workdir: Path, model: Path) -> list[str]:
    return ["--listen", "--model", str(model), "--offline", "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--ctx-size", "1024",
            "--parallel", "1"]  # one reply at a time, so a second user waits in line (see test_team_batching)


@pytest.fixture(scope="module")
def team_app(team_dir: Path, smollm_path: Path):
    with running_app(team_dir, team_args(team_dir, smollm_path), status_auth=("alice", PASSWORDS["alice"])) as app:
        yield app


def http_status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def log_in(page, app: RunningApp, name: str, password: str) -> None:
    sign_in(page, app.url, name, password)


def ask(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def wait_for_reply(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(
        "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
        " return r.length && r[r.length-1].innerText.includes('tokens/s'); }", timeout=timeout_ms)


def test_refuses_to_serve_the_lan_without_users(tmp_path: Path, smollm_path: Path) -> None:
    result = launcher("--listen", "--model", str(smollm_path), "--offline", "--data-dir", str(tmp_path / "data"))
    assert result.returncode != 0
    assert "refusing to serve" in result.stderr and "users add" in result.stderr


def test_wrong_password_is_refused_without_detail(team_app: RunningApp) -> None:
    body = b"username=alice&password=wrong-password"
    request = urllib.request.Request(f"{team_app.url}/login", data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    detail = refused.value.read().decode()
    assert refused.value.code in (400, 401)
    assert "alice-secret" not in detail and "argon2" not in detail.lower()


def test_everything_is_behind_the_login(team_app: RunningApp, team_dir: Path) -> None:
    from gradio_client import Client

    assert http_status(f"{team_app.url}/status") == 401
    assert http_status(f"{team_app.url}/config") == 401
    assert http_status(f"{team_app.url}/gradio_api/info") == 401
    users_file = team_dir / "data" / "users.json"
    assert http_status(f"{team_app.url}/gradio_api/file={users_file}") in (401, 403)
    with urllib.request.urlopen(team_app.url, timeout=10) as response:
        page = response.read().decode()
    # Before login the page carries only the login form: no components, no data.
    assert '"auth_required": true' in page.replace('":true', '": true')
    assert '"components": []' in page.replace('":[]', '": []')
    with pytest.raises(Exception):
        Client(team_app.url, verbose=False).predict("hello", api_name="/chat")
    client = Client(team_app.url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    assert client.predict("Say hi.", "", 8, 0.0, 1, api_name="/chat").strip()


def test_two_users_chat_at_once_privately_and_the_second_waits_in_line(browser, team_app: RunningApp) -> None:
    contexts = {name: browser.new_context() for name in PASSWORDS}
    pages = {name: contexts[name].new_page() for name in PASSWORDS}
    try:
        for name, page in pages.items():
            page.set_default_timeout(60_000)
            log_in(page, team_app, name, PASSWORDS[name])
        ask(pages["alice"], "Write a long story about a lighthouse keeper named Alice.")
        pages["alice"].wait_for_function(
            "() => document.querySelectorAll(\"[data-testid='bot']\").length > 0")
        ask(pages["bob"], "Name three fruits, Bob here.")
        pages["bob"].get_by_text("queue", exact=False).first.wait_for(timeout=20_000)
        wait_for_reply(pages["alice"])
        wait_for_reply(pages["bob"])
        alice_titles = pages["alice"].locator("#conversations").inner_text()
        bob_titles = pages["bob"].locator("#conversations").inner_text()
        assert "lighthouse" in alice_titles and "fruits" not in alice_titles
        assert "fruits" in bob_titles and "lighthouse" not in bob_titles
        assert pages["alice"].get_by_role("tab", name="Users").is_visible()
        assert not pages["bob"].get_by_role("tab", name="Users").is_visible()
    finally:
        for context in contexts.values():
            context.close()


def signed_in_session(app: RunningApp, name: str) -> GradioSession:
    """The page's events are private (not named for API clients), so tests call them as the page does."""
    session = GradioSession(app.url)
    assert session.login(name, PASSWORDS[name]).status_code == 200
    return session


def test_another_users_conversation_cannot_be_read_through_the_api(team_app: RunningApp, team_dir: Path) -> None:
    from webui.history import HistoryStore

    store = HistoryStore(team_dir / "data" / "history.sqlite3")
    owner = user_id(team_dir / "data", "alice")
    secret = store.create(owner, "Lighthouse plans")
    store.append(owner, secret.id, "user", "My lighthouse is at 12 Harbour Road.")
    alice = signed_in_session(team_app, "alice")
    assert alice.call("on_load", []).success  # fills her sidebar, as the page does on load
    opened = alice.call_direct(alice.dependency("open_conversation"), [secret.id, None])
    assert "Harbour Road" in opened.text, "the call is right: alice herself sees it"

    bob = signed_in_session(team_app, "bob")
    assert bob.call("on_load", []).success
    for attempt in (bob.call_direct(bob.dependency("open_conversation"), [secret.id, None]).text,
                    bob.call(bob.dependency("open_conversation"), [secret.id, None]).text):
        assert "lighthouse" not in attempt.lower() and "harbour" not in attempt.lower()
    renamed = bob.call_direct(bob.dependency("rename_chat"), [secret.id, "taken over"])
    assert "taken over" not in renamed.text
    assert store.get(owner, secret.id).title == "Lighthouse plans", "bob could not rename it either"


def test_history_survives_a_restart_and_a_kill_mid_reply(browser, tmp_path: Path, smollm_path: Path) -> None:
    result = launcher("users", "add", "carol", "--password-stdin", "--data-dir", str(tmp_path / "data"),
                      stdin="carol-secret-3\n")
    assert result.returncode == 0, result.stderr
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        with running_app(tmp_path, team_args(tmp_path, smollm_path)) as app:
            log_in(page, app, "carol", "carol-secret-3")
            ask(page, "What colour is the sky on a clear day?")
            wait_for_reply(page)
            ask(page, "Now write an extremely long essay about the colour blue, in great detail.")
            page.wait_for_function(
                "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
                " return r.length >= 2 && r[r.length-1].innerText.length > 30; }")
            os.kill(app.process.pid, signal.SIGKILL)
            app.process.wait(10)
        with running_app(tmp_path, team_args(tmp_path, smollm_path)) as app:
            log_in(page, app, "carol", "carol-secret-3")
            page.locator("#conversations").get_by_text("What colour is the sky", exact=False).click()
            page.wait_for_function(
                "() => document.querySelectorAll(\"[data-testid='bot']\").length >= 1")
            shown = page.locator("#chatbot").inner_text()
            assert "What colour is the sky" in shown
            assert "tokens/s" in shown, "the finished reply was kept"
            assert "extremely long essay" in shown, "the question asked before the kill was kept"
    finally:
        context.close()


def test_only_an_admin_can_manage_models_and_users(team_app: RunningApp) -> None:
    bob = signed_in_session(team_app, "bob")
    unloaded = bob.call("do_unload", [])
    assert not unloaded.success and "Only an admin" in unloaded.text, unloaded.text
    assert team_app.status()["model"] is not None, "the model is still loaded"
    added = bob.call(bob.button_click("Add user"), ["mallory", "mallory-password", True])
    assert "Only an admin" in added.text and "Added" not in added.text, added.text
    # the refusal is logged as one line at warning (webui/ui/feedback.py), without a traceback
    assert team_app.wait_for_log_line("WARNING webui.ui.feedback: Adding a user: Only an admin")
    removed = bob.call(bob.button_click("Remove user"), ["alice", "", False])
    assert "Only an admin" in removed.text, removed.text
    listed = bob.call("rows", [])
    assert "alice" not in json.dumps(listed.output) and "Only an admin" in json.dumps(listed.messages)
    assert signed_in_session(team_app, "alice").http.get("/status").status_code == 200, "alice is still there"


def test_https_with_a_certificate_serves_the_login_protected_app(tmp_path: Path, team_dir: Path,
                                                                 smollm_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr[-200:]!r}")
    args = [*team_args(team_dir, smollm_path), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with running_app(tmp_path, args, status_auth=("alice", PASSWORDS["alice"]), https=True) as app:
        assert app.url.startswith("https://")
        assert app.status()["model"]["file"] == smollm_path.name
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{app.url}/status", timeout=10, context=app._ssl_context)
        assert refused.value.code == 401


@pytest.fixture()
def other_site(tmp_path: Path):
    """A plain static web site on another port of the same host (another origin, the same site)."""
    (tmp_path / "index.html").write_text("<!doctype html><title>other site</title><p>hello</p>")
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


CROSS_SITE_ATTACK = """async ([app, fnIndex]) => {
  const seen = {};
  const grab = async (name, promise) => {
    try { const r = await promise; seen[name] = r.status + " " + await r.text(); }
    catch (e) { seen[name] = "blocked: " + e; }
  };
  await grab("config", fetch(app + "/config", {credentials: "include"}));
  const session = Math.random().toString(36).slice(2);
  const body = JSON.stringify({data: [], fn_index: fnIndex, session_hash: session, event_data: null, trigger_id: null});
  await grab("join_json", fetch(app + "/gradio_api/queue/join",
    {method: "POST", credentials: "include", headers: {"Content-Type": "application/json"}, body}));
  await grab("join_simple", fetch(app + "/gradio_api/queue/join",
    {method: "POST", credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}));
  await new Promise(done => setTimeout(done, 1500));
  await grab("data", fetch(app + "/gradio_api/queue/data?session_hash=" + session, {credentials: "include"}));
  return seen;
}"""


def test_a_page_from_another_origin_cannot_read_or_act_for_a_logged_in_user(
        browser, team_app: RunningApp, team_dir: Path, other_site: str) -> None:
    """Issue 14, item 2: a page on another port read a logged-in user's conversation list in Chromium."""
    from webui.history import HistoryStore

    title = f"Harbour plans {uuid.uuid4().hex[:8]}"
    HistoryStore(team_dir / "data" / "history.sqlite3").create(user_id(team_dir / "data", "alice"), title)
    alice = signed_in_session(team_app, "alice")
    fn_index = alice.dependency("on_load")["id"]  # the event that lists her conversations
    assert title in alice.call("on_load", []).text, "the event really lists them for alice herself"
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, team_app, "alice", PASSWORDS["alice"])
        attacker = context.new_page()
        attacker.goto(other_site)
        seen = attacker.evaluate(CROSS_SITE_ATTACK, [team_app.url, fn_index])
    finally:
        context.close()
    assert title not in json.dumps(seen)
    assert '"dependencies"' not in json.dumps(seen), "the app's config was not readable"
    for name in ("config", "join_json", "data"):
        assert seen[name].startswith("blocked"), seen


def test_a_locked_name_is_told_so_on_the_login_form(browser, team_app: RunningApp) -> None:
    """Issue 14, item 5: after too many wrong passwords the form names the lock, not "wrong password"."""
    name = f"guess-{uuid.uuid4().hex[:6]}"  # locks are per name: a made-up one locks no real user
    codes = [http_status(f"{team_app.url}/login", f"username={name}&password=wrong-{i}".encode())
             for i in range(11)]
    assert codes[-1] == 429, codes
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(team_app.url)
        page.get_by_label("User name", exact=True).fill(name)
        page.get_by_label("Password", exact=True).fill("wrong-again")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Too many failed logins", exact=False).wait_for(timeout=20_000)
    finally:
        context.close()
