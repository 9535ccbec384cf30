"""The real app with SmolLM2, served once per session for the API tests: single-user and team mode."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.app_server import ROOT, RunningApp, running_app

START_TIMEOUT_S = 300  # CI machines shared with other jobs can be slow to import Gradio and torch
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}
ALICE_NOTE = ("The secret launch code of the Zephyr project is PELICAN-42. "
              "It was chosen by Alice in March and must not be shared outside her team.")


def launcher(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launcher.py"), *args], input=stdin, text=True,
                          capture_output=True, timeout=120)


def app_args(workdir: Path, smollm_path: Path) -> list[str]:
    models = workdir / "models"
    models.mkdir(exist_ok=True)
    if not (models / smollm_path.name).exists():
        (models / smollm_path.name).symlink_to(smollm_path)
    return ["--model", smollm_path.name, "--offline", "--data-dir", str(workdir / "data"),
            "--models-dir", str(models), "--ctx-size", "1024"]


@pytest.fixture(scope="session")
def local_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    """A single-user app on localhost: no key needed."""
    workdir = tmp_path_factory.mktemp("api-local")
    with running_app(workdir, app_args(workdir, smollm_path), timeout=START_TIMEOUT_S) as app:
        yield app


@dataclass
class Team:
    app: RunningApp
    workdir: Path
    keys: dict[str, str]


def make_key(workdir: Path, name: str) -> str:
    result = launcher("users", "api-key", name, "--label", "tests", "--data-dir", str(workdir / "data"))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[Team]:
    """Team mode (--listen) with alice (admin) and bob; alice has a private collection with one note."""
    workdir = tmp_path_factory.mktemp("api-team")
    data = workdir / "data"
    for name, password in PASSWORDS.items():
        extra = ["--admin"] if name == "alice" else []
        result = launcher("users", "add", name, *extra, "--password-stdin", "--data-dir", str(data),
                          stdin=password + "\n")
        assert result.returncode == 0, result.stderr
    from webui.rag import DocumentLibrary

    note = workdir / "zephyr.txt"
    note.write_text(ALICE_NOTE)
    from tests.support.team import user_id

    library = DocumentLibrary(data)
    alice = user_id(data, "alice")
    library.create_collection(alice, "alice-notes")
    outcomes = library.ingest(alice, "alice-notes", [note])
    assert all(o.ok for o in outcomes), outcomes
    del library
    keys = {name: make_key(workdir, name) for name in PASSWORDS}
    with running_app(workdir, ["--listen", *app_args(workdir, smollm_path)],
                     status_auth=("alice", PASSWORDS["alice"]), timeout=START_TIMEOUT_S) as app:
        yield Team(app, workdir, keys)


@pytest.fixture(scope="session")
def gemma_app(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path) -> Iterator[RunningApp]:
    """A single-user app with Gemma 3 270M, whose file has no chat template (the generic tool fallback)."""
    workdir = tmp_path_factory.mktemp("api-gemma")
    with running_app(workdir, app_args(workdir, gemma_path), timeout=START_TIMEOUT_S) as app:
        yield app


@dataclass
class ServedModel:
    app: RunningApp
    model: str  # the name clients ask for


@pytest.fixture(scope="module", params=["smollm2", "gemma3-270m"])
def tool_model(request: pytest.FixtureRequest) -> ServedModel:
    """The tool-call client tests run on both small models: SmolLM2 (ChatML) and Gemma 3 270M (no template)."""
    if request.param == "smollm2":
        return ServedModel(request.getfixturevalue("local_app"), request.getfixturevalue("smollm_path").name)
    return ServedModel(request.getfixturevalue("gemma_app"), request.getfixturevalue("gemma_path").name)
