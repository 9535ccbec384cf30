"""Who is signed in and what they may do."""

from __future__ import annotations

from webui.auth import User
from webui.errors import UserError

LOCAL_USER = User(name="local", is_admin=True)


class NotAuthorized(UserError, PermissionError):
    """The signed-in user may not do this (or nobody is signed in)."""


