"""Users with argon2 password hashes in one JSON file; the login check; the ``users`` command.

The file (``Settings.users_file``, mode 0600) holds no plaintext, only argon2id hashes with their
salts and parameters. It is re-read whenever it changed on disk, so users added, removed or given a
new password with the ``users`` command while the server runs take effect at once (each user's
credential stamp changes with the password, which signs out their sessions); it is rewritten
atomically so a crash never leaves half a file.

Each user has a random id, made at ``users add``, that owns their data and API keys: a user added
later under a removed user's name gets a new id, so starts with nothing of theirs. Users from before
ids existed get their name as id (written back once), which is what owned their data until then.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import getpass as getpass_module
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from webui.api_keys import ApiKeyError, ApiKeyStore, add_api_key_command, run_api_key_command
from webui.config import DEFAULT_DATA_DIR
from webui.errors import UserError
from webui.quarantine import SetAside, keep_aside

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
_FILE_VERSION = 1
# ASCII only: names end up in logs, history rows and possibly folder names, where look-alike
# Unicode letters would let two different users appear to be the same person.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class User:
    """A user as the rest of the app sees one: never the hash.

    ``id`` owns the user's data (chats, collections, presets, API keys); ``name`` is what people type
    and see. Without an id (the single-user app's local user) the name is the id.
    """

    name: str
    is_admin: bool
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.name)


class AuthError(UserError):
    """Base class for user-management errors; the message is meant for the person typing."""


class UserExists(AuthError):
    """A user of that name is already in the users file."""


class UnknownUser(AuthError):
    """No user of that name is in the users file."""


class InvalidUserName(AuthError):
    """The name is empty, too long, or holds other than letters, digits, '.', '_', '-'."""


class InvalidPassword(AuthError):
    """The password is too short to be worth hashing."""


class UsersFileError(AuthError):
    """The users file exists but is not a readable users file (corrupt, hand-edited, wrong type)."""


class ApiKeysNotRevoked(AuthError):
    """A new password was refused because the user's API keys could not be revoked with it."""


def validate_user_name(name: str) -> str:
    """Return *name* unchanged when it is a valid user name, else raise :class:`InvalidUserName`."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
        raise InvalidUserName(
            f"invalid user name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' "
            "(and not only dots)"
        )
    return name


def validate_password(password: str) -> str:
    """Return *password* when it is long enough, else raise :class:`InvalidPassword`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        what = "empty" if not password else f"only {len(password)} characters long"
        raise InvalidPassword(
            f"the password is {what}: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    return password


class UserStore:
    """The users file: add, remove, list, change passwords and check logins.

    A lock serialises this process's read-modify-write cycles (Gradio calls :meth:`verify` from
    worker threads, and a rehash writes). The ``users`` command in another process may write at
    the same moment; the atomic rename keeps the file whole either way.
    """

    def __init__(self, users_file: Path, *, hasher: PasswordHasher | None = None) -> None:
        self.users_file = Path(users_file)
        # argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id, 64 MiB, t=3).
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        # The last parse of the file and the (inode, mtime, size) it came from: the session check
        # reads the users on every request, and an unchanged file need not be parsed again.
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None
        self.set_aside: builtins.list[SetAside] = []  # damaged files this store kept aside, to report

    # -- public API -------------------------------------------------------------------------

    def add(self, name: str, password: str, *, admin: bool = False) -> User:
        """Create a user; raises :class:`UserExists` if the name is taken."""
        validate_user_name(name)
        validate_password(password)
        password_hash = self.hasher.hash(password)
        with self._lock:
            users = self._load()
            if name in users:
                raise UserExists(f"user {name!r} already exists")
            user_id = _new_user_id({record["id"] for record in users.values()})
            users[name] = {
                "id": user_id,
                "hash": password_hash,
                "stamp": secrets.token_hex(8),
                "admin": bool(admin),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            self._save(users)
        return User(name=name, is_admin=bool(admin), id=user_id)

    def remove(self, name: str) -> User:
        """Delete a user and return them; raises :class:`UnknownUser` if there is none of that name.

        Their data stays on disk under their id, which no later user gets (see remove_user for keys).
        """
        with self._lock:
            users = self._load()
            if name not in users:
                raise UnknownUser(f"no user named {name!r}")
            removed = _to_user(name, users.pop(name))
            self._save(users)
        return removed

    def list(self) -> builtins.list[User]:  # builtins: `list` here names this method
        """All users, sorted by name."""
        users = self._load()
        return [_to_user(name, record) for name, record in sorted(users.items())]

    def get(self, name: str) -> User | None:
        """The user of that name, or None."""
        record = self._load().get(name)
        return None if record is None else _to_user(name, record)

    def get_by_id(self, user_id: str) -> User | None:
        """The user with that id, or None once they were removed (their API keys then stop working)."""
        return next((_to_user(name, record) for name, record in self._load().items() if record["id"] == user_id),
                    None)

    def exists(self) -> bool:
        """True when the users file exists and holds at least one user."""
        return bool(self._load())

    def set_password(self, name: str, password: str) -> User:
        """Replace a user's password; raises :class:`UnknownUser` if there is none of that name."""
        validate_password(password)
        password_hash = self.hasher.hash(password)
        with self._lock:
            users = self._load()
            if name not in users:
                raise UnknownUser(f"no user named {name!r}")
            users[name]["hash"] = password_hash
            users[name]["stamp"] = secrets.token_hex(8)  # signs out every session of the old password
            self._save(users)
            return _to_user(name, users[name])

    def verify(self, name: str, password: str) -> User | None:
        """The user when *password* is theirs, else None.

        An unknown name is checked against a dummy hash so that it costs as long as a wrong
        password: response time does not tell which names exist. A hash made with older
        parameters is replaced on success, the one moment the plaintext is at hand.
        """
        record = self._load().get(name) if isinstance(name, str) else None
        if record is None:
            self._verify_hash(self._dummy_hash, password)
            return None
        if not self._verify_hash(record["hash"], password):
            return None
        if self.hasher.check_needs_rehash(record["hash"]):
            self._rehash(name, old_hash=record["hash"], password=password)
        return _to_user(name, record)

    def check(self, name: str, password: str) -> bool:
        """True when the login is valid."""
        return self.verify(name, password) is not None

    def credential_stamp(self, name: str) -> str | None:
        """A value that changes whenever *name*'s password does; None when there is no such user.

        Sessions remember it at login and end when it changes or the user is removed.
        """
        record = self._load().get(name)
        if record is None:
            return None
        return str(record.get("stamp") or record["hash"])  # files written before stamps existed

    # -- internals --------------------------------------------------------------------------

    @cached_property
    def _dummy_hash(self) -> str:
        return self.hasher.hash(secrets.token_urlsafe(16))

    def _verify_hash(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except VerificationError:
            return False
        except InvalidHashError as error:
            raise UsersFileError(
                f"{self.users_file} holds a password hash that is not an argon2 hash; "
                "set a new password with 'users passwd NAME'"
            ) from error

    def _rehash(self, name: str, *, old_hash: str, password: str) -> None:
        new_hash = self.hasher.hash(password)
        with self._lock:
            users = self._load()
            # Someone may have changed the password since we read the file: keep theirs.
            if name in users and users[name]["hash"] == old_hash:
                users[name].setdefault("stamp", old_hash)  # a stronger hash is not a new password
                users[name]["hash"] = new_hash
                self._save(users)

    def _load(self) -> dict[str, dict[str, Any]]:
        """The users as ``{name: {"hash", "admin", ...}}``; an absent file means no users."""
        try:
            key = _file_key(self.users_file)
            cached = self._cache
            if cached is not None and cached[0] == key:
                return {name: dict(record) for name, record in cached[1].items()}
            text = self.users_file.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        except OSError as error:
            message = f"cannot read the users file {self.users_file}: {error}"
            raise UsersFileError(message) from error
        try:
            users, migrated = _parse_users(json.loads(text), self.users_file)
        except (json.JSONDecodeError, UsersFileError) as error:
            # Kept aside rather than overwritten by the next `users add`; with no users the app
            # signs nobody in (and a team-mode start says to add one), so nothing opens up.
            kept = keep_aside(self.users_file, str(error), if_unchanged=key)
            self.set_aside += [kept] if kept else []
            return {}
        if not (migrated and self._write_ids(users, migrated, read_from=key)):
            self._cache = (key, users)  # a new file written instead is read again next time
        return {name: dict(record) for name, record in users.items()}

    def _write_ids(self, users: dict[str, dict[str, Any]], migrated: builtins.list[str],
                   *, read_from: tuple[int, int, int]) -> bool:
        """Write back the ids given to users from before ids existed (each their name, so that the
        chats, collections, presets and keys they own by name stay theirs).

        Skipped when the file changed since it was read (the ``users`` command wrote it meanwhile;
        the next read migrates that version), and only logged when the folder is read-only: the ids
        are the same on every read until written. Returns whether the file was written.
        """
        try:
            written = self._save(users, if_unchanged=read_from)
        except OSError as error:
            log.warning("could not write user ids into %s (%s); using each user's name as their id",
                        self.users_file, error)
            return False
        if written:
            log.info("gave the users of %s ids (their names, so their data stays theirs): %s",
                     self.users_file, ", ".join(sorted(migrated)))
        return written

    def _save(self, users: Mapping[str, Mapping[str, Any]], *,
              if_unchanged: tuple[int, int, int] | None = None) -> bool:
        """Write the file atomically with mode 0600: a temp file in the same folder, then rename.

        With *if_unchanged*, the file is replaced only if its (inode, mtime, size) are still those;
        returns whether it was written.
        """
        self.users_file.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": _FILE_VERSION, "users": users}, indent=2, sort_keys=True)
        # mkstemp creates the file with mode 0600, so the hashes are never readable by others,
        # not even for the moment between writing and renaming.
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{self.users_file.name}.", suffix=".tmp", dir=self.users_file.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, 0o600)
            if if_unchanged is not None and _file_key(self.users_file) != if_unchanged:
                os.unlink(temp_name)
                return False
            os.replace(temp_name, self.users_file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return True


def _file_key(path: Path) -> tuple[int, int, int]:
    """(inode, mtime, size): changes whenever the file is rewritten, by this process or another."""
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _new_user_id(taken: set[str]) -> str:
    """A random id no user has: 128 bits, so never one a removed user had either."""
    while (user_id := secrets.token_hex(16)) in taken:
        pass
    return user_id


def _parse_users(data: object, path: Path) -> tuple[dict[str, dict[str, Any]], builtins.list[str]]:
    """The users, each with an id, and the names of those given one now (files from before ids).

    Checks the file's shape so a hand-edited file fails with a clear message, not a KeyError.
    """
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise UsersFileError(f"the users file {path} has no 'users' object; it is not a users file")
    users: dict[str, dict[str, Any]] = {}
    migrated: builtins.list[str] = []
    for name, record in data["users"].items():
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("hash"), str)
            or not isinstance(record.get("admin", False), bool)
            or not _is_valid_id(record.get("id", name))
        ):
            raise UsersFileError(f"the users file {path} has a malformed entry for {name!r}")
        users[name] = dict(record)
        if "id" not in record:
            users[name]["id"] = name  # what owned their data until now
            migrated.append(name)
    ids = [record["id"] for record in users.values()]
    if len(set(ids)) != len(ids):  # two users would share one owner's data
        raise UsersFileError(f"the users file {path} gives two users the same id")
    return users, migrated


def _is_valid_id(user_id: object) -> bool:
    # Ids name folders (private presets), so they follow the user-name rules.
    return isinstance(user_id, str) and bool(_NAME_PATTERN.fullmatch(user_id)) and set(user_id) != {"."}


def _to_user(name: str, record: Mapping[str, Any]) -> User:
    return User(name=name, is_admin=bool(record.get("admin", False)), id=record["id"])


# -- a user together with their API keys -------------------------------------------------------


def remove_user(users: UserStore, keys: ApiKeyStore, name: str) -> tuple[User, int | None]:
    """Remove *name* and revoke (delete) every API key of theirs: the removed user and how many keys
    went, None when the keys file could not be changed (logged).

    The user goes first: a key whose owner id no longer exists is refused even while the file lists it.
    """
    removed = users.remove(name)
    try:
        return removed, keys.revoke_all(removed.id)
    except (ApiKeyError, OSError) as error:
        log.warning("removed user %s, but could not delete their API keys from %s: %s (the keys are refused, "
                    "since their user is gone)", name, keys.path, error)
        return removed, None


def change_password(
    users: UserStore, keys: ApiKeyStore, name: str, password: str, *, keep_api_keys: bool = False
) -> int:
    """Give *name* a new password and, unless *keep_api_keys*, revoke their API keys; how many went.

    A password is changed when it may have leaked, and keys made with it would outlive it. The keys go
    first, so a failure leaves the old password and no keys rather than a new password and old keys.
    """
    validate_password(password)
    user = users.get(name)
    if user is None:
        raise UnknownUser(f"no user named {name!r}")
    try:
        revoked = 0 if keep_api_keys else keys.revoke_all(user.id)
    except (ApiKeyError, OSError) as error:
        raise ApiKeysNotRevoked(f"the password of {name!r} was not changed: their API keys could not be "
                                f"revoked ({error})") from error
    users.set_password(name, password)
    return revoked


def revoked_keys_phrase(count: int | None) -> str:
    """How a user change reports the keys it revoked, for the command line and the Users tab."""
    if count is None:
        return "their API keys could not be deleted (see the log), but they no longer work"
    return f"revoked their {count} API key{'' if count == 1 else 's'}"


# -- the `users` command ----------------------------------------------------------------------


class _PasswordsDiffer(AuthError):
    """The two typed passwords were not the same."""


def _build_parser() -> argparse.ArgumentParser:
    # --data-dir is accepted before or after the sub-command; SUPPRESS keeps a sub-command's
    # absent flag from overwriting one given before it.
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="folder holding users.json (default: $WEBUI_DATA_DIR or the checkout's data/)",
    )
    parser = argparse.ArgumentParser(
        prog="users", description="Manage who may log in to the web UI.", parents=[data_dir]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = commands.add_parser("add", parents=[data_dir], help="add a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="let the user manage models and users")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    remove = commands.add_parser("remove", parents=[data_dir], help="remove a user and revoke their API keys")
    remove.add_argument("name")

    commands.add_parser("list", parents=[data_dir], help="list users")

    passwd = commands.add_parser(
        "passwd", parents=[data_dir], help="change a user's password (and revoke their API keys)"
    )
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd.add_argument(
        "--keep-api-keys", action="store_true",
        help="keep the user's API keys working (by default a new password revokes them)",
    )
    add_api_key_command(commands, data_dir)
    return parser


def _read_password(
    args: argparse.Namespace, stdin: TextIO, getpass: Callable[[str], str], name: str
) -> str:
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass(f"Password for {name}: ")
    second = getpass("Repeat the password: ")
    if first != second:
        raise _PasswordsDiffer("the two passwords differ; nothing was changed")
    return first


def run_users_command(
    argv: list[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    getpass: Callable[[str], str] = getpass_module.getpass,
    environ: Mapping[str, str] | None = None,
    hasher: PasswordHasher | None = None,
) -> int:
    """Run ``users add|remove|list|passwd`` (*argv* without ``users``); return the exit status.

    Streams default to the process's own at call time; tests pass their own, and a cheap *hasher*.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    environ = os.environ if environ is None else environ
    parser = _build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 2

    data_dir = Path(getattr(args, "data_dir", None) or environ.get("WEBUI_DATA_DIR") or DEFAULT_DATA_DIR)
    store = UserStore(data_dir / "users.json", hasher=hasher)
    keys = ApiKeyStore(data_dir / "api-keys.json")
    try:
        if args.command == "add":
            validate_user_name(args.name)
            if store.get(args.name) is not None:  # before asking for a password in vain
                raise UserExists(f"user {args.name!r} already exists")
            user = store.add(
                args.name, _read_password(args, stdin, getpass, args.name), admin=args.admin
            )
            role = "admin" if user.is_admin else "user"
            print(f"Added {role} {user.name} to {store.users_file}", file=stdout)
        elif args.command == "remove":
            _, revoked = remove_user(store, keys, args.name)
            print(f"Removed user {args.name} and {revoked_keys_phrase(revoked)}", file=stdout)
        elif args.command == "list":
            users = store.list()
            if not users:
                print(f"No users in {store.users_file}", file=stdout)
            for user in users:
                print(f"{user.name}{'  (admin)' if user.is_admin else ''}", file=stdout)
        elif args.command == "passwd":
            if store.get(args.name) is None:
                raise UnknownUser(f"no user named {args.name!r}")
            password = _read_password(args, stdin, getpass, args.name)
            revoked = change_password(store, keys, args.name, password, keep_api_keys=args.keep_api_keys)
            keys_note = (f"; their API keys still work (revoke them with: users api-key {args.name} "
                         "--revoke-all)" if args.keep_api_keys else f" and {revoked_keys_phrase(revoked)}")
            print(f"Changed the password of {args.name}{keys_note}", file=stdout)
        elif args.command == "api-key":
            user = store.get(args.name)
            if user is None:
                raise UnknownUser(f"no user named {args.name!r}")
            return run_api_key_command(args, keys, owner=user, stdout=stdout, stderr=stderr)
    except AuthError as error:
        print(f"users {args.command}: error: {error}", file=stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print(f"users {args.command}: cancelled; nothing was changed", file=stderr)
        return 130
    finally:
        for kept in [*store.set_aside, *keys.set_aside]:
            print(f"users {args.command}: warning: {kept.message()}", file=stderr)
    return 0


if __name__ == "__main__":  # python -m webui.auth add NAME ... (the same as the app's `users`)
    sys.exit(run_users_command(sys.argv[1:]))
