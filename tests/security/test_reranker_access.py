"""The Models tab's reranker panel in team mode, probed as a plain user through the page's own events.

Bob's controls are hidden, but a hidden button is no protection: he sends the panel's events the way
the page does (with his session cookie) and the server must refuse each one, leaving the admin's pick
and the reranker on disk as they were. Nobody signed in and a foreign Host are refused for every
event by the app's guard (tests/security/test_api_surface.py, test_rebinding.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp
from tests.support.gradio_queue import GradioSession
from tests.support.team import signed_in, team_app

pytestmark = pytest.mark.e2e

NAME = "local-test--tiny-cross-encoder"
REFUSED = "Only an admin can change the reranker."


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, cross_encoder_path: Path) -> Path:
    """An installed reranker, picked by an admin before the start."""
    workdir = tmp_path_factory.mktemp("reranker-team")
    shutil.copytree(cross_encoder_path, workdir / "models" / "rerankers" / NAME)
    (workdir / "data").mkdir()
    (workdir / "data" / "reranker.json").write_text(json.dumps({"reranker": NAME}))
    return workdir


@pytest.fixture(scope="module")
def app(workdir: Path, smollm_path: Path) -> Iterator[RunningApp]:
    with team_app(workdir, smollm_path) as running:
        yield running


@pytest.fixture()
def bob(app: RunningApp) -> Iterator[GradioSession]:
    session = signed_in(app, "bob")
    yield session
    session.close()


def outputs(session: GradioSession, elem_id: str, data: list, trigger: str = "click") -> str:
    result = session.call(session.event_of(elem_id, trigger), data)
    assert result.join_status == 200, result.text
    return result.text


def test_a_plain_user_cannot_change_download_or_delete_the_reranker(bob: GradioSession, app: RunningApp,
                                                                    workdir: Path) -> None:
    choice = (workdir / "data" / "reranker.json").read_text()
    assert REFUSED in outputs(bob, "rerankers-use", ["Off"], trigger="input")
    assert REFUSED in outputs(bob, "rerankers-download", ["local-test/other"])
    assert REFUSED in outputs(bob, "rerankers-cancel", [])
    deleted = outputs(bob, "rerankers-delete", [NAME])
    assert REFUSED in deleted or "not in the list of choices" in deleted  # his list only offers "Off"
    assert (workdir / "data" / "reranker.json").read_text() == choice
    assert (workdir / "models" / "rerankers" / NAME / "model.safetensors").is_file()
    assert app.status()["documents"] == {"reranker": NAME}


def test_the_admin_can_turn_it_off(app: RunningApp, workdir: Path) -> None:
    alice = signed_in(app, "alice")
    try:
        assert "Off: document searches are not reranked" in outputs(alice, "rerankers-use", ["Off"], trigger="input")
    finally:
        alice.close()
    assert json.loads((workdir / "data" / "reranker.json").read_text())["reranker"] is None
    assert app.status()["documents"] == {"reranker": None}
