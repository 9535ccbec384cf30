"""What the server shows and answers (issue 14, item 8 and "keep what held"): nothing of the API before
login, only the scripts' endpoint as API after it, 4xx for malformed requests, and the login rules that
held in the probe (401s, logout revokes every token, a token per login, HttpOnly cookies, no file
traversal)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import stat
import time
import uuid
from pathlib import Path

import httpx
import psutil
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
        "direct call, value not offered": ("/gradio_api/run/predict", {"data": ["nope", None], "fn_index": on_load,
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


# -- security round 2 ---------------------------------------------------------------------------


def test_gradio_routes_that_answered_before_login_now_need_one(app: RunningApp) -> None:
    gets = ("/gradio_api/runs", "/gradio_api/run-history/buckets", "/gradio_api/run-history/records",
            "/gradio_api/heartbeat/x", "/gradio_api/upload_progress?upload_id=x", "/gradio_api/app_id",
            "/gradio_api/monitoring")
    for path in gets:
        response = httpx.get(app.url + path)
        assert response.status_code == 401, (path, response.status_code)
        assert "run_history" not in response.text and "Log in first" in response.text
    for path in ("/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/run-history/connect"):
        assert httpx.post(app.url + path, json={"event_id": "x", "session_hash": "x", "fn_index": 0}).status_code == 401, path
    alice = signed_in(app, "alice")
    assert alice.http.get("/gradio_api/runs").status_code == 404, "no run history page, signed in or not"


def _post_chunked(url: str, path: str, total: int, cookie: str = "") -> tuple[int, float, int]:
    """POST *total* bytes in 1 MB chunks on a raw socket, stopping as soon as an answer arrives.

    Returns the status, the seconds until the answer and the bytes sent by then. httpx would send the
    whole body before reading, which is what an attacker does not do either.
    """
    host, port = url.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    start = time.monotonic()
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                  f"Transfer-Encoding: chunked\r\n{cookie}\r\n").encode())
    chunk = b"%x\r\n" % 2**20 + b"[" * 2**20 + b"\r\n"
    sent = 0
    answer = b""
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(chunk)
            sent += 2**20
        else:
            sock.sendall(b"0\r\n\r\n")
        sock.settimeout(30)
        answer = sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError):
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            answer = sock.recv(4096)
    elapsed = time.monotonic() - start
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, elapsed, sent


def test_a_48_mb_anonymous_post_is_refused_at_once_without_reading_it(app: RunningApp) -> None:
    server = psutil.Process(app.process.pid)
    before = server.memory_info().rss
    status, elapsed, sent = _post_chunked(app.url, "/gradio_api/run/chat", 48 * 2**20)
    assert status == 401, status
    assert elapsed < 1.0, f"answered after {elapsed:.2f}s"
    assert server.memory_info().rss - before < 16 * 2**20
    assert sent < 48 * 2**20 or elapsed < 1.0


def test_a_signed_in_users_oversized_event_body_is_cut_off_at_the_limit(app: RunningApp) -> None:
    bob = signed_in(app, "bob")
    cookie = "Cookie: " + "; ".join(f"{k}={v}" for k, v in bob.http.cookies.items()) + "\r\n"
    server = psutil.Process(app.process.pid)
    before = server.memory_info().rss
    status, elapsed, sent = _post_chunked(app.url, "/gradio_api/queue/join", 48 * 2**20, cookie)
    assert status == 413, status
    assert sent < 48 * 2**20, "refused once the limit was read, not after the whole body"
    assert server.memory_info().rss - before < 32 * 2**20
    host, port = app.url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # a declared size is enough
        sock.sendall((f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: {host}:{port}\r\n{cookie}"
                      f"Content-Type: application/json\r\nContent-Length: {50 * 2**20}\r\n\r\n").encode())
        answer = sock.recv(4096)
        while b"}" not in answer and (more := sock.recv(4096)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than 4 MB" in answer, answer[:300]


def test_a_user_cannot_fetch_another_users_pending_upload(app: RunningApp, tmp_path: Path) -> None:
    private = tmp_path / "salary-review.txt"
    private.write_text("Carol's salary review: confidential " + uuid.uuid4().hex)
    carol, bob = signed_in(app, "carol"), signed_in(app, "bob")
    server_path = carol.upload(private)
    assert carol.http.get(f"/gradio_api/file={server_path}").text == private.read_text()
    refused = bob.http.get(f"/gradio_api/file={server_path}")
    assert refused.status_code == 403 and "confidential" not in refused.text
    assert bob.http.get(f"/gradio_api/file/{server_path}").status_code == 403


def test_file_routes_never_fetch_a_url(app: RunningApp) -> None:
    alice = signed_in(app, "alice")
    for url in ("http://127.0.0.1:9/x", "https://huggingface.co/x", "http%3A%2F%2F127.0.0.1%3A9%2Fx"):
        response = alice.http.get(f"/gradio_api/file={url}")
        assert response.status_code == 403, url
        assert "fetches no URLs" in response.text


def test_uploads_and_every_data_file_are_private_to_the_apps_account(app: RunningApp, workdir: Path,
                                                                     tmp_path: Path) -> None:
    data = workdir / "data"
    note = tmp_path / "note.txt"
    note.write_text("a pending upload")
    uploaded = Path(signed_in(app, "bob").upload(note))
    assert uploaded.is_relative_to(data / "tmp"), "Gradio's temporary folder is inside the data dir"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    exposed = []
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            exposed.append(f"{path.relative_to(data)} {oct(mode)}")
    assert not exposed, exposed
    assert (data / "webui.log").exists() and (data / "history.sqlite3").exists()


def test_a_forwarded_for_header_does_not_choose_the_logged_address(app: RunningApp) -> None:
    spoofed = "203.0.113.77"
    response = httpx.post(f"{app.url}/login", data={"username": "carol", "password": "wrong password"},
                          headers={"X-Forwarded-For": spoofed})
    assert response.status_code in (400, 401)
    failures = [line for line in app.log().splitlines() if "failed login for 'carol'" in line]
    assert failures and "from 127.0.0.1" in failures[-1] and spoofed not in app.log()


def test_a_rebinding_host_is_refused_and_the_machines_own_name_is_answered(app: RunningApp) -> None:
    port = app.url.rsplit(":", 1)[1]
    evil = httpx.get(f"{app.url}/", headers={"Host": f"evil.example:{port}"})
    assert evil.status_code == 400 and "--allowed-host" in evil.text
    own_name = httpx.get(f"{app.url}/", headers={"Host": f"{socket.gethostname()}:{port}"})
    assert own_name.status_code == 200, "the app listens on the LAN: its host name is one of its names"
