"""Which model to load at start-up: a named one, the newest local one, the catalog's, or the embedded one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from webui.errors import UserError
from webui.models.download import DownloadError, HubUnreachable, download_gguf, split_parts
from webui.models.embedded import EMBEDDED_FILENAME, EmbeddedModelMissing, embedded_model_path

if TYPE_CHECKING:
    from webui.models.catalog import CatalogEntry

EMBEDDED_LABEL = EMBEDDED_FILENAME.split(".")[0]  # "SmolLM2-135M-Instruct"
_REPO_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+):(?P<filename>.+\.gguf)$", re.IGNORECASE)


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # "argument" | "local" | "catalog" | "embedded"
    note: str  # one sentence the launcher prints


class ModelNotFound(UserError):
    """The model the user asked for does not exist; the message says what was tried."""


def parse_repo_spec(spec: str) -> tuple[str, str] | None:
    """``"org/repo:file.gguf"`` -> ``("org/repo", "file.gguf")``; None for anything else (paths included)."""
    match = _REPO_SPEC.match(spec.strip())
    return (match["repo"], match["filename"]) if match else None


def local_gguf_files(models_dir: Path) -> list[Path]:
    """The GGUF models directly in ``models_dir``, newest first.

    A split model counts once (its first part) and only when all its parts are there; hidden files,
    download leftovers and vision projectors (``mmproj``, not loadable on their own) are skipped.
    """
    if not models_dir.is_dir():
        return []
    found: list[Path] = []
    for path in models_dir.iterdir():
        name = path.name
        if name.startswith(".") or not name.lower().endswith(".gguf") or "mmproj" in name.lower():
            continue
        if not path.is_file():
            continue
        parts = split_parts(name)
        if parts[0] != name or not all((models_dir / part).is_file() for part in parts):
            continue
        found.append(path)
    return sorted(found, key=lambda p: (-p.stat().st_mtime, p.name))


def _embedded(reason: str) -> ResolvedModel:
    try:
        path = embedded_model_path()
    except EmbeddedModelMissing as exc:
        raise ModelNotFound(f"{reason}, and the embedded fallback model is not installed ({exc}).") from exc
    return ResolvedModel(path, "embedded", f"{reason}: using the embedded {EMBEDDED_LABEL}.")


def resolve_model(
    spec: str | None,
    models_dir: Path,
    *,
    offline: bool,
    choose_catalog_entry: Callable[[], CatalogEntry],
    download: Callable[..., Path] = download_gguf,
    log: Callable[[str], None] = print,
) -> ResolvedModel:
    """Pick the model to load; download it when needed and allowed, else fall back to the embedded one.

    Order: ``spec`` (a path, a file name in ``models_dir``, or ``repo_id:filename``), then the newest
    local GGUF, then the catalog's choice for this machine, then the embedded SmolLM2.
    """
    if spec:
        return _resolve_spec(spec, models_dir, offline=offline, download=download, log=log)

    local = local_gguf_files(models_dir)
    if local:
        return ResolvedModel(local[0], "local", f"Using {local[0].name}, the newest model in {models_dir}.")
    if offline:
        return _embedded(f"Offline and no model in {models_dir}")

    entry = choose_catalog_entry()
    log(f"No model in {models_dir} yet: downloading {entry.label} ({entry.size_mb} MB) from {entry.repo_id}.")
    try:
        path = download(entry.repo_id, entry.filename, models_dir)
    except HubUnreachable as exc:
        log(str(exc))
        return _embedded("Hub unreachable")
    except DownloadError as exc:
        log(str(exc))
        return _embedded(f"Could not download {entry.label}")
    return ResolvedModel(path, "catalog", f"Downloaded {entry.label} to {path}.")


def _resolve_spec(
    spec: str,
    models_dir: Path,
    *,
    offline: bool,
    download: Callable[..., Path],
    log: Callable[[str], None],
) -> ResolvedModel:
    as_path = Path(spec).expanduser()
    if as_path.is_file():
        return ResolvedModel(as_path, "argument", f"Using {as_path}.")
    in_dir = models_dir / spec
    if in_dir.is_file():
        return ResolvedModel(in_dir, "argument", f"Using {spec} from {models_dir}.")

    repo_spec = parse_repo_spec(spec)
    if repo_spec is None:
        raise ModelNotFound(
            f"No model '{spec}': it is neither a file nor a name in {models_dir} "
            "(give a path, a file name there, or repo_id:filename to download one)."
        )
    repo_id, filename = repo_spec
    already = models_dir / Path(split_parts(filename)[0]).name
    if already in local_gguf_files(models_dir):
        return ResolvedModel(already, "argument", f"Using {already.name}, downloaded earlier from {repo_id}.")
    if offline:
        return _embedded(f"Offline, so {filename} cannot be downloaded from {repo_id}")
    log(f"Downloading {filename} from {repo_id} into {models_dir}.")
    try:
        path = download(repo_id, filename, models_dir)
    except HubUnreachable as exc:
        log(str(exc))
        return _embedded(f"Hub unreachable, so {filename} was not downloaded")
    except DownloadError as exc:
        raise ModelNotFound(str(exc)) from exc
    return ResolvedModel(path, "argument", f"Downloaded {filename} from {repo_id} to {path}.")
