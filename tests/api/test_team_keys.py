"""Team mode: every API call needs a user's key; revoked keys stop at once; a key sees only its user's data."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Team, launcher, make_key

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow


def client(team: Team, key: str):
    return openai.OpenAI(base_url=f"{team.app.url}/v1", api_key=key, max_retries=0, timeout=120)


def raw_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_calls_without_a_key_or_with_a_wrong_one_get_401(team: Team) -> None:
    for route in ("/v1/models", "/api/tags", "/api/version", "/health"):
        status, body = raw_status(team.app.url + route)
        assert status == 401, route
    for route in ("/v1/messages", "/v1/messages/count_tokens"):  # Anthropic's routes, with nobody's key
        refused = httpx.post(team.app.url + route, timeout=30, json={
            "model": "claude-any", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 401 and refused.json()["type"] == "error", route
    status, body = raw_status(team.app.url + "/v1/models", {"Authorization": "Bearer sk-local-nope-123"})
    assert status == 401 and "not valid" in body["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        client(team, "sk-local-made-up").models.list()


def test_a_valid_key_lists_models(team: Team, smollm_path: Path) -> None:
    assert [m.id for m in client(team, team.keys["bob"]).models.list()][0] == smollm_path.name


def test_a_revoked_key_is_refused_at_once(team: Team) -> None:
    key = make_key(team.workdir, "bob")
    bob = client(team, key)
    assert bob.models.list().data
    key_id = key.removeprefix("sk-local-").split("-")[0]
    result = launcher("users", "api-key", "bob", "--revoke", key_id, "--data-dir", str(team.workdir / "data"))
    assert result.returncode == 0, result.stderr
    with pytest.raises(openai.AuthenticationError):
        bob.models.list()
    assert client(team, team.keys["bob"]).models.list().data, "bob's other key still works"


def test_bobs_key_cannot_answer_from_alices_private_collection(team: Team, smollm_path: Path) -> None:
    question = [{"role": "user", "content": "What is the secret launch code of the Zephyr project?"}]
    alice = client(team, team.keys["alice"]).chat.completions.create(
        model=smollm_path.name, messages=question, max_tokens=16, temperature=0,
        extra_body={"collections": ["alice-notes"]})
    sources = alice.model_extra["sources"]
    assert sources and "PELICAN-42" in sources[0]["text"], "alice's own key answers from her collection"

    with pytest.raises(openai.BadRequestError) as refused:
        client(team, team.keys["bob"]).chat.completions.create(
            model=smollm_path.name, messages=question, max_tokens=16, temperature=0,
            extra_body={"collections": ["alice-notes"]})
    assert "PELICAN" not in str(refused.value.body)
    assert "alice-notes" in refused.value.message


def test_the_cli_refuses_keys_for_unknown_users(team: Team) -> None:
    result = launcher("users", "api-key", "mallory", "--data-dir", str(team.workdir / "data"))
    assert result.returncode == 1 and "mallory" in result.stderr
