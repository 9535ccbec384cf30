"""Model loads in several threads at once leave the process's stdout and stderr as they were.

llama-cpp-python quiets each load by pointing file descriptors 1 and 2 at /dev/null and back; two
loads interleaved left them on /dev/null, and the app's terminal and log went silent for good (a
browser test saw its refusal's log line missing). See LLAMA_LOAD_LOCK.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from webui.engine import LoadSettings
from webui.engine.scheduler import open_model
from webui.models.fit import read_gguf_facts


def descriptor_identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def test_loads_in_many_threads_at_once_keep_stdout_and_stderr(smollm_path: Path) -> None:
    before = descriptor_identity(1), descriptor_identity(2), sys.stdout, sys.stderr
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def engine_loads() -> None:
        start.wait()
        for _ in range(3):
            open_model(smollm_path, LoadSettings(n_ctx=512), parallel=1, free_bytes=8 << 30).close()

    def metadata_reads(read) -> None:
        start.wait()
        for _ in range(6):
            assert read(smollm_path)

    def guarded(work, *args) -> None:
        try:
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(engine_loads,)),
               threading.Thread(target=guarded, args=(metadata_reads, read_gguf_facts)),
               threading.Thread(target=guarded, args=(metadata_reads, read_gguf_facts)),
               threading.Thread(target=guarded, args=(metadata_reads, read_gguf_facts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    after = descriptor_identity(1), descriptor_identity(2), sys.stdout, sys.stderr
    assert after == before, "a load left stdout or stderr pointing at /dev/null"
