"""Users file: hashing, login checks, file safety and the ``users`` command."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from webui.api_keys import ApiKeyStore
from webui.auth import (
    InvalidPassword,
    InvalidUserName,
    UnknownUser,
    User,
    UserExists,
    UsersFileError,
    UserStore,
    run_users_command,
)
from webui.quarantine import set_aside_files

PASSWORD = "correct horse battery"
# argon2's test-only parameters: the same code path, microseconds instead of ~0.2 s per hash.
CHEAP = PasswordHasher.from_parameters(CHEAPEST)


@pytest.fixture()
def cheap_hasher() -> PasswordHasher:
    return CHEAP


@pytest.fixture()
def store(data_dir: Path, cheap_hasher: PasswordHasher) -> UserStore:
    return UserStore(data_dir / "users.json", hasher=cheap_hasher)


def test_add_verify_list_passwd_remove_round_trip(store: UserStore) -> None:
    assert not store.exists()
    alice = store.add("alice", PASSWORD, admin=True)
    assert (alice.name, alice.is_admin) == ("alice", True)
    bob = store.add("bob", "bobs password")

    assert store.exists()
    assert store.list() == [alice, bob] == [User("alice", True, alice.id), User("bob", False, bob.id)]
    assert store.get("bob") == bob and store.get_by_id(bob.id) == bob
    assert store.get("carol") is None
    assert store.verify("alice", PASSWORD) == alice
    assert store.check("bob", "bobs password") is True

    assert store.set_password("bob", "a new password") == bob
    assert store.verify("bob", "bobs password") is None
    assert store.verify("bob", "a new password") == bob

    assert store.remove("bob") == bob
    assert store.list() == [alice]
    assert store.verify("bob", "a new password") is None
    assert store.get_by_id(bob.id) is None


def test_every_user_gets_a_random_id_and_a_reused_name_a_new_one(store: UserStore) -> None:
    """The id owns the user's data: a new person given a removed user's name must not inherit it."""
    bob = store.add("bob", PASSWORD)
    alice = store.add("alice", PASSWORD)
    assert len({bob.id, alice.id}) == 2 and len(bob.id) == 32 and bob.id not in ("bob", "alice")
    assert json.loads(store.users_file.read_text())["users"]["bob"]["id"] == bob.id
    store.remove("bob")
    new_bob = store.add("bob", PASSWORD)
    assert new_bob.name == "bob" and new_bob.id != bob.id
    assert store.get_by_id(bob.id) is None and store.get_by_id(new_bob.id) == new_bob


def test_users_from_before_ids_keep_their_name_as_id_written_back(store: UserStore) -> None:
    """Their chats, collections, presets and keys are owned by their name: the migration keeps them theirs."""
    store.add("alice", PASSWORD, admin=True)
    data = json.loads(store.users_file.read_text())
    for record in data["users"].values():
        del record["id"]
    data["users"]["bob"] = {**data["users"]["alice"], "admin": False}
    store.users_file.write_text(json.dumps(data))
    legacy = store.users_file.read_text()

    reader = UserStore(store.users_file, hasher=CHEAP)  # e.g. the server starting on the old file
    assert reader.list() == [User("alice", True, "alice"), User("bob", False, "bob")]
    written = json.loads(store.users_file.read_text())["users"]
    assert {name: r["id"] for name, r in written.items()} == {"alice": "alice", "bob": "bob"}
    assert {name: {k: v for k, v in r.items() if k != "id"} for name, r in written.items()} == \
        json.loads(legacy)["users"], "nothing else changed"
    assert stat.S_IMODE(store.users_file.stat().st_mode) == 0o600 and not set_aside_files(store.users_file.parent)

    reader.remove("bob")
    assert reader.add("bob", PASSWORD).id not in ("bob", "alice"), "a later bob does not get the old bob's data"


def test_a_data_dir_that_cannot_be_written_still_migrates_in_memory(
    store: UserStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.users_file.write_text(json.dumps({"users": {"alice": {"hash": CHEAP.hash(PASSWORD), "admin": True}}}))
    before = store.users_file.read_text()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)  # a read-only folder, even for root
    reader = UserStore(store.users_file, hasher=CHEAP)
    assert reader.verify("alice", PASSWORD) == User("alice", True, "alice")
    assert reader.get_by_id("alice") is not None
    assert store.users_file.read_text() == before
    assert "could not write user ids" in caplog.text and caplog.text.count("could not write") == 1, \
        "tried once, not on every request"


@pytest.mark.parametrize("users", [
    {"alice": {"hash": "x", "id": "same"}, "bob": {"hash": "y", "id": "same"}},
    {"alice": {"hash": "x"}, "bob": {"hash": "y", "id": "alice"}},
    {"alice": {"hash": "x", "id": "../etc"}},
    {"alice": {"hash": "x", "id": 7}},
])
def test_a_users_file_with_shared_or_unsafe_ids_is_kept_aside(store: UserStore, users: dict) -> None:
    store.users_file.write_text(json.dumps({"users": users}))
    assert store.list() == [] and store.get_by_id("same") is None
    [kept] = set_aside_files(store.users_file.parent)
    assert kept.name.startswith("users.json.corrupt-")


def test_wrong_password_and_unknown_user_give_none(store: UserStore) -> None:
    store.add("alice", PASSWORD)
    assert store.verify("alice", PASSWORD + "!") is None
    assert store.verify("alice", "") is None
    assert store.verify("Alice", PASSWORD) is None  # names are case-sensitive
    assert store.verify("mallory", PASSWORD) is None
    assert store.check("mallory", PASSWORD) is False


def test_unknown_user_still_costs_a_hash(data_dir: Path) -> None:
    """Without a dummy hash, an unknown name would answer at once and reveal who exists."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
            calls.append(hash)
            return super().verify(hash, password)

    store = UserStore(data_dir / "users.json", hasher=CountingHasher.from_parameters(CHEAPEST))
    store.add("alice", PASSWORD)
    assert store.verify("nobody", PASSWORD) is None
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_file_holds_argon2_hashes_no_plaintext_and_is_private(store: UserStore) -> None:
    store.add("alice", PASSWORD, admin=True)
    text = store.users_file.read_text(encoding="utf-8")
    assert PASSWORD not in text
    record = json.loads(text)["users"]["alice"]
    assert record["hash"].startswith("$argon2id$")
    assert record["admin"] is True
    if os.name == "posix":
        assert stat.S_IMODE(store.users_file.stat().st_mode) == 0o600
    # the atomic write leaves no temp file behind
    assert [p.name for p in store.users_file.parent.iterdir()] == ["users.json"]


def test_default_hasher_uses_rfc_9106_parameters(data_dir: Path) -> None:
    """The production path: one real argon2id hash with 64 MiB memory cost."""
    store = UserStore(data_dir / "users.json")
    store.add("alice", PASSWORD)
    stored = json.loads(store.users_file.read_text())["users"]["alice"]["hash"]
    assert stored.startswith(f"$argon2id$v=19$m={RFC_9106_LOW_MEMORY.memory_cost},t=3,p=4$")
    assert store.verify("alice", PASSWORD) == store.get("alice")


def test_login_rehashes_a_hash_made_with_older_parameters(
    data_dir: Path, cheap_hasher: PasswordHasher
) -> None:
    path = data_dir / "users.json"
    UserStore(path, hasher=cheap_hasher).add("alice", PASSWORD)
    old_hash = json.loads(path.read_text())["users"]["alice"]["hash"]

    stronger = PasswordHasher(time_cost=2, memory_cost=64, parallelism=1)
    upgraded = UserStore(path, hasher=stronger)
    assert upgraded.verify("alice", "wrong password") is None
    assert json.loads(path.read_text())["users"]["alice"]["hash"] == old_hash  # not on failure

    alice = upgraded.get("alice")
    assert upgraded.verify("alice", PASSWORD) == alice
    new_hash = json.loads(path.read_text())["users"]["alice"]["hash"]
    assert new_hash != old_hash and not stronger.check_needs_rehash(new_hash)
    assert upgraded.verify("alice", PASSWORD) == alice


def test_duplicate_user_is_refused(store: UserStore) -> None:
    store.add("alice", PASSWORD)
    with pytest.raises(UserExists, match="'alice' already exists"):
        store.add("alice", "another password")
    assert store.verify("alice", PASSWORD) is not None


@pytest.mark.parametrize("name", ["", "a" * 65, "al ice", "alice/../x", "..", ".", "émile", "a:b"])
def test_bad_names_are_refused(store: UserStore, name: str) -> None:
    with pytest.raises(InvalidUserName, match="letters, digits"):
        store.add(name, PASSWORD)
    assert not store.exists()


@pytest.mark.parametrize("name", ["a", "a" * 64, "Alice.Smith-2_x", "..a"])
def test_good_names_are_accepted(store: UserStore, name: str) -> None:
    assert store.add(name, PASSWORD).name == name


@pytest.mark.parametrize(("password", "why"), [("", "empty"), ("seven!!", "only 7 characters")])
def test_short_passwords_are_refused(store: UserStore, password: str, why: str) -> None:
    with pytest.raises(InvalidPassword, match=f"{why}.*at least 8 characters"):
        store.add("alice", password)
    store.add("alice", PASSWORD)
    with pytest.raises(InvalidPassword):
        store.set_password("alice", password)
    assert store.verify("alice", PASSWORD) is not None


def test_unknown_user_errors(store: UserStore) -> None:
    with pytest.raises(UnknownUser, match="no user named 'ghost'"):
        store.remove("ghost")
    with pytest.raises(UnknownUser):
        store.set_password("ghost", PASSWORD)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"users": {"alice": {"admin": true}}}',
        '{"users": {"alice": "hunter2"}}',
        "\udcff\x00 binary",
    ],
)
def test_corrupt_users_file_is_kept_aside_and_nobody_signs_in(store: UserStore, content: str) -> None:
    store.users_file.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert store.verify("alice", PASSWORD) is None  # no users: fails closed, never open
    assert not store.exists()
    [kept] = set_aside_files(store.users_file.parent)
    assert kept.name.startswith("users.json.corrupt-")
    assert kept.read_bytes() == content.encode("utf-8", "surrogateescape")  # never overwritten
    store.add("bob", PASSWORD, admin=True)  # the store works again, in a new file
    assert store.check("bob", PASSWORD)
    assert [u.name for u in UserStore(store.users_file, hasher=store.hasher).list()] == ["bob"]


def test_hash_that_is_not_argon2_gives_a_clear_error(store: UserStore) -> None:
    store.users_file.write_text('{"users": {"alice": {"hash": "plaintext!", "admin": false}}}')
    with pytest.raises(UsersFileError, match="not an argon2 hash"):
        store.verify("alice", "plaintext!")


# -- the `users` command ----------------------------------------------------------------------


class FakeGetpass:
    """Answers prompts from a list, recording them, as a person at the terminal would."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def run(argv: list[str], *, stdin: str = "", getpass=None, environ=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_users_command(
        argv,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        getpass=getpass or FakeGetpass(),
        environ=environ or {},
        hasher=CHEAP,
    )
    return code, out.getvalue(), err.getvalue()


def test_users_command_end_to_end_with_password_stdin(data_dir: Path) -> None:
    d = str(data_dir)
    argv = ["add", "alice", "--admin", "--password-stdin", "--data-dir", d]
    code, out, err = run(argv, stdin=PASSWORD + "\n")
    assert (code, err) == (0, "")
    assert "Added admin alice" in out

    argv = ["--data-dir", d, "add", "bob", "--password-stdin"]
    code, out, _ = run(argv, stdin="bobs password\r\n")
    assert code == 0

    code, out, _ = run(["list", "--data-dir", d])
    assert (code, out.splitlines()) == (0, ["alice  (admin)", "bob"])

    argv = ["passwd", "bob", "--password-stdin", "--data-dir", d]
    code, out, _ = run(argv, stdin="new password 1\n")
    assert code == 0 and "Changed the password of bob" in out

    store = UserStore(data_dir / "users.json", hasher=CHEAP)
    assert store.verify("bob", "new password 1") == store.get("bob")
    assert store.verify("alice", PASSWORD) == store.get("alice")

    code, out, _ = run(["remove", "bob", "--data-dir", d])
    assert code == 0 and "Removed user bob" in out
    assert [u.name for u in store.list()] == ["alice"]


def test_users_command_prompts_twice_with_getpass(data_dir: Path) -> None:
    getpass = FakeGetpass(PASSWORD, PASSWORD)
    code, _, err = run(["add", "carol"], getpass=getpass, environ={"WEBUI_DATA_DIR": str(data_dir)})
    assert (code, err) == (0, "")
    assert len(getpass.prompts) == 2 and "carol" in getpass.prompts[0]
    assert UserStore(data_dir / "users.json", hasher=CHEAP).verify("carol", PASSWORD) is not None

    mismatch = FakeGetpass("first password", "second password")
    code, _, err = run(["passwd", "carol", "--data-dir", str(data_dir)], getpass=mismatch)
    assert code == 1 and "passwords differ" in err
    assert UserStore(data_dir / "users.json", hasher=CHEAP).verify("carol", PASSWORD) is not None


def test_users_command_errors_are_clear_and_non_zero(data_dir: Path) -> None:
    d = str(data_dir)
    assert run(["add", "alice", "--password-stdin", "--data-dir", d], stdin=PASSWORD)[0] == 0

    code, _, err = run(["add", "alice", "--password-stdin", "--data-dir", d], stdin=PASSWORD)
    assert code == 1 and "users add: error: user 'alice' already exists" in err

    code, _, err = run(["add", "bad name", "--password-stdin", "--data-dir", d], stdin=PASSWORD)
    assert code == 1 and "invalid user name" in err

    code, _, err = run(["add", "dave", "--password-stdin", "--data-dir", d], stdin="short\n")
    assert code == 1 and "at least 8 characters" in err

    code, _, err = run(["remove", "ghost", "--data-dir", d])
    assert code == 1 and "no user named 'ghost'" in err

    # passwd on an unknown user fails before asking for a password
    getpass = FakeGetpass()
    code, _, err = run(["passwd", "ghost", "--data-dir", d], getpass=getpass)
    assert code == 1 and "no user named 'ghost'" in err and getpass.prompts == []

    code, _, err = run(["frobnicate"])
    assert code == 2 and "invalid choice" in err
    code, _, err = run([])
    assert code == 2 and "required" in err

    code, out, _ = run(["--help"])
    assert code == 0 and "add" in out and "passwd" in out


def test_users_command_reports_a_corrupt_file(data_dir: Path) -> None:
    (data_dir / "users.json").write_text("{oops")
    code, out, err = run(["list", "--data-dir", str(data_dir)])
    assert code == 0 and "No users" in out
    assert "users.json could not be read" in err and "kept as users.json.corrupt-" in err
    assert [p.read_text() for p in set_aside_files(data_dir)] == ["{oops"]


def test_users_command_creates_a_missing_data_dir(tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "data"
    argv = ["add", "alice", "--password-stdin", "--data-dir", str(target)]
    code, _, _ = run(argv, stdin=PASSWORD)
    assert code == 0 and (target / "users.json").is_file()
    code, out, _ = run(["list", "--data-dir", str(tmp_path / "empty")])
    assert code == 0 and "No users" in out


def test_users_command_defaults_to_real_streams(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streams are looked up at call time, so pytest's capture (or a redirect) is honoured."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    monkeypatch.setenv("WEBUI_DATA_DIR", str(data_dir))
    assert run_users_command(["add", "alice", "--password-stdin"], hasher=CHEAP) == 0
    assert run_users_command(["remove", "zed"]) == 1
    captured = capsys.readouterr()
    assert "Added user alice" in captured.out
    assert "no user named 'zed'" in captured.err


def test_credential_stamp_changes_with_the_password_and_ends_with_the_user(store: UserStore) -> None:
    store.add("alice", PASSWORD)
    first = store.credential_stamp("alice")
    assert first and store.credential_stamp("alice") == first, "a stamp is stable while nothing changes"
    store.set_password("alice", "another password")
    assert store.credential_stamp("alice") not in (None, first)
    store.remove("alice")
    assert store.credential_stamp("alice") is None


def test_a_change_made_by_another_process_is_seen_at_once(store: UserStore, data_dir: Path) -> None:
    """The server's store caches the parsed file; the ``users`` command writes it from elsewhere."""
    store.add("alice", PASSWORD)
    before = store.credential_stamp("alice")
    other = UserStore(data_dir / "users.json", hasher=CHEAP)  # another process's view of the file
    other.set_password("alice", "another password")
    assert store.credential_stamp("alice") != before
    other.remove("alice")
    assert store.credential_stamp("alice") is None and store.get("alice") is None


def test_a_stronger_rehash_keeps_the_stamp(data_dir: Path) -> None:
    old = UserStore(data_dir / "users.json", hasher=CHEAP)
    old.add("alice", PASSWORD)
    stamp = old.credential_stamp("alice")
    stronger = UserStore(data_dir / "users.json", hasher=PasswordHasher(time_cost=2, memory_cost=1024))
    assert stronger.verify("alice", PASSWORD) is not None
    assert json.loads((data_dir / "users.json").read_text())["users"]["alice"]["hash"].startswith("$argon2id$")
    assert stronger.credential_stamp("alice") == stamp


def test_files_written_before_stamps_use_the_hash(store: UserStore, data_dir: Path) -> None:
    store.add("alice", PASSWORD)
    path = data_dir / "users.json"
    data = json.loads(path.read_text())
    del data["users"]["alice"]["stamp"]
    path.write_text(json.dumps(data))
    assert store.credential_stamp("alice") == data["users"]["alice"]["hash"]


def test_users_command_revokes_api_keys_on_remove_and_passwd_unless_kept(data_dir: Path) -> None:
    d = str(data_dir)
    for name in ("alice", "bob"):
        assert run(["add", name, "--password-stdin", "--data-dir", d], stdin=PASSWORD)[0] == 0
    keys = ApiKeyStore(data_dir / "api-keys.json")
    alice, bob = (UserStore(data_dir / "users.json", hasher=CHEAP).get(n) for n in ("alice", "bob"))
    bob_keys = [keys.create(bob, label)[1] for label in ("editor", "script")]
    alice_key = keys.create(alice)[1]

    code, out, err = run(["passwd", "bob", "--keep-api-keys", "--password-stdin", "--data-dir", d],
                         stdin="new password 1")
    assert (code, err) == (0, "") and "their API keys still work" in out
    assert [keys.owner_of(k) for k in bob_keys] == [bob.id, bob.id]

    code, out, _ = run(["passwd", "bob", "--password-stdin", "--data-dir", d], stdin="new password 2")
    assert code == 0 and "Changed the password of bob and revoked their 2 API keys" in out
    assert [keys.owner_of(k) for k in bob_keys] == [None, None]

    bob_keys = [keys.create(bob)[1]]
    code, out, _ = run(["remove", "bob", "--data-dir", d])
    assert code == 0 and "Removed user bob and revoked their 1 API key" in out
    assert keys.owner_of(bob_keys[0]) is None and keys.list(bob) == []
    assert keys.owner_of(alice_key) == alice.id, "other users' keys stay"

    assert run(["add", "bob", "--password-stdin", "--data-dir", d], stdin=PASSWORD)[0] == 0
    code, out, _ = run(["api-key", "bob", "--list", "--data-dir", d])
    assert (code, out) == (0, "bob has no API keys.\n"), "a new bob starts without the old bob's keys"


def test_passwd_keeps_the_old_password_when_the_keys_cannot_be_revoked(data_dir: Path) -> None:
    d = str(data_dir)
    assert run(["add", "bob", "--password-stdin", "--data-dir", d], stdin=PASSWORD)[0] == 0
    (data_dir / "api-keys.json").mkdir()  # unreadable as a file: the keys cannot be revoked
    code, _, err = run(["passwd", "bob", "--password-stdin", "--data-dir", d], stdin="new password 1")
    assert code == 1 and "users passwd: error: the password of 'bob' was not changed" in err
    assert UserStore(data_dir / "users.json", hasher=CHEAP).check("bob", PASSWORD)
