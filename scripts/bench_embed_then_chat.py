#!/usr/bin/env python3
"""Chat decode speed before and after the app embeds documents, in one process as the app runs them.

PyTorch (sentence-transformers) and llama.cpp share one OpenMP runtime; a worker thread that PyTorch
keeps makes that runtime stop spinning at llama.cpp's barriers (see webui/rag/torch_threads.py).
This prints single-user decode tokens/s of the engine three times in one run, with ratios:

- before anything is embedded;
- after the app's Embedder embedded passages (each call in a thread of its own);
- after the same sentence-transformers call made directly in this long-lived thread (as the app made
  it before: its OpenMP worker stays).

    .venv/bin/python scripts/bench_embed_then_chat.py [--model PATH] [--threads N] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import median_decode, reply  # noqa: E402 - the engine benchmark's own timing

PASSAGES = [f"Passage {i}: llamas are kept for their wool, which is soft and light and has no lanolin. " * 6
            for i in range(128)]


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from webui.engine import Engine, LoadSettings
    from webui.models.embedded import embedded_model_path
    from webui.rag.embeddings import Embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()
    engine = Engine(parallel=1, prompt_cache_mb=0)
    engine.load(model, LoadSettings(n_ctx=2048, n_threads=args.threads))

    reply(engine, "Say hello.", 16, 1)  # warm up
    before = median_decode(engine, args.tokens)
    embedder = Embedder()
    embedder.embed(PASSAGES)
    after_app = median_decode(engine, args.tokens)
    embedder._load().encode(PASSAGES)  # noqa: SLF001 - the direct call this benchmark compares with
    after_direct = median_decode(engine, args.tokens)
    engine.unload()
    print(f"model: {model.name}; {args.threads} threads; {args.tokens} new tokens; decode tokens/s, medians of 3")
    print(f"before any embedding                      {before:7.1f}")
    print(f"after the app embedded {len(PASSAGES)} passages         {after_app:7.1f}   ratio {after_app / before:.2f}")
    print(f"after embedding in this thread (old way)  {after_direct:7.1f}   ratio {after_direct / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
