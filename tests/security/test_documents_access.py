"""Who may share a collection: the service refuses a plain user as every admin action does (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.auth import User
from webui.config import Settings
from webui.rag.errors import CollectionPermissionError
from webui.services import NotAuthorized
from webui.services.documents import DocumentService


def test_a_plain_user_cannot_create_a_shared_collection(data_dir: Path) -> None:
    service = DocumentService(Settings(data_dir=data_dir))
    bob, admin = User(name="bob", is_admin=False), User(name="root", is_admin=True)

    with pytest.raises(NotAuthorized) as refused:
        service.create(bob, "team handbook", shared=True)
    assert str(refused.value) == "Only an admin can do this."
    assert service.collections("bob") == []

    assert service.create(bob, "my notes").shared is False
    shared = service.create(admin, "team handbook", shared=True)
    assert shared.shared is True
    assert [(c.name, c.shared, c.editable) for c in service.collections("bob")] == [
        ("my notes", False, True), ("team handbook", True, False)
    ]


def test_collections_belong_to_the_user_id_and_show_who_shared_them_by_name(data_dir: Path) -> None:
    service = DocumentService(Settings(data_dir=data_dir))
    admin = User(name="root", is_admin=True, id="5f0c1d2e")
    old_bob, new_bob = User("bob", is_admin=False, id="0ld0b0b"), User("bob", is_admin=False, id="n3wb0b")
    service.create(old_bob, "bob notes")
    service.create(admin, "team handbook", shared=True)

    assert [c.name for c in service.collections(old_bob.id)] == ["bob notes", "team handbook"]
    [handbook] = service.collections(new_bob.id)  # a later user of the same name sees only what is shared
    assert (handbook.name, handbook.created_by, handbook.editable) == ("team handbook", "root", False)
    with pytest.raises(CollectionPermissionError, match="'team handbook' is shared by root; only they can change it"):
        service.delete(new_bob.id, "team handbook")
    assert service.collections(admin.id)[0].editable
