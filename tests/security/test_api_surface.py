"""What the server shows and answers (issue 14, item 8 and "keep what held"): nothing of the API before
login, only the scripts' endpoint as API after it, 4xx for malformed requests, and the login rules that
held in the probe (401s, logout revokes every token, a token per login, HttpOnly cookies, no file
traversal)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import RunningApp
from tests.support.gradio_queue import GradioSession
from tests.support.team import PASSWORDS, signed_in, team_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("surface")


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path):
    with team_app(workdir, smollm_path) as running:
        yield running


def test_before_login_nothing_of_the_api_is_served(app: RunningApp) -> None:
    page = httpx.get(app.url).text
    assert "window.gradio_api_info = {};" in page, "the login page embeds no API description"
    assert "named_endpoints" not in page and "/chat" not in page
    assert '"dependencies":[]' in page.replace(" ", "")
    for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/queue/data?session_hash=x",
                 "/gradio_api/file=/etc/hostname", "/gradio_api/info?all_endpoints=true", "/status"):
        assert httpx.get(app.url + path).status_code == 401, path
    for path in ("/openapi.json", "/docs", "/redoc", "/gradio_api/docs"):
        assert httpx.get(app.url + path).status_code in (401, 404), path
    body = {"data": [], "fn_index": 0, "session_hash": "x"}
    for path in ("/gradio_api/queue/join", "/gradio_api/run/predict", "/gradio_api/call/chat"):
        assert httpx.post(app.url + path, json=body).status_code == 401, path
    upload = httpx.post(f"{app.url}/gradio_api/upload", files={"files": ("a.txt", b"hello")})
    assert upload.status_code == 401


def test_only_the_scripts_endpoint_is_an_api_after_login(app: RunningApp) -> None:
    alice = signed_in(app, "alice")
    info = alice.http.get("/gradio_api/info").json()
    assert list(info["named_endpoints"]) == ["/chat"]
    assert not info.get("unnamed_endpoints")
    everything = alice.http.get("/gradio_api/info", params={"all_endpoints": "true"}).json()
    assert list(everything["named_endpoints"]) == ["/chat"], "the page's events are private, not undocumented"
    public = [d["api_name"] for d in alice.config()["dependencies"] if d.get("api_visibility") != "private"]
    assert public == ["chat"]
    assert "add_files" in {d["api_name"] for d in alice.config()["dependencies"]}, "the page keeps its events"


def test_malformed_requests_answer_4xx_not_500(app: RunningApp) -> None:
    alice = signed_in(app, "alice")
    on_load = alice.dependency("open_conversation")["id"]
    session = uuid.uuid4().hex
    requests = {
        "unknown event index": ("/gradio_api/queue/join", {"data": [], "fn_index": 9999, "session_hash": session}),
        "negative event index": ("/gradio_api/queue/join", {"data": [], "fn_index": -1, "session_hash": session}),
        "direct call, unknown index": ("/gradio_api/run/predict", {"data": [], "fn_index": 9999,
                                                                   "session_hash": session}),
        "direct call, too few inputs": ("/gradio_api/run/predict", {"data": [], "fn_index": on_load,
                                                                    "session_hash": session}),
        "direct call, value not offered": ("/gradio_api/run/predict", {"data": ["nope"], "fn_index": on_load,
                                                                       "session_hash": session}),
        "unknown api name": ("/gradio_api/run/nothere", {"data": []}),
        "unknown api name, queued": ("/gradio_api/call/nothere", {"data": []}),
        "chat with too few inputs": ("/gradio_api/run/chat", {"data": ["hi", "", 8]}),
        "component server, unknown component": ("/gradio_api/component_server", {
            "data": 1, "component_id": 9999, "fn_name": "x", "session_hash": session}),
        "data not a list": ("/gradio_api/queue/join", {"data": "x", "fn_index": 0, "session_hash": session}),
    }
    answers = {}
    for name, (path, body) in requests.items():
        response = alice.http.post(path, json=body)
        answers[name] = response.status_code
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    not_json = alice.http.post("/gradio_api/queue/join", content=b"{oops", headers={"content-type": "application/json"})
    assert 400 <= not_json.status_code < 500
    assert httpx.post(f"{app.url}/login").status_code in (400, 422)
    assert httpx.get(f"{app.url}/status", headers={"Authorization": "Basic %%%"}).status_code == 401
    assert httpx.get(f"{app.url}/config", headers={"Cookie": 'a="\\x; ;;=;'}).status_code == 401
    assert alice.http.get("/status").status_code == 200, f"the server still answers after {json.dumps(answers)}"


def test_logout_revokes_every_token_of_the_user_and_each_login_gets_its_own(app: RunningApp) -> None:
    first, second = signed_in(app, "bob"), signed_in(app, "bob")
    tokens = {session.http.cookies.get(name) for session in (first, second) for name in session.http.cookies
              if name.startswith("access-token-") and "unsecure" not in name}
    assert len(tokens) == 2, "a new token per login"
    assert first.http.get("/status").status_code == 200 and second.http.get("/status").status_code == 200
    first.http.get("/logout")
    for session in (first, second):  # their cookie jars still send the old tokens
        assert session.http.get("/status").status_code == 401
        assert session.http.get("/config").status_code == 401


def test_login_cookies_are_httponly_and_samesite_lax(app: RunningApp) -> None:
    response = GradioSession(app.url).login("carol", PASSWORDS["carol"])
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    for cookie in cookies:
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "httponly" in attributes and "samesite=lax" in attributes, cookie


@pytest.mark.parametrize("path", [
    "/gradio_api/file=../../../../etc/passwd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file/..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=/tmp/a%00b",
    "/gradio_api/file=/tmp/%ff%fe",
    "/gradio_api/file=USERS",
    "/gradio_api/file=HISTORY",
])
def test_file_routes_refuse_traversal_and_the_data_dir(app: RunningApp, workdir: Path, path: str) -> None:
    alice = signed_in(app, "alice")
    path = path.replace("USERS", str(workdir / "data" / "users.json"))
    path = path.replace("HISTORY", str(workdir / "data" / "history.sqlite3"))
    response = alice.http.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert "root:" not in response.text and "argon2" not in response.text and "SQLite" not in response.text
