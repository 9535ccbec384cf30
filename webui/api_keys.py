"""API keys: several per user, stored only as SHA-256 hashes in one JSON file, revocable one by one.

A key is 32 random bytes (``secrets.token_urlsafe``), so it cannot be guessed and a plain SHA-256
is enough to store it: argon2's slowness protects low-entropy passwords, and would cost every API
call ~90 ms here for nothing. The key itself is shown once, when made, and never written anywhere.

A key belongs to its user's id (``owner_id``), not their name: a user added later under a removed
user's name gets a new id, so the removed user's keys never act as them. Keys written before ids
existed name only the user, whose id became that name when users.json was migrated.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from webui.errors import UserError
from webui.quarantine import SetAside, keep_aside

KEY_PREFIX = "sk-local-"
_FILE_VERSION = 1


class ApiKeyError(UserError):
    """A key request that cannot be done; the message is one sentence for the user."""


class ApiKeysFileError(ApiKeyError):
    """The keys file exists but cannot be read as ours; it is left untouched."""


class UnknownApiKey(ApiKeyError):
    """No key with that id belongs to that user."""


class KeyOwner(Protocol):
    """Whom keys belong to (a webui.auth.User): the id owns them, the name is shown."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never the key itself, only its id (the first characters after the prefix)."""

    id: str
    user: str  # the owner's name, as shown
    label: str
    created_at: str
    owner_id: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _owner_id(record: dict[str, Any]) -> str:
    # A key made before ids existed names its user, whose id became that name (webui.auth).
    return str(record.get("owner_id") or record["user"])


class ApiKeyStore:
    """The keys file (``Settings.api_keys_file``, mode 0600), re-read when it changes on disk.

    Re-reading lets ``launcher.py users api-key`` add or revoke keys while the server runs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._cached: tuple[tuple[int, int], list[dict[str, Any]]] | None = None
        self.set_aside: builtins.list[SetAside] = []  # damaged files this store kept aside, to report

    def create(self, owner: KeyOwner, label: str = "") -> tuple[ApiKey, str]:
        """A new key for ``owner``: its listing entry and the key itself (shown once)."""
        key_id = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        record = {"id": key_id, "owner_id": owner.id, "user": owner.name, "label": label.strip()[:80],
                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sha256": _digest(secret)}
        with self._guard:
            records = self._load()
            records.append(record)
            self._save(records)
        return self._to_key(record), secret

    def list(self, owner: KeyOwner | None = None) -> builtins.list[ApiKey]:
        """Keys of ``owner`` (or of everyone), oldest first."""
        with self._guard:
            records = self._load()
        return [self._to_key(r) for r in records if owner is None or _owner_id(r) == owner.id]

    def revoke(self, owner: KeyOwner, key_id: str) -> ApiKey:
        """Revoke one key of ``owner``; works at once, also for a server already running."""
        with self._guard:
            records = self._load()
            found = next((r for r in records if _owner_id(r) == owner.id and r["id"] == key_id.strip()), None)
            if found is None:
                raise UnknownApiKey(f"{owner.name} has no API key with id {key_id!r}.")
            self._save([r for r in records if r is not found])
        return self._to_key(found)

    def revoke_all(self, owner_id: str) -> int:
        """Revoke every key of the user with ``owner_id`` (removed, or given a new password); how many."""
        with self._guard:
            records = self._load()
            kept = [r for r in records if _owner_id(r) != owner_id]
            if len(kept) != len(records):
                self._save(kept)
        return len(records) - len(kept)

    def owner_of(self, secret: str) -> str | None:
        """The id of the user a presented key belongs to, or None for an unknown or revoked key."""
        if not secret.startswith(KEY_PREFIX):
            return None
        digest = _digest(secret)
        with self._guard:
            records = self._load()
        for record in records:
            if hmac.compare_digest(record["sha256"], digest):
                return _owner_id(record)
        return None

    @staticmethod
    def _to_key(record: dict[str, Any]) -> ApiKey:
        return ApiKey(id=record["id"], user=record["user"], label=record.get("label", ""),
                      created_at=record.get("created_at", ""), owner_id=_owner_id(record))

    def _load(self) -> builtins.list[dict[str, Any]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached is not None and self._cached[0] == stamp:
            return list(self._cached[1])
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:  # unreadable, not damaged: left where it is
            raise ApiKeysFileError(f"The API keys file {self.path} cannot be read ({exc}); fix or move it.") from exc
        try:
            data = json.loads(text)
            records = data["keys"]
            if not isinstance(records, builtins.list) or not all(
                isinstance(r, dict) and {"id", "user", "sha256"} <= r.keys() for r in records
            ):
                raise ValueError("unexpected layout")
        except (ValueError, KeyError, TypeError) as exc:
            # Kept aside, not overwritten by the next new key; meanwhile no key is accepted (fails closed).
            kept = keep_aside(self.path, f"{type(exc).__name__}: {exc}",
                              if_unchanged=(stat.st_ino, stat.st_mtime_ns, stat.st_size))
            self.set_aside += [kept] if kept else []
            return []
        self._cached = (stamp, records)
        return list(records)

    def _save(self, records: builtins.list[dict[str, Any]]) -> None:
        """Write atomically (temp file, then rename) with mode 0600: a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".api-keys-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": _FILE_VERSION, "keys": records}, handle, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cached = None


# -- the command line: launcher.py users api-key NAME [--label TEXT | --list | --revoke ID | --revoke-all] ----


def add_api_key_command(commands: Any, *parents: Any) -> None:
    """Register ``api-key`` among the ``users`` subcommands (``commands`` is their subparsers object)."""
    command = commands.add_parser("api-key", parents=list(parents),
                                  help="make (default), list or revoke a user's API keys")
    command.add_argument("name")
    action = command.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the user's keys (ids and labels)")
    action.add_argument("--revoke", metavar="ID", help="revoke the key with this id")
    action.add_argument("--revoke-all", action="store_true", help="revoke all of the user's keys")
    command.add_argument("--label", default="", help="what the new key is for")


def run_api_key_command(args: Any, store: ApiKeyStore, *, owner: KeyOwner, stdout: Any, stderr: Any) -> int:
    """Run ``users api-key`` for an existing user; a new key alone goes to stdout (for scripts).

    The caller reports files ``store`` kept aside.
    """
    try:
        if args.list:
            keys = store.list(owner)
            if not keys:
                print(f"{owner.name} has no API keys.", file=stdout)
            for key in keys:
                print(f"{key.id}  {key.created_at}  {key.label}", file=stdout)
        elif args.revoke:
            key = store.revoke(owner, args.revoke)
            print(f"Revoked API key {key.id} of {owner.name}.", file=stdout)
        elif args.revoke_all:
            print(f"Revoked {store.revoke_all(owner.id)} API keys of {owner.name}.", file=stdout)
        else:
            key, secret = store.create(owner, args.label)
            print(f"New API key {key.id} for {owner.name} (shown only now; revoke with --revoke {key.id}):",
                  file=stderr)
            print(secret, file=stdout)
    except ApiKeyError as error:
        print(f"users api-key: error: {error}", file=stderr)
        return 1
    return 0
