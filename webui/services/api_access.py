"""Who an API call acts as: a user's key in team mode, the optional ``--api-key`` on a single-user app.

A key acts as its user, so everything the user cannot see in the page (another user's private
collections) stays out of reach through the API too.
"""

from __future__ import annotations

import hmac

from webui.api_keys import ApiKey, ApiKeyError, ApiKeyStore
from webui.auth import User, UserStore
from webui.config import Settings
from webui.services.access import LOCAL_USER, NotAuthorized

__all__ = ["ApiAccessService", "ApiKey", "ApiKeyError", "NotAuthorized"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class ApiAccessService:
    """API keys per user (several each, revocable) and the check every API call passes first."""

    def __init__(self, settings: Settings, users: UserStore, *, team_mode: bool) -> None:
        self._settings = settings
        self._users = users
        self._team_mode = team_mode
        self._keys = ApiKeyStore(settings.api_keys_file)

    @property
    def keys_required(self) -> bool:
        """Whether an API call without a valid key is refused."""
        return self._team_mode or bool(self._settings.api_key)

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
        name = self._keys.user_for(token)
        user = self._users.get(name) if name else None
        if user is None:  # unknown or revoked key, or its user was removed
            raise NotAuthorized("This API key is not valid (unknown, revoked, or its user was removed).")
        return user

    def _target(self, user: User, owner: str | None) -> str:
        """Whose keys a request manages: one's own; an admin may manage anyone's."""
        owner = (owner or user.name).strip()
        if owner != user.name and not user.is_admin:
            raise NotAuthorized("Only an admin can manage another user's API keys.")
        if self._team_mode and self._users.get(owner) is None:
            raise ApiKeyError(f"There is no user named {owner}.")
        return owner

    def list_keys(self, user: User, owner: str | None = None) -> list[ApiKey]:
        return self._keys.list(self._target(user, owner))

    def create_key(self, user: User, owner: str | None = None, label: str = "") -> tuple[ApiKey, str]:
        """A new key (shown once) for ``owner`` (default: the caller)."""
        return self._keys.create(self._target(user, owner), label)

    def revoke_key(self, user: User, key_id: str, owner: str | None = None) -> ApiKey:
        return self._keys.revoke(self._target(user, owner), key_id)
