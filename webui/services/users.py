"""The Users tab's actions (admins only), with the same rules as ``launcher.py users``.

Removing a user revokes their API keys; so does a new password, as with ``users passwd`` by default
(the page has no way to keep them: a reset is for a password that may have leaked). Both also sign
the user out everywhere, through the credential stamp that the session guard checks.
"""

from __future__ import annotations

from webui.api_keys import ApiKeyStore
from webui.auth import User, UserStore, change_password, remove_user, revoked_keys_phrase
from webui.services.access import NotAuthorized


class UserService:
    """Add, remove and reset users for an admin; every method checks that the caller is one."""

    def __init__(self, users: UserStore, keys: ApiKeyStore) -> None:
        self._users = users
        self._keys = keys

    def verify(self, name: str, password: str) -> User | None:
        """The user when the password is right (the web root's login check; argon2, so call it off the loop)."""
        return self._users.verify(name, password)

    def credential_stamp(self, name: str) -> str | None:
        """What changes when the user's password changes or they are removed (sessions end on a change)."""
        return self._users.credential_stamp(name)

    def table(self, admin: User) -> list[list[str]]:
        """Rows of (name, role) for the Users tab."""
        _require_admin(admin)
        return [[u.name, "admin" if u.is_admin else "user"] for u in self._users.list()]

    def admin_names(self) -> list[str]:
        """Who can change what only admins may (models, users): named on the pages of those who cannot."""
        return [u.name for u in self._users.list() if u.is_admin]

    def add(self, admin: User, name: str, password: str, *, is_admin: bool = False) -> str:
        """Add a user (with a new id, so a reused name starts with nothing); the sentence to show."""
        _require_admin(admin)
        added = self._users.add(name.strip(), password, admin=is_admin)
        return f"Added **{added.name}**" + (" as an admin." if added.is_admin else ".")

    def reset_password(self, admin: User, name: str, password: str) -> str:
        """Set a new password and revoke the user's API keys; the sentence to show."""
        _require_admin(admin)
        name = name.strip()
        revoked = change_password(self._users, self._keys, name, password)
        return f"New password set for **{name}**; they were signed out everywhere and {revoked_keys_phrase(revoked)}."

    def remove(self, admin: User, name: str) -> str:
        """Remove a user (not oneself) and revoke their API keys; the sentence to show."""
        _require_admin(admin)
        name = name.strip()
        if name == admin.name:
            raise NotAuthorized("You cannot remove yourself while signed in.")
        _, revoked = remove_user(self._users, self._keys, name)
        return f"Removed **{name}**, signed them out everywhere and {revoked_keys_phrase(revoked)}."


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise NotAuthorized("Only an admin can do this.")
