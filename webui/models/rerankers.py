"""Reranker models on disk: cross-encoder folders downloaded from the hub into ``models/rerankers/``.

A cross-encoder reads the question and a passage together, so it tells "the passage that answers"
from "a passage on the same topic" far better than the embedder and BM25 (which score each side
alone). None ships on PyPI with its weights, so it is an explicit download, like a chat model.

The download is huggingface_hub's own ``snapshot_download`` (a folder of small files, unlike the
multi-GB GGUFs that ``download.py`` streams and verifies itself), limited to the files
sentence-transformers' ``CrossEncoder`` loads: the config, the tokenizer and ``model.safetensors``
(never a pickled ``pytorch_model.bin``, which runs code when loaded). It lands in a hidden staging
folder and moves to its final name only once complete and checked, so a dropped or cancelled
download never leaves a half model to pick. Which one is in use is kept in ``data/reranker.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.utils import tqdm as hf_tqdm

from webui.models.download import (
    REPO_ID,
    DownloadCancelled,
    DownloadError,
    check_online,
    hub_errors,
    resolve_endpoint,
)

log = logging.getLogger(__name__)

RERANKERS_DIR_NAME = "rerankers"
STAGING_DIR_NAME = ".partial"
CHOICE_FILE_NAME = "reranker.json"
# Offered in the Models tab; any hub repository holding a sentence-transformers cross-encoder works.
SUGGESTED_RERANKERS: tuple[tuple[str, str], ...] = (
    ("cross-encoder/ms-marco-MiniLM-L6-v2", "English, 22M parameters (about 90 MB): fast on a CPU"),
    ("mixedbread-ai/mxbai-rerank-xsmall-v1", "English, 71M parameters (about 280 MB)"),
    ("BAAI/bge-reranker-base", "Chinese and English, 278M parameters (about 1.1 GB)"),
)
_WEIGHTS = "model.safetensors"
# What CrossEncoder reads from a folder: the model's config and weights and its tokenizer's files.
_WANTED = re.compile(
    r"^(config\.json|model\.safetensors|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json"
    r"|added_tokens\.json|vocab\.txt|vocab\.json|merges\.txt|sentencepiece\.bpe\.model|spm\.model"
    r"|config_sentence_transformers\.json)$"
)

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total)


class NotACrossEncoder(DownloadError):
    """The repository holds no sentence-transformers cross-encoder this app can load."""


def rerankers_dir(models_dir: Path) -> Path:
    return models_dir / RERANKERS_DIR_NAME


def folder_name(repo_id: str) -> str:
    """The folder a repository lands in: 'org/name' -> 'org--name' (the hub cache's own spelling)."""
    return repo_id.replace("/", "--")


def installed_rerankers(models_dir: Path) -> list[str]:
    """Folder names of the complete cross-encoders under ``models/rerankers/``, sorted."""
    root = rerankers_dir(models_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and cross_encoder_problem(p) is None)


def cross_encoder_problem(folder: Path, *, weights: bool = True) -> str | None:
    """Why ``folder`` is not a cross-encoder this app loads; None when it is one (``weights`` False:
    judged by its config alone, before the weights are fetched)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "it has no readable config.json"
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "it is not a cross-encoder (a model that scores a question and a passage together)"
    if weights and not (folder / _WEIGHTS).is_file():
        return f"it has no {_WEIGHTS}"
    return None


def read_choice(data_dir: Path) -> str | None:
    """The folder name picked in the Models tab; None when reranking is off or nothing was picked."""
    try:
        value = json.loads((data_dir / CHOICE_FILE_NAME).read_text(encoding="utf-8")).get("reranker")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        log.warning("%s is unreadable; reranking stays off until one is picked again", CHOICE_FILE_NAME)
        return None
    return value if isinstance(value, str) and value else None


def write_choice(data_dir: Path, folder: str | None) -> None:
    """Keep the pick across restarts (written whole, then renamed, so a crash leaves the old one)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CHOICE_FILE_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"reranker": folder}), encoding="utf-8")
    os.replace(temporary, path)


def _progress_bar_class(progress: ProgressCallback | None, cancel: threading.Event | None) -> type[Any]:
    """A tqdm class for snapshot_download: its byte bar reports to ``progress``, and any bar's update
    raises DownloadCancelled once ``cancel`` is set (the only hook the library offers to stop)."""

    class Bar(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no terminal output; totals are still kept
            super().__init__(*args, **kwargs)
            self._reports = kwargs.get("unit") == "B" and "Downloading" in str(kwargs.get("desc", ""))

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("The reranker download was cancelled; nothing was kept.")
            self.n += n or 0
            if self._reports and progress is not None:
                progress(int(self.n), int(self.total or 0))
            return None

    return Bar


def remote_files(repo_id: str, *, endpoint: str | None = None) -> list[str]:
    """The files of ``repo_id`` a cross-encoder needs."""
    endpoint = resolve_endpoint(endpoint)
    check_online(repo_id, endpoint)
    with hub_errors(repo_id, None, endpoint):
        info = HfApi(endpoint=endpoint).model_info(repo_id)
    names = {s.rfilename for s in info.siblings or [] if _WANTED.match(s.rfilename)}
    if "config.json" not in names or _WEIGHTS not in names:
        raise NotACrossEncoder(
            f"{repo_id} holds no config.json and {_WEIGHTS} at its top level, so it is not a "
            "cross-encoder this app can load."
        )
    return sorted(names)


def download_reranker(
    repo_id: str,
    models_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
) -> str:
    """Download a cross-encoder into ``models/rerankers/<org>--<name>``; its folder name.

    A folder already there is kept as it is (delete it first to fetch it again).
    """
    repo_id = repo_id.strip()
    if not REPO_ID.match(repo_id):
        raise DownloadError(f"'{repo_id}' is not a hub repository id (it looks like 'org/name').")
    name = folder_name(repo_id)
    final = rerankers_dir(models_dir) / name
    if final.is_dir() and cross_encoder_problem(final) is None:
        return name
    endpoint = resolve_endpoint(endpoint)
    files = remote_files(repo_id, endpoint=endpoint)
    staging = rerankers_dir(models_dir) / STAGING_DIR_NAME / name
    staging.mkdir(parents=True, exist_ok=True)
    bars = _progress_bar_class(progress, cancel)
    try:
        with hub_errors(repo_id, None, endpoint):
            # The config first: a repository that is no cross-encoder is refused before its weights come.
            for wanted, weights in ((["config.json"], False), (files, True)):
                snapshot_download(repo_id, local_dir=staging, allow_patterns=wanted, endpoint=endpoint,
                                  max_workers=2, tqdm_class=bars)
                problem = cross_encoder_problem(staging, weights=weights)
                if problem is not None:
                    raise NotACrossEncoder(f"{repo_id} cannot be used as a reranker: {problem}.")
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # the library's resume bookkeeping
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return name


def delete_reranker(models_dir: Path, name: str) -> None:
    """Remove an installed reranker's folder (a name from :func:`installed_rerankers`)."""
    if name not in installed_rerankers(models_dir):
        raise DownloadError(f"There is no reranker named '{name}' in the models folder.")
    shutil.rmtree(rerankers_dir(models_dir) / name)
