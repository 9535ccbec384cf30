"""A fake Services for the page's handlers: the users and answers a test sets, and the calls it saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webui.services import NotAuthorized
from webui.services.types import User


@dataclass
class FakeKey:
    id: str
    user: str
    label: str
    created_at: str = "2026-12-07T08:00:00"


@dataclass
class FakeApiAccess:
    """The API-key part of Services: keys kept in a list, refusals as the real one words them."""

    keys: list[FakeKey] = field(default_factory=list)

    def list_keys(self, user: User, owner: str | None = None) -> list[FakeKey]:
        who = self._target(user, owner)
        return [k for k in self.keys if k.user == who]

    def keys_shown_to(self, user: User) -> list[FakeKey]:
        return list(self.keys) if user.is_admin else [k for k in self.keys if k.user == user.name]

    def create_key(self, user: User, owner: str | None = None, label: str = "") -> tuple[FakeKey, str]:
        key = FakeKey(id=f"k{len(self.keys) + 1}", user=self._target(user, owner), label=label)
        self.keys.append(key)
        return key, f"secret-{key.id}"

    def revoke_key(self, user: User, key_id: str, owner: str | None = None) -> FakeKey:
        who = self._target(user, owner)
        for key in self.keys:
            if key.id == key_id and key.user == who:
                self.keys.remove(key)
                return key
        raise NotAuthorized(f"There is no key {key_id!r} of {who}.")

    @staticmethod
    def _target(user: User, owner: str | None) -> str:
        if owner and owner != user.name and not user.is_admin:
            raise NotAuthorized("Only an admin can manage another user's keys.")
        return owner or user.name


@dataclass
class FakeServices:
    """Only what a handler under test touches; unknown user names are refused like the real one."""

    users: dict[str, User] = field(default_factory=dict)
    api_access: FakeApiAccess = field(default_factory=FakeApiAccess)
    extra: dict[str, Any] = field(default_factory=dict)

    def user(self, username: str | None) -> User:
        if username not in self.users:
            raise NotAuthorized("Please log in again.")
        return self.users[username]
