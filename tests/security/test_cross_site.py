"""Cross-site access (issue 14, item 2): another web site cannot act as, or read for, a logged-in user.

A page served from a second origin (another port on 127.0.0.1, the case found in the probe) runs in
the same Chromium as a logged-in user and tries to read the conversation list and to run an event.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import browser  # noqa: F401 - the Playwright fixture
from tests.support.app_server import RunningApp, free_port
from tests.support.team import PASSWORDS, signed_in, team_app

pytestmark = pytest.mark.slow

TITLE = f"Lighthouse plans {uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cross-site")


@pytest.fixture(scope="module")
def listed_origin() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path, listed_origin: str):
    with team_app(workdir, smollm_path, "--cors-origin", listed_origin) as running:
        from webui.history import HistoryStore

        HistoryStore(workdir / "data" / "history.sqlite3").create("alice", TITLE)
        yield running


@pytest.fixture()
def other_site(tmp_path: Path) -> Iterator[str]:
    """A plain static web site on another port of the same host."""
    (tmp_path / "index.html").write_text("<!doctype html><title>other site</title><p>hello</p>")
    port = free_port()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


ATTACK = """async ([app, fnIndex]) => {
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
        browser, app: RunningApp, other_site: str) -> None:  # noqa: F811
    alice = signed_in(app, "alice")
    fn_index = alice.dependency("on_load")["id"]  # the event that lists her conversations
    assert TITLE in alice.call("on_load", []).text, "the event really lists them for alice herself"

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(app.url)
        page.get_by_label("username").fill("alice")
        page.get_by_label("password").fill(PASSWORDS["alice"])
        page.get_by_role("button", name="Login").click()
        page.get_by_role("button", name="Send").wait_for(timeout=60_000)
        attacker = context.new_page()
        attacker.goto(other_site)
        seen = attacker.evaluate(ATTACK, [app.url, fn_index])
    finally:
        context.close()
    everything = json.dumps(seen)
    assert TITLE not in everything
    assert '"dependencies"' not in everything, "the app's config was not readable"
    assert seen["config"].startswith("blocked"), seen
    assert seen["join_json"].startswith("blocked"), seen
    assert seen["data"].startswith("blocked"), seen


def test_state_changing_requests_from_another_origin_get_403(app: RunningApp, listed_origin: str) -> None:
    alice = signed_in(app, "alice")
    fn_index = alice.dependency("on_load")["id"]
    body = {"data": [], "fn_index": fn_index, "session_hash": uuid.uuid4().hex, "event_data": None, "trigger_id": None}
    port = app.url.rsplit(":", 1)[1]
    for origin in (f"http://127.0.0.1:{int(port) + 1}", "http://evil.example", "null"):
        refused = alice.http.post("/gradio_api/queue/join", json=body, headers={"Origin": origin})
        assert refused.status_code == 403, (origin, refused.status_code, refused.text)
        assert "another web site" in refused.text
        assert "access-control-allow-origin" not in refused.headers
    for method in ("PUT", "PATCH", "DELETE"):
        assert alice.http.request(method, "/gradio_api/queue/join",
                                  headers={"Origin": "http://evil.example"}).status_code == 403
    login = httpx.post(f"{app.url}/login", data={"username": "bob", "password": PASSWORDS["bob"]},
                       headers={"Origin": "http://evil.example"})
    assert login.status_code == 403, "no login from another site either"
    own = alice.http.post("/gradio_api/queue/join", json=body, headers={"Origin": app.url})
    assert own.status_code == 200, own.text
    listed = alice.http.post("/gradio_api/queue/join", json=body, headers={"Origin": listed_origin})
    assert listed.status_code == 200
    assert listed.headers.get("access-control-allow-origin") == listed_origin
    assert listed.headers.get("access-control-allow-credentials") == "true"


def test_no_origin_is_reflected_with_credentials(app: RunningApp, listed_origin: str) -> None:
    alice = signed_in(app, "alice")
    for origin in ("http://evil.example", "http://127.0.0.1:9", "null"):
        response = alice.http.get("/config", headers={"Origin": origin})
        assert response.headers.get("access-control-allow-origin") is None, origin
        preflight = httpx.options(f"{app.url}/gradio_api/queue/join", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert preflight.headers.get("access-control-allow-origin") is None, origin
    preflight = httpx.options(f"{app.url}/gradio_api/queue/join", headers={
        "Origin": listed_origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == listed_origin


def test_the_session_cookie_is_httponly_and_samesite_lax_under_https(tmp_path: Path, smollm_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr[-200:]!r}")
    with team_app(tmp_path, smollm_path, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), https=True) as app:
        response = httpx.post(f"{app.url}/login", data={"username": "bob", "password": PASSWORDS["bob"]},
                              verify=False)  # noqa: S501 - a throwaway self-signed certificate
        assert response.status_code == 200
        cookies = response.headers.get_list("set-cookie")
        assert len([c for c in cookies if c.startswith("access-token")]) == 2, cookies
        for cookie in cookies:
            attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
            assert "httponly" in attributes, cookie
            assert attributes.get("samesite", "").lower() in ("samesite=lax", "samesite=strict"), cookie
