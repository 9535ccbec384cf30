"""Cross-site access (issue 14, item 2): another web site cannot act as, or read for, a logged-in user.

Direct requests here; the same attack from a page on another port, in Chromium, is in
tests/e2e/test_team_mode.py (one Playwright browser per test session lives in tests/e2e).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import RunningApp, free_port
from tests.support.team import PASSWORDS, signed_in, team_app

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cross-site")


@pytest.fixture(scope="module")
def listed_origin() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path, listed_origin: str):
    with team_app(workdir, smollm_path, "--cors-origin", listed_origin) as running:
        yield running


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
