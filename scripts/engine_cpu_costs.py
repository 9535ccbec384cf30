#!/usr/bin/env python3
"""What the scheduler's targets can physically reach, in CPU time of one thread (robust on a shared machine).

Wall-clock benchmarks swing wildly when other work shares the cores (llama.cpp's threads wait on each
other); CPU time of a single thread does not. This prints, for a model:

- the share of a decode step spent in ``llama_decode`` versus sampling and Python (1 and 4 sequences),
  the bound on "single-user decode vs llama-bench" (llama-bench only decodes, it never samples);
- the cost of evaluating 4 different prompts together versus one, the floor for "the 4th user's first
  token within 1.5x of a lone user's" when the prompts share nothing;
- the cost of the 10th turn's new tokens at the depth of a ~2,000-token chat versus the 1st turn's,
  the floor for "10th-turn / 1st-turn time to first token".

    .venv/bin/python scripts/engine_cpu_costs.py [--model PATH] [--flash-attn]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import llama_cpp

    from webui.engine import LoadSettings, SamplingParams
    from webui.engine import scheduler
    from webui.engine.scheduler import Batcher, Job, open_model
    from webui.models.embedded import embedded_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--flash-attn", action="store_true")
    parser.add_argument("--prompt", type=int, default=42, help="tokens of each simultaneous user's prompt")
    parser.add_argument("--first-turn", type=int, default=98, help="tokens the 1st turn evaluates")
    parser.add_argument("--tenth-turn", type=int, default=138, help="new tokens the 10th turn evaluates")
    parser.add_argument("--depth", type=int, default=1707, help="tokens cached before the 10th turn")
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()
    settings = LoadSettings(n_ctx=4096, n_threads=1, n_batch=2048, flash_attn=args.flash_attn)
    loaded = open_model(model, settings, parallel=4, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    batch = llama_cpp.llama_batch_init(4096, 0, 1)
    memory = batcher.memory

    def fill(seq: int, tokens: int, start: int, at: int) -> int:
        for i in range(tokens):
            batch.token[at + i] = 200 + (start + i) % 1000
            batch.pos[at + i] = start + i
            batch.n_seq_id[at + i] = 1
            batch.seq_id[at + i][0] = seq
            batch.logits[at + i] = i == tokens - 1
        return at + tokens

    def evaluate(seqs: int, tokens: int, depth: int = 0) -> float:
        """CPU seconds to evaluate ``tokens`` for each of ``seqs`` sequences in one batch after ``depth`` cached."""
        for seq in range(seqs):
            llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)
            for start in range(0, depth, 512):
                batch.n_tokens = fill(seq, min(512, depth - start), start, 0)
                assert llama_cpp.llama_decode(batcher.ctx, batch) == 0
        end = 0
        for seq in range(seqs):
            end = fill(seq, tokens, depth, end)
        batch.n_tokens = end
        started = time.thread_time()
        assert llama_cpp.llama_decode(batcher.ctx, batch) == 0
        return time.thread_time() - started

    print(f"model: {model.name}; one thread, CPU time; flash attention {'on' if args.flash_attn else 'off'}")
    evaluate(1, 16)  # warm up
    one, four = evaluate(1, args.prompt), evaluate(4, args.prompt)
    print(f"prompts of {args.prompt} tokens: one {one * 1000:.0f} ms, four different ones together "
          f"{four * 1000:.0f} ms = x{four / one:.2f} (the 4th user's first-token floor when nothing is shared)")
    first, tenth = evaluate(1, args.first_turn), evaluate(1, args.tenth_turn, args.depth)
    same = evaluate(1, args.first_turn, args.depth)
    print(f"1st turn {args.first_turn} tokens at depth 0 {first * 1000:.0f} ms; 10th turn {args.tenth_turn} new tokens "
          f"at depth {args.depth} {tenth * 1000:.0f} ms = x{tenth / first:.2f} "
          f"({args.first_turn} tokens at that depth: x{same / first:.2f})")
    llama_cpp.llama_batch_free(batch)

    spent = [0.0]
    decode = llama_cpp.llama_decode

    def timed_decode(ctx, items):  # noqa: ANN001 - the ctypes call's own arguments
        started = time.thread_time()
        try:
            return decode(ctx, items)
        finally:
            spent[0] += time.thread_time() - started

    scheduler.llama_cpp.llama_decode = timed_decode
    try:
        for users in (1, 4):
            for index in range(users):
                tokens = loaded.tokenize(f"Write a long essay about computing, reader {index}.", add_bos=True, special=True)
                batcher.admit(Job(tokens=tokens, stop=(), sampling=SamplingParams(max_tokens=64, seed=index),
                                  dropped=0, cancel=threading.Event(), emit=lambda _: None, finished=lambda: None))
            batcher.step()  # the prompts
            spent[0], started, steps = 0.0, time.thread_time(), 0
            while not batcher.idle:
                batcher.step()
                steps += 1
            total = time.thread_time() - started
            print(f"{users} sequence(s): a decode step {spent[0] / steps * 1000:.1f} ms in llama_decode, "
                  f"{(total - spent[0]) / steps * 1000:.2f} ms sampling and Python: llama_decode's share {spent[0] / total:.3f}")
    finally:
        scheduler.llama_cpp.llama_decode = decode
        batcher.close()
        loaded.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
