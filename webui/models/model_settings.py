"""Per-model load settings the user chose in the Models tab, remembered per file name in the data dir."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from webui.errors import UserError
from webui.quarantine import file_key, keep_aside

log = logging.getLogger(__name__)

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
FILE_VERSION = 2  # 2: flash_attn may be None (auto); a version 1 file's False was only the old default


class InvalidLoadOptions(UserError, ValueError):
    """A load setting is out of range; the message names the setting and what it accepts."""


@dataclass(frozen=True)
class ModelLoadOptions:
    """What the user may tune per model file. ``None`` means "the app's default" (flags, or auto)."""

    n_ctx: int | None = None  # None: --ctx-size, capped at the model's trained context
    n_gpu_layers: int | None = None  # None: auto (fit.auto_gpu_layers, the launcher's rule); -1: all
    n_threads: int | None = None  # None: --threads, else the physical core count
    n_batch: int = 512
    flash_attn: bool | None = None  # None: auto (fit.resolve_flash_attn: on where layers run on a GPU)
    kv_cache_type: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    chat_format: str | None = None  # a family name or a Jinja template overriding the file's own
    prompt_lookup: bool = True  # speculative decoding from the prompt: same replies, faster where they quote it
    draft_model: str | None = None  # a listed model file with the same vocabulary that drafts instead

    def __post_init__(self) -> None:
        validate_options(self)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_options(options: ModelLoadOptions) -> None:
    """Raise InvalidLoadOptions for values llama.cpp would reject or that make no sense."""
    if options.n_ctx is not None and options.n_ctx < 16:
        raise InvalidLoadOptions(f"Context size must be at least 16 tokens (or empty for the default), not {options.n_ctx}.")
    if options.n_gpu_layers is not None and options.n_gpu_layers < -1:
        raise InvalidLoadOptions(f"GPU layers must be 'auto', -1 (all) or a number of layers, not {options.n_gpu_layers}.")
    if options.n_threads is not None and options.n_threads < 1:
        raise InvalidLoadOptions(f"Threads must be at least 1 (or empty for the default), not {options.n_threads}.")
    if options.n_batch < 1:
        raise InvalidLoadOptions(f"Batch size must be at least 1, not {options.n_batch}.")
    if options.kv_cache_type not in KV_CACHE_TYPES:
        raise InvalidLoadOptions(
            f"KV cache type must be one of {', '.join(KV_CACHE_TYPES)}, not {options.kv_cache_type!r}."
        )
    if not isinstance(options.prompt_lookup, bool):
        raise InvalidLoadOptions(f"Prompt lookup must be on or off (true or false), not {options.prompt_lookup!r}.")
    if options.draft_model is not None and (not isinstance(options.draft_model, str) or not options.draft_model
                                            or Path(options.draft_model).name != options.draft_model):
        raise InvalidLoadOptions(f"The draft model must be one of the listed model files, not {options.draft_model!r}.")
    if options.kv_cache_type != "f16" and options.flash_attn is False:
        # llama.cpp refuses a quantized V cache without flash attention ("Failed to create llama_context").
        raise InvalidLoadOptions(
            f"A {options.kv_cache_type} KV cache needs flash attention: set it to auto or on, or use the f16 cache."
        )


def options_from_dict(raw: dict[str, Any]) -> ModelLoadOptions:
    """Options from saved JSON: unknown keys are ignored, so an older or newer file still loads."""
    known = {f.name for f in fields(ModelLoadOptions)}
    return ModelLoadOptions(**{k: v for k, v in raw.items() if k in known})


def parse_gpu_layers_text(text: str | None) -> int | None:
    """The GPU-layers box: ``auto`` or empty -> None; a whole number (``-1`` = all) -> that number."""
    value = (text or "").strip().lower()
    if value in ("", "auto"):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidLoadOptions(f"GPU layers must be 'auto' or a whole number, not {text!r}.") from exc


FLASH_ATTN_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def parse_flash_attn_choice(text: str | None) -> bool | None:
    """The flash-attention box: ``auto`` or empty -> None, ``on`` -> True, ``off`` -> False."""
    value = (text or "auto").strip().lower()
    if value not in FLASH_ATTN_CHOICES:
        raise InvalidLoadOptions(f"Flash attention must be one of {', '.join(FLASH_ATTN_CHOICES)}, not {text!r}.")
    return FLASH_ATTN_CHOICES[value]


def flash_attn_choice(flash_attn: bool | None) -> str:
    """The box's text for an option value (the inverse of :func:`parse_flash_attn_choice`)."""
    return next(name for name, value in FLASH_ATTN_CHOICES.items() if value is flash_attn)


class ModelSettingsStore:
    """``{file name: ModelLoadOptions}`` in one JSON file, written atomically (temp file + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._guard = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        """The saved settings; a damaged file is kept aside (and reported) rather than overwritten by the next save."""
        key = file_key(self.path)
        if key is None:
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            models = raw.get("models") if isinstance(raw, dict) else None
            if not isinstance(models, dict):
                raise ValueError("no 'models' object")
            if raw.get("version") == 1:
                # Version 1 had no "auto": every file that never turned flash attention on said False.
                for options in models.values():
                    if isinstance(options, dict) and options.get("flash_attn") is False:
                        options["flash_attn"] = None
        except FileNotFoundError:
            return {}
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
            keep_aside(self.path, str(exc), if_unchanged=key)
            return {}
        except OSError as exc:  # unreadable (permissions), not damaged: defaults apply, the file stays
            log.error("cannot read %s, using default load settings: %s", self.path, exc)
            return {}
        return {str(k): v for k, v in models.items() if isinstance(v, dict)}

    def _write(self, models: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": FILE_VERSION, "models": models}, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".model-settings-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, file_name: str) -> ModelLoadOptions | None:
        """The saved options for ``file_name``, or None when none were saved (or they are invalid)."""
        with self._guard:
            raw = self._read().get(file_name)
        if raw is None:
            return None
        try:
            return options_from_dict(raw)
        except (InvalidLoadOptions, TypeError) as exc:
            log.error("ignoring the saved load settings of %s: %s", file_name, exc)
            return None

    def save(self, file_name: str, options: ModelLoadOptions) -> None:
        with self._guard:
            models = self._read()
            models[file_name] = options.as_dict()
            self._write(models)

    def remove(self, file_name: str) -> None:
        with self._guard:
            models = self._read()
            if models.pop(file_name, None) is not None:
                self._write(models)
