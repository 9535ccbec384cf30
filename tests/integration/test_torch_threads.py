"""PyTorch's OpenMP threads end with each embedding call, so they never slow llama.cpp down afterwards.

PyTorch and llama.cpp share one OpenMP runtime in this process (see webui/rag/torch_threads.py);
a worker thread it keeps after an embedding made every later reply decode at about half speed on
2 cores. Counting the process's threads shows whether a worker stayed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import llama_cpp  # llama.cpp's OpenMP runtime is loaded first, as in the app
import torch
torch.set_num_threads(2)  # a worker thread to leave behind, even on a one-CPU machine
from webui.rag.embeddings import Embedder

import time

def threads():
    # the thread count once it stops changing: a freed pool's threads end a moment later
    count, since, deadline = len(os.listdir("/proc/self/task")), time.monotonic(), time.monotonic() + 10
    while time.monotonic() - since < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = len(os.listdir("/proc/self/task"))
        if now != count:
            count, since = now, time.monotonic()
    return count

embedder = Embedder()
embedder.embed(["load the model"])  # loading starts threads of its own that stay; they are counted from here
passages = ["a passage of some length about llamas and their wool " * 8] * 64
before = threads()
embedder.embed(passages)
after_app = threads()
# The same call in this long-lived thread, as the app made it before: OpenMP gives this thread a worker
# that stays. It is new only if no earlier call left one behind in this thread's pool.
embedder._load().encode(passages)
after_direct = threads()
print(json.dumps({"before": before, "after_app": after_app, "after_direct": after_direct}))
"""


def test_an_embedding_call_leaves_no_openmp_thread_behind_where_a_direct_call_does() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # no tokenizer threads
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["after_app"] == counts["before"], counts
    # Had the app's calls run in this thread, their worker would be here already and the direct call would
    # add none; it adds one, which stays (what slowed llama.cpp), so the app's calls left none.
    assert counts["after_direct"] == counts["after_app"] + 1, counts
