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
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "Write a long, detailed essay about the history of computing, from the abacus to modern chips."
PASSAGES = [f"Passage {i}: llamas are kept for their wool, which is soft and light and has no lanolin. " * 6
            for i in range(128)]


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from webui.engine import Engine, LoadSettings, SamplingParams
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

    def decode_rate() -> float:
        """Median decode tokens/s of three replies, timed by the engine itself."""
        rates = []
        for seed in (1, 2, 3):
            stats = None
            for chunk in engine.stream_chat([{"role": "user", "content": PROMPT}],
                                            SamplingParams(max_tokens=args.tokens, temperature=0.7, seed=seed)):
                stats = chunk.stats or stats
            rates.append((stats.completion_tokens - 1) / max(stats.total_s - stats.ttft_s, 1e-9))
        return statistics.median(rates)

    decode_rate()  # warm up
    before = decode_rate()
    embedder = Embedder()
    embedder.embed(PASSAGES)
    after_app = decode_rate()
    embedder._load().encode(PASSAGES)  # noqa: SLF001 - the direct call this benchmark compares with
    after_direct = decode_rate()
    engine.unload()
    print(f"model: {model.name}; {args.threads} threads; {args.tokens} new tokens; decode tokens/s, medians of 3")
    print(f"before any embedding                      {before:7.1f}")
    print(f"after the app embedded {len(PASSAGES)} passages         {after_app:7.1f}   ratio {after_app / before:.2f}")
    print(f"after embedding in this thread (old way)  {after_direct:7.1f}   ratio {after_direct / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
