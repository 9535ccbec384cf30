"""Who an API call acts as: a user's key in team mode, the optional ``--api-key`` on a single-user app.

A key acts as its user, so everything the user cannot see in the page (another user's private
collections) stays out of reach through the API too. It is tied to the user's id: removing the user
(or giving them a new password) ends it, and a later user of the same name does not bring it back.
"""

from __future__ import annotations

import hmac

from webui.api_keys import ApiKey, ApiKeyError, ApiKeyStore
from webui.auth import User, UserStore
from webui.config import Settings
from webui.services.access import LOCAL_USER, NotAuthorized

__all__ = ["ApiAccessService", "ApiKey", "ApiKeyError", "NotAuthorized"]

# What a refused key's owner reads (401): why, and where a new key comes from.
KEY_NOT_VALID = ("This API key is not valid: it was revoked (a user's keys end when their password is changed "
                 "or they are removed) or never existed. Make a new key in the page (its API keys tab) or "
                 "ask an admin for one: python3 launcher.py users api-key NAME")
KEY_OWNER_REMOVED = ("This API key was revoked: its user was removed. Ask an admin for an account and a new key "
                     "(python3 launcher.py users api-key NAME).")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class ApiAccessService:
    """API keys per user (several each, revocable) and the check every API call passes first."""

    def __init__(
        self, settings: Settings, users: UserStore, *, team_mode: bool, keys: ApiKeyStore | None = None
    ) -> None:
        """``keys``: the one store of the app, shared with the Users tab that revokes keys."""
        self._settings = settings
        self._users = users
        self._team_mode = team_mode
        self._keys = keys or ApiKeyStore(settings.api_keys_file)

    def caller(self, authorization: str | None) -> User:
        """The user an API call acts as; NotAuthorized (401) without a valid key where one is needed."""
        token = bearer_token(authorization)
        if not self._team_mode:
            expected = self._settings.api_key
            if not expected:
                return LOCAL_USER
            if token and hmac.compare_digest(token.encode(), expected.encode()):
                return LOCAL_USER
            raise NotAuthorized("This server needs an API key: send it as 'Authorization: Bearer <key>' "
                                "(the key given with --api-key).")
        if not token:
            raise NotAuthorized("Send your API key as 'Authorization: Bearer <key>'. Make one in the page "
                                "(API keys) or with: python3 launcher.py users api-key NAME")
        owner_id = self._keys.owner_of(token)
        if owner_id is None:
            raise NotAuthorized(KEY_NOT_VALID)
        user = self._users.get_by_id(owner_id)
        if user is None:  # still listed, but its user is gone (removed while the keys file could not be written)
            raise NotAuthorized(KEY_OWNER_REMOVED)
        return user

    def _target(self, user: User, owner: str | None) -> User:
        """Whose keys a request manages: one's own; an admin may manage anyone's (named)."""
        owner = (owner or user.name).strip()
        if owner == user.name:
            return user
        if not user.is_admin:
            raise NotAuthorized("Only an admin can manage another user's API keys.")
        target = self._users.get(owner)
        if target is None:
            raise ApiKeyError(f"There is no user named {owner}.")
        return target

    def list_keys(self, user: User, owner: str | None = None) -> list[ApiKey]:
        return self._keys.list(self._target(user, owner))

    def keys_shown_to(self, user: User) -> list[ApiKey]:
        """The keys the API keys tab lists: an admin's view holds every user's, anyone else's their own."""
        return self._keys.list(None if user.is_admin else user)

    def create_key(self, user: User, owner: str | None = None, label: str = "") -> tuple[ApiKey, str]:
        """A new key (shown once) for ``owner`` (default: the caller)."""
        return self._keys.create(self._target(user, owner), label)

    def revoke_key(self, user: User, key_id: str, owner: str | None = None) -> ApiKey:
        return self._keys.revoke(self._target(user, owner), key_id)
