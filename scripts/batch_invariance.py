#!/usr/bin/env python3
"""Whether llama.cpp gives a token the same logits in a pass of several tokens as in a pass of its own.

Speculative decoding (prompt lookup, a draft model) checks several tokens of one reply in one pass.
Its greedy replies equal plain decoding only if such a pass computes every token's logits bit for bit
as a one-token pass does. This decodes a text one token per pass, then N tokens per pass, in a
context made as the engine makes it (``open_model`` and ``Batcher``), and prints for each N how
many positions got identical logits, the largest difference, and how many greedy picks differ.

On 2 AVX-512 cores (llama-cpp-python 0.3.36) at the app's CPU default, flash attention off, SmolLM2
and Gemma 3 270M got identical logits at under 10% of 58 positions and another greedy pick at 2-3 of
them, at 2, 4 and 8 tokens per pass: llama.cpp's CPU matrix code takes llamafile's tinyBLAS for passes
of 2+ tokens and vector dot products for one. With flash attention on, SmolLM2 was identical; Gemma 3
only at 2 tokens per pass (its Q4_K weights take a repacked kernel from 4 rows on), and a single
token behind 512+ cached ones takes flash attention's split-KV path on 2+ threads.

    .venv/bin/python scripts/batch_invariance.py [--model PATH] [--threads 2] [--flash-attn off|on] [--rows 2,4,8]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = ("The reading room of the Hallam Library opens at nine in the morning and closes at six in the evening. "
        "Visitors must sign the register at the front desk and leave coats and bags in the lockers by the stairs. "
        "Rare books may be read only at the long oak table under the north windows, with pencils, never pens.")


def main() -> int:
    import llama_cpp
    import numpy as np

    from webui.engine import LoadSettings
    from webui.engine.scheduler import Batcher, open_model
    from webui.models.embedded import embedded_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--flash-attn", choices=["off", "on"], default="off", help="off: the app's CPU default")
    parser.add_argument("--rows", default="2,4,8", help="tokens per pass to compare with one, comma-separated")
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()
    rows = [int(n) for n in args.rows.split(",") if n.strip()]

    loaded = open_model(model, LoadSettings(n_ctx=1024, n_threads=args.threads, flash_attn=args.flash_attn == "on"),
                        parallel=1, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    try:
        tokens = loaded.tokenize(TEXT, add_bos=True, special=False)

        def logits_in_passes(per_pass: int) -> list[np.ndarray]:
            """Every position's logits, the text decoded ``per_pass`` tokens at a time after the same prefix."""
            rows = batcher.logits_in_passes(tokens, 8, per_pass)
            if rows is None:
                raise RuntimeError("llama_decode failed")
            return rows

        single = logits_in_passes(1)
        print(f"model: {model.name}; {args.threads} threads; flash attention {args.flash_attn}; {len(single)} positions; "
              f"llama.cpp build: {llama_cpp.llama_print_system_info().decode().strip()}")
        for per_pass in rows:
            batched = logits_in_passes(per_pass)
            same = sum(np.array_equal(a, b) for a, b in zip(single, batched))
            largest = max(float(np.abs(a - b).max()) for a, b in zip(single, batched))
            picks = sum(int(a.argmax()) != int(b.argmax()) for a, b in zip(single, batched))
            print(f"{per_pass} tokens per pass: identical logits at {same}/{len(single)} positions, "
                  f"largest difference {largest:.3g}, greedy picks that differ: {picks}")
    finally:
        batcher.close()
        loaded.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
