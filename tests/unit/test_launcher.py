"""launcher.py: standard library only, and no pip or hub once .venv is set up."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_launcher():
    spec = importlib.util.spec_from_file_location("launcher_under_test", ROOT / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_launcher_imports_only_the_standard_library_and_webui() -> None:
    outside = top_level_imports(ROOT / "launcher.py") - set(sys.stdlib_module_names) - {"webui", "__future__"}
    assert outside == set()


def test_a_set_up_venv_is_used_without_calling_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = load_launcher()
    if not launcher.STAMP.exists():
        pytest.skip("this checkout's .venv was not made by the launcher")

    def no_install(argv, env=None):
        raise AssertionError(f"the launcher ran {argv!r} although .venv is up to date")

    monkeypatch.setattr(launcher, "run", no_install)
    launcher.ensure_environment(with_tests=False, offline=True)


def test_offline_with_a_stale_venv_explains_instead_of_installing(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    launcher = load_launcher()
    monkeypatch.setattr(launcher, "STAMP", tmp_path / "missing-stamp.json")
    monkeypatch.setattr(launcher, "run", lambda *a, **k: pytest.fail("must not install offline"))
    with pytest.raises(SystemExit) as stopped:
        launcher.ensure_environment(with_tests=False, offline=True)
    assert "--offline forbids installing" in str(stopped.value)
