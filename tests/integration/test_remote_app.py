"""The app as a front end only (--no-local-model --backend URL): its own API answers through a real llama_cpp.server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.app_server import RunningApp, free_port, running_app
from tests.support.model_servers import start_llama_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def front_end(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[tuple[RunningApp, str, Path]]:
    workdir = tmp_path_factory.mktemp("front-end")
    port = free_port()
    server_log = workdir / "llama-server.log"
    server = start_llama_server(smollm_path, port, log=server_log)
    url = f"http://127.0.0.1:{port}"
    args = ["--no-local-model", "--backend", url, "--data-dir", str(workdir / "data"),
            "--models-dir", str(workdir / "models"), "--offline"]
    try:
        with running_app(workdir, args) as app:
            yield app, url, server_log
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_front_end_loads_no_model_and_its_api_answers_through_the_server(front_end, smollm_path) -> None:
    app, url, server_log = front_end
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
