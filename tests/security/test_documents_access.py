"""Who may share a collection: the service refuses a plain user as every admin action does (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.auth import User
from webui.config import Settings
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
