"""Replies at once per user (--max-streams-per-user, 4 by default in team mode): the fifth stream of one
key is refused with a 429 that says how many are allowed, while listings and other users still answer.

The app runs as a front end to a scripted model server that holds each reply open after its first word,
so streams stay open for as long as the test needs without loading a core.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.app_server import RunningApp, running_app
from tests.support.model_servers import ScriptedServer, scripted_server
from tests.support.team import PASSWORDS, add_users, users_command

pytestmark = pytest.mark.slow
QUICK_S = 5.0  # 45 streams on one key once held /v1/models for 13 s


@pytest.fixture(scope="module")
def held_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, ScriptedServer, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("stream-limits")
    data = workdir / "data"
    add_users(data)
    keys = {}
    for name in ("alice", "bob"):
        made = users_command(data, "api-key", name, "--label", "tests")
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()
    with scripted_server() as scripted:
        args = ["--listen", "--no-local-model", "--backend", scripted.url, "--data-dir", str(data),
                "--models-dir", str(workdir / "models"), "--offline"]
        with running_app(workdir, args, status_auth=("alice", PASSWORDS["alice"])) as app:
            yield app, scripted, keys


def stream(stack: ExitStack, app: RunningApp, key: str, route: str, model: str) -> httpx.Response:
    """A streamed chat opened on its own connection; the app answers once the first word arrived."""
    client = stack.enter_context(httpx.Client(base_url=app.url, timeout=30,
                                              headers={"Authorization": f"Bearer {key}"}))
    body = {"model": model, "messages": [{"role": "user", "content": "Hi."}], "stream": True}
    return stack.enter_context(client.stream("POST", route, json=body))


def test_the_fifth_stream_of_a_user_is_refused_while_others_and_listings_answer(held_team) -> None:
    app, scripted, keys = held_team
    model = f"{scripted.model} @ {scripted.url.removeprefix('http://')}"
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    chat = {"model": model, "messages": [{"role": "user", "content": "Hi."}], "stream": True}
    scripted.hold.set()
    with ExitStack() as stack:
        open_streams = [stream(stack, app, keys["alice"], route, model)
                        for route in ("/v1/chat/completions", "/api/chat") * 2]
        assert [s.status_code for s in open_streams] == [200] * 4
        scripted.wait_for_open_replies(4)

        for route in ("/v1/chat/completions", "/api/chat", "/v1/completions"):
            body = {**chat, "prompt": "Hi."} if route == "/v1/completions" else chat
            if route == "/v1/completions":
                del body["messages"]
            fifth = httpx.post(app.url + route, json=body, headers=alice, timeout=30)
            assert fifth.status_code == 429, fifth.text
            error = fifth.json()["error"]
            assert "allows 4 at once per user" in (error["message"] if isinstance(error, dict) else error)

        started = time.monotonic()
        listing = httpx.get(f"{app.url}/v1/models", headers=alice, timeout=30)
        assert listing.status_code == 200 and model in listing.text
        assert time.monotonic() - started < QUICK_S
        started = time.monotonic()
        bobs = stream(stack, app, keys["bob"], "/v1/chat/completions", model)
        assert bobs.status_code == 200 and time.monotonic() - started < QUICK_S, "another user's reply starts"

        open_streams[0].close()  # a client that goes away frees its place
        deadline = time.monotonic() + 10
        while (again := stream(stack, app, keys["alice"], "/api/chat", model)).status_code == 429:
            again.close()
            assert time.monotonic() < deadline, "the place of a stream whose client left stayed taken"
            time.sleep(0.2)
        scripted.hold.clear()
        for held in [*open_streams[1:], bobs, again]:  # every stream let through ends in full
            text = "".join(held.iter_text())
            assert ("data: [DONE]" in text or '"done": true' in text) and '"error"' not in text, text
