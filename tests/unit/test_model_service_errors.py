"""ModelService says in one sentence why a model's settings or file could not be written, so the page maps one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.config import Settings
from webui.engine import Engine
from webui.hardware import HardwareInfo
from webui.models.manager import ModelManager
from webui.services.models import ModelLoadOptions, ModelManagerError, ModelService
from webui.services.types import User

MACHINE = HardwareInfo(cpu_physical_cores=2, cpu_logical_cores=2, ram_total_mb=16384, ram_available_mb=12000,
                       gpus=(), gpu_offload_supported=False)
ADMIN = User("root", is_admin=True)


def service(tmp_path: Path, data_dir: Path) -> ModelService:
    (tmp_path / "models").mkdir(exist_ok=True)
    return ModelService(Settings(models_dir=tmp_path / "models", data_dir=data_dir, offline=True), MACHINE, Engine())


def test_a_settings_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocked = tmp_path / "data"
    blocked.write_text("a file where the data folder should be")
    with pytest.raises(ModelManagerError, match=r"^The settings file .*model-settings\.json cannot be written \("):
        service(tmp_path, blocked).save_settings(ADMIN, "a.gguf", ModelLoadOptions(n_ctx=2048))


def test_a_model_file_that_cannot_be_deleted_is_named_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    def refuse(self: ModelManager, file_name: str) -> Path:
        raise PermissionError(13, "Permission denied", file_name)

    monkeypatch.setattr(ModelManager, "delete", refuse)
    with pytest.raises(ModelManagerError, match=r"^a\.gguf could not be deleted \(Permission denied\)\.$"):
        service(tmp_path, tmp_path / "data").delete(ADMIN, "a.gguf")
