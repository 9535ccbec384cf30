"""The app as a front end only (--no-local-model --backend URL): its own API answers through a real llama_cpp.server
that wants a key, and a scripted server behind HTTP Basic (user:password@ in its URL); neither secret is ever shown."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.app_server import RunningApp, free_port, running_app
from tests.support.gradio_queue import GradioSession
from tests.support.model_servers import ScriptedServer, scripted_server, start_llama_server

pytestmark = pytest.mark.slow
SERVER_KEY = "sk-llama-K3y-0451"
BASIC_PASSWORD = "Pa55-w0rd-9917"


@pytest.fixture(scope="module")
def front_end(tmp_path_factory: pytest.TempPathFactory,
              smollm_path: Path) -> Iterator[tuple[RunningApp, str, Path, ScriptedServer]]:
    workdir = tmp_path_factory.mktemp("front-end")
    port = free_port()
    server_log = workdir / "llama-server.log"
    server = start_llama_server(smollm_path, port, log=server_log, api_key=SERVER_KEY)
    url = f"http://127.0.0.1:{port}"
    basic = "Basic " + base64.b64encode(f"ada:{BASIC_PASSWORD}".encode()).decode()
    try:
        with scripted_server(authorization=basic) as scripted:
            with_password = scripted.url.replace("http://", f"http://ada:{BASIC_PASSWORD}@")
            args = ["--no-local-model", "--backend", url, "--backend", with_password,
                    "--backend-key", f"{url}={SERVER_KEY}", "--api-allow-model-switch",
                    "--data-dir", str(workdir / "data"), "--models-dir", str(workdir / "models"), "--offline"]
            with running_app(workdir, args) as app:
                yield app, url, server_log, scripted
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_front_end_loads_no_model_and_its_api_answers_through_the_server(front_end, smollm_path) -> None:
    app, url, server_log, _ = front_end
    remote_name = f"{smollm_path.name} @ {url.removeprefix('http://')}"

    assert app.status()["model"]["file"] == remote_name
    assert "llama_context" not in app.log() and "Loaded " not in app.log(), "no llama.cpp model loads in the app"
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)
    assert remote_name in [m.id for m in client.models.list().data]

    pieces = [chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model=remote_name, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0,
        stream=True) if chunk.choices]

    assert "".join(pieces).strip()
    assert "POST /v1/chat/completions" in server_log.read_text(), "the reply came from the remote server"


def test_backend_credentials_reach_their_servers_and_no_listing_message_or_log(front_end, smollm_path) -> None:
    app, url, _, scripted = front_end
    scripted_name = f"{scripted.model} @ {scripted.url.removeprefix('http://')}"
    llama_name = f"{smollm_path.name} @ {url.removeprefix('http://')}"
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)
    page = GradioSession(app.url)
    picker = next(d for d in page.config()["dependencies"] if d.get("api_name") == "current")

    def everything_shown() -> dict[str, str]:
        return {
            **{path: httpx.get(app.url + path, timeout=30).text for path in ("/v1/models", "/api/tags", "/api/ps",
                                                                              "/status")},
            "404, OpenAI": httpx.post(f"{app.url}/v1/chat/completions", timeout=30, json={
                "model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}).text,
            "404, Ollama": httpx.post(f"{app.url}/api/chat", timeout=30, json={
                "model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}).text,
            "model picker": page.call_direct(picker, []).text,
        }

    before = everything_shown()
    reply = client.chat.completions.create(model=scripted_name, messages=[{"role": "user", "content": "Hi."}],
                                           max_tokens=8)  # an admin's call switches to it (--api-allow-model-switch)
    after = everything_shown()

    assert reply.choices[0].message.content == "Hello from the scripted server."
    assert scripted.seen_authorizations and set(scripted.seen_authorizations) == {
        "Basic " + base64.b64encode(f"ada:{BASIC_PASSWORD}".encode()).decode()}
    assert llama_name in before["/v1/models"] and scripted_name in before["/v1/models"], before["/v1/models"]
    assert llama_name in before["/api/ps"] and scripted_name in after["/api/ps"]
    assert scripted_name in before["404, OpenAI"] and scripted_name in before["model picker"]
    assert after["/status"].count(scripted.url.removeprefix("http://")) == 2, "file and note name host:port"
    shown = {f"{when}: {where}": text for when, texts in (("before", before), ("after", after))
             for where, text in texts.items()}
    shown["log"] = app.log()
    for where, text in shown.items():
        assert BASIC_PASSWORD not in text and SERVER_KEY not in text and "ada:" not in text, (where, text[:2000])
