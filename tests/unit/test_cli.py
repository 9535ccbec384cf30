"""Flags and environment -> Settings, and the refusal to serve the LAN without logins."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.cli import network_access_problem, parse_settings


def test_defaults_are_private_and_local(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBUI_HOST", "WEBUI_PORT", "WEBUI_LISTEN", "WEBUI_N_GPU_LAYERS"):
        monkeypatch.delenv(name, raising=False)
    settings = parse_settings([])
    assert settings.host == "127.0.0.1" and settings.port == 7860
    assert settings.n_gpu_layers is None, "auto by default"
    assert not settings.listens_on_network


def test_environment_sets_values_and_flags_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEBUI_PORT", "9000")
    monkeypatch.setenv("WEBUI_N_GPU_LAYERS", "12")
    monkeypatch.setenv("WEBUI_DATA_DIR", str(tmp_path / "d"))
    settings = parse_settings(["--port", "9100"])
    assert settings.port == 9100
    assert settings.n_gpu_layers == 12
    assert settings.data_dir == (tmp_path / "d").resolve()


def test_listen_binds_all_interfaces() -> None:
    settings = parse_settings(["--listen"])
    assert settings.host == "0.0.0.0" and settings.listens_on_network


def test_gpu_layers_accepts_auto_numbers_and_rejects_words() -> None:
    assert parse_settings(["--n-gpu-layers", "auto"]).n_gpu_layers is None
    assert parse_settings(["--n-gpu-layers", "-1"]).n_gpu_layers == -1
    with pytest.raises(SystemExit):
        parse_settings(["--n-gpu-layers", "many"])


def test_network_without_users_is_refused_unless_waived() -> None:
    lan = parse_settings(["--listen"])
    assert "refusing to serve" in network_access_problem(lan, users_exist=False)
    assert network_access_problem(lan, users_exist=True) is None
    assert network_access_problem(parse_settings(["--listen", "--insecure-no-auth"]), users_exist=False) is None
    assert network_access_problem(parse_settings([]), users_exist=False) is None


def _copy_of_the_code(tmp_path: Path) -> Path:
    """A second checkout (its code only), so the test never writes into this one's data/."""
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(Path(__file__).resolve().parents[2] / "webui", checkout / "webui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def test_models_and_data_default_to_the_checkout_from_any_directory(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.delenv("WEBUI_DATA_DIR", raising=False)
    monkeypatch.delenv("WEBUI_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = parse_settings([])
    checkout = Path(__file__).resolve().parents[2]
    assert settings.models_dir == checkout / "models"
    assert settings.data_dir == checkout / "data"
    assert parse_settings(["--data-dir", "mine"]).data_dir == tmp_path / "mine", "a relative flag stays relative"


def test_users_command_from_another_directory_writes_the_checkouts_users_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    checkout = _copy_of_the_code(tmp_path)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEBUI_")}
    env["PYTHONPATH"] = str(checkout)
    added = subprocess.run([sys.executable, "-m", "webui.cli", "users", "add", "ada", "--password-stdin"],
                           cwd=elsewhere, env=env, input="correct horse battery\n", text=True,
                           capture_output=True, timeout=120)
    assert added.returncode == 0, added.stderr
    assert (checkout / "data" / "users.json").is_file()
    assert not (elsewhere / "data").exists()
