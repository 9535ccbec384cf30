"""API keys and data belong to a user id (security finding 4), checked against the running app.

``users passwd`` and ``users remove`` (a separate process, as an admin runs them next to the server)
and the Users tab's buttons end the user's API keys at once; a user added later under a removed user's
name starts with nothing of theirs. The data dir starts as the app wrote it before ids existed, so
the same run checks that the migration leaves existing users' data theirs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.gradio_queue import GradioSession
from tests.support.team import PASSWORDS, add_users, signed_in, team_app, user_id, users_command
from webui.api_keys import ApiKeyStore
from webui.auth import User
from webui.history import HistoryStore
from webui.prompts.presets import Preset, PresetStore
from webui.rag import DocumentLibrary

pytestmark = pytest.mark.slow

OLD_CHAT = "Bob's salary talk"
OLD_COLLECTION = "bob-notes"
OLD_PRESET = "Bob private tone"


def write_data_from_before_ids(data: Path) -> str:
    """users.json without ids, and bob's chat, collection, private preset and API key owned by his name,
    as the app kept them until now; returns bob's key."""
    users_file = data / "users.json"
    content = json.loads(users_file.read_text())
    for record in content["users"].values():
        del record["id"]
    users_file.write_text(json.dumps(content))

    history = HistoryStore(data / "history.sqlite3")
    chat = history.create("bob", OLD_CHAT)
    history.append("bob", chat.id, "user", "How do I ask for a raise?")
    DocumentLibrary(data).create_collection("bob", OLD_COLLECTION)
    PresetStore(data / "presets").save(Preset(name=OLD_PRESET, system="Answer like Bob's lawyer."), owner="bob")
    keys_file = data / "api-keys.json"
    _, secret = ApiKeyStore(keys_file).create(User("bob", is_admin=False))
    keys = json.loads(keys_file.read_text())
    del keys["keys"][0]["owner_id"]
    keys_file.write_text(json.dumps(keys))
    return secret


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("key-lifecycle")
    add_users(workdir / "data")
    return workdir


@pytest.fixture(scope="module")
def old_bob_key(workdir: Path) -> str:
    return write_data_from_before_ids(workdir / "data")


@pytest.fixture(scope="module")
def app(workdir: Path, old_bob_key: str, smollm_path: Path):
    with team_app(workdir, smollm_path) as running:
        yield running


def list_models(app: RunningApp, key: str) -> tuple[int, str]:
    """GET /v1/models with *key*: the status and, when refused, the message the client shows."""
    request = urllib.request.Request(f"{app.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, ""
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}").get("error", {}).get("message", "")


def make_key(data: Path, name: str) -> str:
    made = users_command(data, "api-key", name, "--label", "tests")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def assert_revoked(app: RunningApp, key: str) -> None:
    status, message = list_models(app, key)
    assert status == 401, message
    assert "revoked" in message and ("Make a new key in the page" in message or "Ask an admin" in message), message


def what_they_see(session: GradioSession) -> str:
    """Their conversations and collections (the chat's page load) and their presets list, as JSON text."""
    chat = session.call("on_load", [])
    assert chat.success, chat.text
    presets = session.call_direct(session.dependency("refresh"), [])
    assert presets.status_code == 200, presets.text
    return chat.text + presets.text


def test_data_made_by_name_stays_theirs_and_a_reused_name_starts_empty(app: RunningApp, workdir: Path,
                                                                       old_bob_key: str) -> None:
    data = workdir / "data"
    assert user_id(data, "bob") == "bob", "a user from before ids keeps their name as id"
    seen = what_they_see(signed_in(app, "bob"))
    assert OLD_CHAT in seen and OLD_COLLECTION in seen and OLD_PRESET in seen, "bob still has his data"
    assert list_models(app, old_bob_key)[0] == 200, "and his old key still works"

    removed = users_command(data, "remove", "bob")
    assert removed.returncode == 0 and "revoked their 1 API key" in removed.stdout, removed
    assert_revoked(app, old_bob_key)
    added = users_command(data, "add", "bob", "--password-stdin", stdin=PASSWORDS["bob"] + "\n")
    assert added.returncode == 0, added.stderr
    assert user_id(data, "bob") != "bob"
    assert_revoked(app, old_bob_key)

    seen = what_they_see(signed_in(app, "bob"))
    assert OLD_CHAT not in seen and OLD_COLLECTION not in seen and OLD_PRESET not in seen, "the new bob starts empty"
    assert users_command(data, "api-key", "bob", "--list").stdout == "bob has no API keys.\n"
    assert list_models(app, make_key(data, "bob"))[0] == 200, "the new bob's own key works"
    assert OLD_CHAT in [c.title for c in HistoryStore(data / "history.sqlite3").list("bob")], "nothing was deleted"


def test_passwd_on_the_command_line_revokes_keys_unless_told_to_keep_them(app: RunningApp, workdir: Path) -> None:
    data = workdir / "data"
    key = make_key(data, "carol")
    assert list_models(app, key)[0] == 200

    kept = users_command(data, "passwd", "carol", "--keep-api-keys", "--password-stdin", stdin="carol-new-1\n")
    assert kept.returncode == 0 and "their API keys still work" in kept.stdout, kept
    assert list_models(app, key)[0] == 200

    changed = users_command(data, "passwd", "carol", "--password-stdin", stdin="carol-new-22\n")
    assert changed.returncode == 0 and "revoked their 1 API key" in changed.stdout, changed
    assert_revoked(app, key)
    assert list_models(app, make_key(data, "carol"))[0] == 200, "a new key works"


def test_the_users_tab_revokes_keys_on_reset_and_remove(app: RunningApp, workdir: Path) -> None:
    data = workdir / "data"
    alice = signed_in(app, "alice")

    def press(button: str, name: str, password: str = "") -> str:
        result = alice.call(alice.button_click(button), [name, password, False])
        assert result.success, result.text
        return result.output[1]

    assert "Added **dave**" in press("Add user", "dave", "dave-secret-4444")
    key = make_key(data, "dave")
    assert list_models(app, key)[0] == 200

    assert "revoked their 1 API key" in press("Reset password", "dave", "dave-secret-55555")
    assert_revoked(app, key)

    key = make_key(data, "dave")
    assert "revoked their 1 API key" in press("Remove user", "dave")
    assert_revoked(app, key)
    listed = json.loads((data / "api-keys.json").read_text())["keys"]
    assert all(k["user"] != "dave" for k in listed), "remove deleted dave's keys from the file"

    assert "Added **dave**" in press("Add user", "dave", "dave-secret-666666")
    assert_revoked(app, key)
    assert users_command(data, "api-key", "dave", "--list").stdout == "dave has no API keys.\n"
