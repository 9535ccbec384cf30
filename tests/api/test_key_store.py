"""API keys on disk: hashed, several per user, revocable, and checked by the access service."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from webui.api_keys import ApiKeyStore, UnknownApiKey
from webui.auth import User, UserStore
from webui.config import Settings
from webui.quarantine import set_aside_files
from webui.services.access import LOCAL_USER
from webui.services.api_access import ApiAccessService, NotAuthorized, bearer_token


ALICE = User("alice", is_admin=False, id="4f1c0a9e")
BOB = User("bob", is_admin=False, id="b0b0b0b0")


def test_keys_are_stored_hashed_and_work_until_revoked(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "api-keys.json")
    first, secret1 = store.create(ALICE, "editor")
    second, secret2 = store.create(ALICE)
    assert store.owner_of(secret1) == store.owner_of(secret2) == ALICE.id
    text = (tmp_path / "api-keys.json").read_text()
    assert secret1 not in text and secret2 not in text, "only hashes are written"
    assert stat.S_IMODE((tmp_path / "api-keys.json").stat().st_mode) == 0o600
    assert [(k.id, k.user) for k in store.list(ALICE)] == [(first.id, "alice"), (second.id, "alice")]
    store.revoke(ALICE, first.id)
    assert store.owner_of(secret1) is None and store.owner_of(secret2) == ALICE.id
    with pytest.raises(UnknownApiKey, match="bob has no API key"):
        store.revoke(BOB, second.id)
    assert store.owner_of("sk-local-" + "x" * 40) is None


def test_keys_belong_to_the_user_id_not_the_name(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "api-keys.json")
    _, secret = store.create(BOB)
    new_bob = User("bob", is_admin=False, id="a-new-bob")
    assert store.list(new_bob) == [] and store.revoke_all(new_bob.id) == 0
    assert store.owner_of(secret) == BOB.id
    assert store.revoke_all(BOB.id) == 1 and store.owner_of(secret) is None


def test_keys_written_before_ids_belong_to_the_user_of_that_name(tmp_path: Path) -> None:
    """A users.json from then gives each user their name as id, so their old keys keep working."""
    path = tmp_path / "api-keys.json"
    store = ApiKeyStore(path)
    key, secret = store.create(User("bob", is_admin=False))
    data = json.loads(path.read_text())
    del data["keys"][0]["owner_id"]  # as the file was written before ids
    path.write_text(json.dumps(data))
    assert store.owner_of(secret) == "bob" and [k.id for k in store.list(User("bob", False))] == [key.id]


@pytest.mark.parametrize("garbage", [b"{not json", b'{"keys": "none"}', b'{"keys": [{"id": "x"}]}', b"\xff\x00"])
def test_a_broken_keys_file_is_kept_aside_and_no_key_is_accepted_meanwhile(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "api-keys.json"
    path.write_bytes(garbage)
    store = ApiKeyStore(path)
    assert store.list() == [] and store.owner_of("sk-local-abcd-" + "x" * 40) is None
    [kept] = set_aside_files(tmp_path)
    assert kept.name.startswith("api-keys.json.corrupt-") and kept.read_bytes() == garbage
    [report] = store.set_aside
    assert report.kept_as == kept and f"kept as {kept.name}" in report.message()
    _, secret = store.create(ALICE)  # the store works again, in a new file
    assert store.owner_of(secret) == ALICE.id and kept.read_bytes() == garbage


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None and bearer_token("Bearer ") is None


def test_single_user_app_needs_the_api_key_only_when_one_is_set(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.json")
    open_app = ApiAccessService(Settings(data_dir=tmp_path), users, team_mode=False)
    assert open_app.caller(None) == LOCAL_USER
    keyed = ApiAccessService(Settings(data_dir=tmp_path, api_key="s3cret-key"), users, team_mode=False)
    assert keyed.caller("Bearer s3cret-key") == LOCAL_USER
    for header in (None, "Bearer wrong"):
        with pytest.raises(NotAuthorized):
            keyed.caller(header)


def test_team_keys_act_as_their_user_and_die_with_the_user(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    users = UserStore(tmp_path / "users.json", hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    users.add("alice", "alice-secret-1", admin=True)
    users.add("bob", "bob-secret-22")
    access = ApiAccessService(Settings(data_dir=tmp_path), users, team_mode=True)
    alice = users.get("alice")
    bob = users.get("bob")
    _, bob_secret = access.create_key(bob)
    assert access.caller(f"Bearer {bob_secret}").name == "bob"
    with pytest.raises(NotAuthorized):
        access.create_key(bob, "alice")  # only admins manage other users' keys
    key, _ = access.create_key(alice, "bob", "made by an admin")
    assert {k.id for k in access.list_keys(alice, "bob")} >= {key.id}
    users.remove("bob")  # the store alone: the key stays listed, but its owner id is gone
    with pytest.raises(NotAuthorized, match="its user was removed. Ask an admin"):
        access.caller(f"Bearer {bob_secret}")
    users.add("bob", "bob-secret-333")
    with pytest.raises(NotAuthorized, match="its user was removed"):
        access.caller(f"Bearer {bob_secret}")  # a new bob does not bring the old key back
    assert access.list_keys(users.get("bob")) == []
    with pytest.raises(NotAuthorized):
        access.caller(None)
    with pytest.raises(NotAuthorized, match="not valid.*Make a new key in the page"):
        access.caller("Bearer sk-local-abcd-" + "x" * 40)
    assert json.loads((tmp_path / "api-keys.json").read_text())["version"] == 1
