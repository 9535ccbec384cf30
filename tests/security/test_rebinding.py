"""DNS rebinding and the single-user key (security round 2, finding 1), through the real app.

A rebinding page's name resolves to 127.0.0.1, so the browser sends its own name as ``Host`` and
its own origin as ``Origin``: httpx sends exactly those headers here. The app is the default
localhost one, started with ``--api-key`` (which now covers every route) and one ``--allowed-host``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import app_args
from tests.support.app_server import RunningApp, running_app

pytestmark = pytest.mark.slow

KEY = "local-key-" + uuid.uuid4().hex[:8]
PROXY_NAME = "llm.proxy.test"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path):
    workdir = tmp_path_factory.mktemp("rebinding")
    args = [*app_args(workdir, smollm_path), "--api-key", KEY, "--allowed-host", PROXY_NAME]
    with running_app(workdir, args) as running:
        yield running


def rebinding(app: RunningApp, name: str = "evil.example") -> dict[str, str]:
    port = app.url.rsplit(":", 1)[1]
    return {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}


CHAT_BODY = {"data": ["What is the capital of France?", "", 8, 0.0, 1, []]}
V1_BODY = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
MESSAGES_BODY = {"model": "claude-any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_a_rebinding_page_is_refused_on_every_route_even_with_the_key(app: RunningApp) -> None:
    headers = {**rebinding(app), "Authorization": f"Bearer {KEY}"}  # even a page that knew the key
    with httpx.Client(base_url=app.url, headers=headers, timeout=30) as client:
        answers = {
            "/": client.get("/"),
            "/config": client.get("/config"),
            "/status": client.get("/status"),
            "/v1/models": client.get("/v1/models"),
            "/v1/chat/completions": client.post("/v1/chat/completions", json=V1_BODY),
            "/api/tags": client.get("/api/tags"),
            "/health": client.get("/health"),
            "/v1/messages": client.post("/v1/messages", json=MESSAGES_BODY),
            "/v1/messages/count_tokens": client.post("/v1/messages/count_tokens", json=MESSAGES_BODY),
            "/gradio_api/run/chat": client.post("/gradio_api/run/chat", json=CHAT_BODY),
            "/gradio_api/queue/join": client.post("/gradio_api/queue/join",
                                                  json={"data": [], "fn_index": 0, "session_hash": "x"}),
        }
    for path, response in answers.items():
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert "--allowed-host" in response.json()["detail"], path
        assert "access-control-allow-origin" not in response.headers
    assert "unknown host 'evil.example" in app.log()


def test_the_apps_own_names_and_an_allowed_host_are_answered(app: RunningApp) -> None:
    port = app.url.rsplit(":", 1)[1]
    bearer = {"Authorization": f"Bearer {KEY}"}
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}", f"{PROXY_NAME}:{port}", PROXY_NAME):
        response = httpx.get(f"{app.url}/status", headers={**bearer, "Host": host}, timeout=30)
        assert response.status_code == 200, (host, response.text[:200])
    # An origin on an allowed host and the request's own port is the app itself; another port is not.
    same = httpx.post(f"{app.url}/v1/chat/completions", json=V1_BODY, timeout=120,
                      headers={**bearer, "Host": f"{PROXY_NAME}:{port}", "Origin": f"http://{PROXY_NAME}:{port}"})
    assert same.status_code != 403, same.text
    other_port = httpx.post(f"{app.url}/v1/chat/completions", json=V1_BODY, timeout=30,
                            headers={**bearer, "Origin": f"http://127.0.0.1:{int(port) + 1}"})
    assert other_port.status_code == 403


def test_without_the_key_the_page_and_its_api_routes_are_closed(app: RunningApp) -> None:
    with httpx.Client(base_url=app.url, timeout=30) as anonymous:
        page = anonymous.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401
        assert "started with <code>--api-key</code>" in page.text and "chatbot" not in page.text
        for path in ("/config", "/status", "/gradio_api/info", "/theme.css"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert "--api-key" in response.json()["detail"]
        assert anonymous.post("/gradio_api/run/chat", json=CHAT_BODY).status_code == 401
        assert anonymous.get("/v1/models").status_code == 401, "the API keeps its own check"
        wrong = anonymous.get("/", params={"key": "not-the-key"})
        assert wrong.status_code == 401 and "not the key" in wrong.text
    assert "wrong API key was offered" in app.log()


def test_scripts_send_the_key_as_a_header(app: RunningApp) -> None:
    for header in ({"Authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}):
        assert httpx.get(f"{app.url}/status", headers=header, timeout=30).status_code == 200
        assert httpx.get(f"{app.url}/config", headers=header, timeout=30).status_code == 200
    answer = httpx.post(f"{app.url}/gradio_api/run/chat", json=CHAT_BODY, timeout=120,
                        headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200, answer.text[:300]


def test_a_browser_opening_the_printed_address_keeps_a_cookie_not_the_key(app: RunningApp) -> None:
    assert f"running on {app.url}/?key={KEY}" in app.log(), \
        "the launcher prints the address that carries the key"
    with httpx.Client(base_url=app.url, timeout=30) as browser:
        opened = browser.get("/", params={"key": KEY})
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"]
        assert KEY not in cookie and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        page = browser.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert browser.get("/config").status_code == 200
        assert browser.get("/status").status_code == 200
    with httpx.Client(base_url=app.url, timeout=30) as form_user:
        typed = form_user.post("/page-key", data={"key": KEY})
        assert typed.status_code == 303
        assert form_user.get("/config").status_code == 200


@pytest.mark.e2e
def test_in_chromium_the_page_asks_for_the_key_once(app: RunningApp, page) -> None:
    page.goto(app.url)
    assert page.get_by_text("This app was started with").is_visible()
    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Open").click()
    assert page.get_by_role("alert").inner_text() == "That is not the key this app was started with."
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Open").click()
    page.get_by_label("Message", exact=True).wait_for()
    assert page.url == f"{app.url}/"
    page.reload()  # the cookie keeps the page open
    page.get_by_label("Message", exact=True).wait_for()
