"""Run Python code in a child process whose address space is capped, as a small server's would be.

Why: a loader that builds gigabytes from a few kilobytes must be seen failing the way it would on
a real server (a MemoryError, or the out-of-memory killer), not by filling the test machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULT_MARK = "RESULT:"


def mapped_bytes(pid: int | None = None) -> int:
    """The address space a process (this one by default) maps now (VmSize), in bytes."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def limit_address_space(extra_bytes: int) -> None:
    """Cap this process at what it maps now plus ``extra_bytes``: a larger allocation fails."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped_bytes() + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


@contextmanager
def address_space_capped(pid: int, extra_bytes: int) -> Iterator[None]:
    """Cap a running process (the app under test) at what it maps now plus ``extra_bytes`` for
    the block, then give it back its old limit."""
    old = resource.prlimit(pid, resource.RLIMIT_AS)
    limit = mapped_bytes(pid) + extra_bytes
    resource.prlimit(pid, resource.RLIMIT_AS, (limit if old[1] == resource.RLIM_INFINITY else min(limit, old[1]), old[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, old)


def run_python(script: str, *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, str | None]:
    """Run ``script`` with ``args`` in a child Python at the project root; returns the process and
    the text the script printed after RESULT_MARK (None when it never got there)."""
    # glibc reserves 64 MB of address space for each thread's malloc arena; a cap counts those
    # reservations, not memory used, so torch's worker threads alone would exhaust it. Two arenas
    # keep the cap about the memory the code really uses.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    results = [line[len(RESULT_MARK):] for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    return done, results[-1] if results else None
