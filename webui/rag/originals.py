"""The original bytes of every file added to a collection, kept under ``<data dir>/uploads``.

One folder per owner and collection, named readably and without collisions; each file is written
atomically, so a crash never leaves half of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from webui.rag.loaders import DocumentParseError, sanitize_file_name
from webui.rag.store import StoredCollection


def _dir_name(label: str) -> str:
    """A readable, collision-free directory name for an owner or collection name."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:40] or "shared"
    return f"{slug}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"


class OriginalFiles:
    """The uploads folder: where each collection keeps the files it was built from."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, stored: StoredCollection) -> Path:
        return self.root / _dir_name(stored.owner) / _dir_name(stored.name)

    def path(self, stored: StoredCollection, file_name: str) -> Path:
        target = self.folder(stored) / sanitize_file_name(file_name)
        # Belt and braces: sanitize_file_name already removed separators and "..".
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise DocumentParseError(f"{file_name} has a name that cannot be stored safely.")
        return target

    def keep(self, stored: StoredCollection, file_name: str, data: bytes) -> None:
        """Write the uploaded bytes atomically, replacing an older version of the file."""
        target = self.path(stored, file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def move(self, stored: StoredCollection, renamed: StoredCollection) -> None:
        """Follow a collection's rename."""
        old = self.folder(stored)
        if old.exists():
            os.replace(old, self.folder(renamed))

    def remove(self, stored: StoredCollection, file_name: str | None = None) -> None:
        """Delete one file's copy, or the whole collection's folder when ``file_name`` is None."""
        if file_name is None:
            shutil.rmtree(self.folder(stored), ignore_errors=True)
            with contextlib.suppress(OSError):  # the owner's folder too, once nothing is left in it
                self.folder(stored).parent.rmdir()
        else:
            self.path(stored, file_name).unlink(missing_ok=True)
