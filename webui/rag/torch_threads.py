"""Run PyTorch work in a thread of its own, so its OpenMP threads end with it.

PyTorch's CPU wheel ships its own ``libgomp.so.1``, and the dynamic linker loads one library per
name, so PyTorch and llama.cpp share one OpenMP runtime in this process. That runtime counts every
thread it keeps, and once it keeps more than there are CPUs it stops spinning at barriers and
sleeps there instead: llama.cpp waits at hundreds of barriers a token. After one sentence-transformers
call in a long-lived thread (a web server's worker), its OpenMP worker stayed, and every later chat
reply on 2 cores decoded at about half speed. Work done in a thread that then ends takes its
OpenMP workers with it (the runtime frees a thread's pool when the thread exits), so llama.cpp
spins again, and PyTorch still uses all the cores while it works.

No library covers this: PyTorch's ``set_num_threads(1)`` also avoids it, but halves embedding
speed on 2 cores (23 against 38 chunks/s for all-MiniLM-L6-v2).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_own_thread(work: Callable[[], T], *, name: str = "torch-work") -> T:
    """``work()`` run in a new thread that ends when it returns; its result, or its exception, here."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]
