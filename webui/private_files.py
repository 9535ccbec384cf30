"""The data dir kept private to the OS user running the app: folders 0700, files 0600.

It holds every user's chats and document text (Chroma, the keyword index, the log, pending uploads);
with the usual umask they were world-readable to every other account on the machine.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
TEMP_DIR_NAME = "tmp"


def make_private(data_dir: Path) -> None:
    """Create *data_dir* 0700 and take group and other access away from everything already in it.

    Also sets the process umask, so files the app and its libraries (Chroma, SQLite, Gradio) create
    from now on are private too. Does nothing on Windows, where modes mean little.
    """
    if os.name == "nt":
        data_dir.mkdir(parents=True, exist_ok=True)
        return
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    changed = 0
    for root, dirs, files in os.walk(data_dir):
        for name, private in [(root, 0o700)] + [(os.path.join(root, f), 0o600) for f in files]:
            changed += _restrict(Path(name), private)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    if changed:
        log.info("made %d files and folders under %s private to this account", changed, data_dir)


def _restrict(path: Path, private: int) -> int:
    """Drop group/other bits (keeping the owner's); 1 when the mode changed."""
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not mode & 0o077:
            return 0
        path.chmod(stat.S_IMODE(mode) & private)
        return 1
    except OSError as exc:  # a file owned by someone else: say so, keep going
        log.warning("could not make %s private: %s", path, exc)
        return 0


def fresh_temp_dir(data_dir: Path) -> Path:
    """The app's temporary folder (Gradio's uploads and outputs) under the data dir, emptied first:
    what a previous run left there were pending uploads nobody can finish."""
    temp = data_dir / TEMP_DIR_NAME
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(mode=0o700, parents=True, exist_ok=True)
    return temp


# What the app keeps in the data dir, named even before it exists, so none of it is ever served.
KNOWN_ENTRIES = ("chroma", "keyword", "history.sqlite3", "presets", "users.json", "api-keys.json",
                 "model-settings.json", "uploads", "webui.log")


def never_served(data_dir: Path) -> list[str]:
    """Everything in the data dir but the temporary folder, for Gradio's ``blocked_paths``.

    The whole data dir was blocked until the temporary folder moved inside it; Gradio must serve
    files from that one (uploads shown back, exported presets).
    """
    entries = {data_dir / name for name in KNOWN_ENTRIES}
    if data_dir.is_dir():
        entries |= {child for child in data_dir.iterdir() if child.name != TEMP_DIR_NAME}
    return sorted(str(entry) for entry in entries)
