"""Quarantine: a store file that cannot be read is kept aside with a timestamp and reported, never overwritten.

Every store (users, API keys, model settings, chat history, presets, keyword indexes, Chroma) calls
:func:`keep_aside` when its file turns out to be damaged, then starts empty. The damaged file stays
beside the original name as ``<name>.corrupt-<UTC time>`` until someone looks at it, and
:func:`set_aside_files` finds every such file for the page and the log to report.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

ASIDE_MARK = ".corrupt-"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")  # moved with their database, so it can still be opened
# SQLite's result codes for a file that is not (or no longer) a database, as opposed to a busy or locked one.
_SQLITE_DAMAGED = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


@dataclass(frozen=True)
class SetAside:
    """A store file that could not be read, and the name it was kept under."""

    original: Path
    kept_as: Path
    reason: str

    def message(self) -> str:
        return (f"{self.original.name} could not be read ({self.reason}); it was kept as {self.kept_as.name} "
                "and an empty one used instead.")


def aside_name(path: Path, now: datetime) -> Path:
    """``<name>.corrupt-YYYYmmdd-HHMMSS`` beside ``path``, numbered when that name (or a sidecar) is taken."""
    stem = f"{path.name}{ASIDE_MARK}{now.astimezone(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    candidate, number = path.with_name(stem), 1
    while any(Path(f"{candidate}{suffix}").exists() for suffix in ("", *SQLITE_SIDECARS)):
        candidate, number = path.with_name(f"{stem}-{number}"), number + 1
    return candidate


def file_key(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of ``path``, or None when it is missing: tells whether a file changed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def keep_aside(
    path: Path,
    reason: str,
    *,
    sidecars: Sequence[str] = (),
    if_unchanged: tuple[int, int, int] | None = None,
    now: datetime | None = None,
) -> SetAside | None:
    """Rename a damaged store file (and its ``sidecars``) out of the way, log it, and say where it went.

    ``if_unchanged``: the :func:`file_key` of the file that was read; when the file has changed since
    (another process wrote a good one) or is gone (another process kept it aside), nothing is moved and
    None is returned.
    """
    if if_unchanged is not None and file_key(path) != if_unchanged:
        return None
    target = aside_name(path, now or datetime.now(timezone.utc))
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    for suffix in sidecars:
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            os.replace(companion, Path(f"{target}{suffix}"))
    log.warning("%s could not be read (%s): kept aside as %s; starting with an empty one", path, reason, target)
    return SetAside(original=path, kept_as=target, reason=reason)


def is_damaged_database(error: BaseException) -> bool:
    """True for SQLite's "file is not a database" and "database disk image is malformed", not for a busy or
    locked database, a full disk or a permission problem, which must never move the file."""
    return isinstance(error, sqlite3.DatabaseError) and getattr(error, "sqlite_errorcode", None) in _SQLITE_DAMAGED


def set_aside_files(data_dir: Path) -> list[Path]:
    """Every store file or folder kept aside under ``data_dir`` (not their sidecars), by name.

    The uploads and the Chroma database are not searched: they hold the user's own files and many of them.
    """
    found: list[Path] = []
    for folder, subfolders, files in os.walk(data_dir):
        here = Path(folder)
        kept = [name for name in subfolders if ASIDE_MARK in name]
        found += [here / name for name in kept]
        subfolders[:] = [name for name in subfolders
                         if name not in kept and not (here == data_dir and name in ("uploads", "chroma"))]
        found += [here / name for name in files if ASIDE_MARK in name and not name.endswith(SQLITE_SIDECARS)]
    return sorted(found, key=lambda p: p.name)


def set_aside_notice(data_dir: Path) -> str | None:
    """One sentence for an admin naming every file kept aside under ``data_dir``, or None when there is none."""
    found = set_aside_files(data_dir)
    if not found:
        return None
    names = ", ".join(p.relative_to(data_dir).as_posix() for p in found)
    return (f"Damaged data files were kept aside in {data_dir} and empty ones used instead: {names}. "
            "webui.log says why; restore what you need from them, then delete them.")
