"""The mmap box reaches llama.cpp: a model loaded with mmap is mapped from its file, one loaded without is not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from webui.engine import Engine, LoadSettings


def mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_mmap_setting_decides_whether_the_file_is_mapped(smollm_path: Path) -> None:
    seen = {}
    for use_mmap in (True, False):
        engine = Engine(parallel=1, prompt_cache_mb=0)
        engine.load(smollm_path, LoadSettings(n_ctx=256, n_threads=1, use_mmap=use_mmap))
        try:
            seen[use_mmap] = mapped(smollm_path)
        finally:
            engine.unload()
    assert seen == {True: True, False: False}
