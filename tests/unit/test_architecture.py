"""The layering rule (README "Architecture") as import-linter contracts, checked on every test run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the project's contracts over the ``webui`` package found in *package_parent*."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command;"
                           " sys.exit(lint_imports_command())", "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=package_parent, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_a_page_module_importing_the_engine_breaks_them(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "webui", tmp_path / "webui", ignore=shutil.ignore_patterns("__pycache__"))
    chat = tmp_path / "webui" / "ui" / "chat.py"
    chat.write_text(chat.read_text() + "\nfrom webui.engine import Engine  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "webui.ui.chat -> webui.engine" in result.stdout
