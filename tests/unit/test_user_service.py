"""The Users tab's actions on the real users and keys files: who may act, and what the admin reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from webui.api_keys import ApiKeyStore
from webui.auth import UnknownUser, UserStore
from webui.services import NotAuthorized, UserService


@pytest.fixture()
def stores(data_dir: Path) -> tuple[UserStore, ApiKeyStore]:
    users = UserStore(data_dir / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    users.add("root", "root-secret-1", admin=True)
    users.add("bob", "bob-secret-22")
    return users, ApiKeyStore(data_dir / "api-keys.json")


def test_an_admin_resets_and_removes_and_the_keys_go_with_it(stores: tuple[UserStore, ApiKeyStore]) -> None:
    users, keys = stores
    service = UserService(users, keys)
    root, bob = users.get("root"), users.get("bob")
    _, secret = keys.create(bob)

    said = service.reset_password(root, " bob ", "bob-secret-333")
    assert said == "New password set for **bob**; they were signed out everywhere and revoked their 1 API key."
    assert keys.owner_of(secret) is None and users.check("bob", "bob-secret-333")

    keys.create(bob)
    keys.create(bob)
    said = service.remove(root, "bob")
    assert said == "Removed **bob**, signed them out everywhere and revoked their 2 API keys."
    assert keys.list() == [] and service.table(root) == [["root", "admin"]]

    assert service.add(root, "bob", "bob-secret-4444") == "Added **bob**."
    assert users.get("bob").id != bob.id and keys.list(users.get("bob")) == []


def test_only_an_admin_acts_and_never_on_themselves(stores: tuple[UserStore, ApiKeyStore]) -> None:
    users, keys = stores
    service = UserService(users, keys)
    root, bob = users.get("root"), users.get("bob")
    for action in (lambda: service.table(bob), lambda: service.add(bob, "eve", "eve-secret-1"),
                   lambda: service.reset_password(bob, "root", "mine-now-1"), lambda: service.remove(bob, "root")):
        with pytest.raises(NotAuthorized, match="Only an admin"):
            action()
    with pytest.raises(NotAuthorized, match="cannot remove yourself"):
        service.remove(root, "root")
    with pytest.raises(UnknownUser, match="no user named 'ghost'"):
        service.reset_password(root, "ghost", "ghost-secret-1")
    assert [u.name for u in users.list()] == ["bob", "root"] and users.check("root", "root-secret-1")
