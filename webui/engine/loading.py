"""What every model load shares: a cheap check of the file first, and one lock for the whole process."""

from __future__ import annotations

import threading
from pathlib import Path

from webui.engine.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"

# llama-cpp-python quiets a model load by pointing the process's stdout and stderr at /dev/null and
# back (its suppress_stdout_stderr). Two loads at once in different threads (the engine loading while
# the Models tab reads a file's metadata) interleave that, and the later one restores /dev/null: the
# terminal and the app's log go silent for good. So every load in the process takes this one lock; it
# is module-level because the file descriptors it guards are process-wide.
LLAMA_LOAD_LOCK = threading.Lock()


def check_gguf_file(path: Path) -> None:
    """Cheap checks before handing a file to llama.cpp, for clearer messages than its own."""
    if not path.is_file():
        raise ModelLoadError(f"Model file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF').")
