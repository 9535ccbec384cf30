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
