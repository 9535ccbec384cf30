#!/usr/bin/env python3
"""The engine's batching without the web app: decode and simultaneous users beside llama.cpp's own tools.

``scripts/bench.py`` measures through the running app (Gradio over HTTP). This drives
``webui.engine.Engine`` directly, so it runs where only the engine's packages are (a GPU box being
sized for a team) and its figures are the engine's alone. Each is printed beside its llama.cpp
baseline from the same run: single-user decode tokens/s beside ``llama-bench`` tg, the aggregate
tokens/s of 1/2/4/8 simultaneous users beside ``llama-batched-bench``, and the last user's first
token beside a lone user's.

    .venv/bin/python scripts/bench_engine.py [--model PATH] [--gpu-layers N] [--flash-attn auto|on|off]
        [--bin-dir DIR] [--tokens 128] [--users 1,2,4,8]

``--bin-dir``: llama.cpp's tools built like the loaded llama-cpp-python (for a GPU, with its backend);
by default bench.py's cached CPU build. ``LLAMA_CPP_LIB_PATH`` points llama-cpp-python at another
build of llama.cpp's libraries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402 - the llama.cpp baselines and the prompt are shared with the app's benchmark


def reply(engine, text: str, max_tokens: int, seed: int) -> dict[str, float]:
    """One streamed reply: when it was asked, its first and last text, its tokens."""
    from webui.engine import SamplingParams

    asked = time.perf_counter()
    first = last = None
    stats = None
    for chunk in engine.stream_chat([{"role": "user", "content": text}],
                                    SamplingParams(max_tokens=max_tokens, temperature=bench.TEMPERATURE, seed=seed)):
        if chunk.text:
            first = first or time.perf_counter()
            last = time.perf_counter()
        stats = chunk.stats or stats
    return {"asked": asked, "first": first or asked, "last": last or asked, "done": time.perf_counter(),
            "tokens": stats.completion_tokens if stats else 0}


def median_decode(engine, max_tokens: int) -> float:
    """Single-user decode tokens/s: the median of three replies to ``bench.PROMPT``."""
    runs = [reply(engine, bench.PROMPT, max_tokens, seed) for seed in (1, 2, 3)]
    return statistics.median(bench.decode_rate(int(r["tokens"]), r["first"], r["last"]) for r in runs)


def simultaneous(engine, users: int, max_tokens: int) -> tuple[float, float]:
    """``users`` new questions at once: aggregate tokens/s over the whole run, and the last first token's wait.

    Each question starts with ``bench.PROMPT`` (cached by the warm-up, as a team's shared start would
    be) and ends with its own run and reader number, so a lone user and each of four find the same.
    """
    results: dict[int, dict[str, float]] = {}
    start = threading.Barrier(users)

    def one(index: int) -> None:
        start.wait()
        results[index] = reply(engine, bench.reader_question(users, index + 1), max_tokens,
                               bench.SEED + index)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    span = max(r["done"] for r in results.values()) - min(r["asked"] for r in results.values())
    return sum(r["tokens"] for r in results.values()) / span, max(r["first"] - r["asked"] for r in results.values())


def main() -> int:
    import llama_cpp

    from webui import hardware
    from webui.engine import Engine, LoadSettings
    from webui.models.embedded import embedded_model_path
    from webui.models.fit import resolve_flash_attn
    from webui.models.model_settings import FLASH_ATTN_CHOICES, flash_attn_choice, parse_flash_attn_choice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--gpu-layers", type=int, default=None,
                        help="layers to offload (default: all where llama.cpp can offload, else 0)")
    parser.add_argument("--flash-attn", choices=list(FLASH_ATTN_CHOICES), default="auto",
                        help="auto (default): the app's rule, on where layers run on a GPU and off on the CPU")
    parser.add_argument("--bin-dir", type=Path, default=None, help="llama-bench and llama-batched-bench's folder")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per reply")
    parser.add_argument("--users", default="1,2,4,8", help="simultaneous users to measure, comma-separated")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-size", type=int, default=2048, help="context per conversation")
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()
    users = [int(n) for n in args.users.split(",") if n.strip()]
    can_offload = llama_cpp.llama_supports_gpu_offload()
    gpu_layers = args.gpu_layers if args.gpu_layers is not None else (-1 if can_offload else 0)
    flash_attn = resolve_flash_attn(parse_flash_attn_choice(args.flash_attn), gpu_layers, "f16", hardware.detect())
    offload = bench.Offload(gpu_layers, flash_attn_choice(flash_attn))  # for llama.cpp's tools too
    bin_dir, why = (args.bin_dir, "given") if args.bin_dir else bench.llama_tools()

    engine = Engine(parallel=max(users), prompt_cache_mb=256)
    engine.load(model, LoadSettings(n_ctx=args.ctx_size, n_gpu_layers=gpu_layers, n_threads=args.threads,
                                    flash_attn=flash_attn))
    reply(engine, bench.PROMPT, 16, bench.SEED)  # warm up, and cache the questions' shared start
    decode = median_decode(engine, args.tokens)
    team = [(n, *simultaneous(engine, n, args.tokens)) for n in users]
    # What each user's prompt holds (the chat template around the question), for llama-batched-bench's -npp
    prompt_tokens = engine.count_prompt_tokens([{"role": "user", "content": bench.reader_question(4, 1)}])
    engine.unload()

    tg = batched = None
    if bin_dir is not None:
        tg, _ = bench.llama_bench_tg(bin_dir, model, args.threads, args.tokens, offload)
        batched = bench.batched_bench(bin_dir, model, args.threads, prompt_tokens, args.tokens, users, offload)
    print(f"model: {model.name}; GPU layers {gpu_layers} (offload {'supported' if can_offload else 'not supported'}); "
          f"flash attention {offload.flash_attn}; {args.tokens} new tokens; {args.threads} threads")
    print(f"llama.cpp build: {llama_cpp.llama_print_system_info().decode().strip()}")
    print("(compare ratios measured in this one run, not absolutes: the machine may be shared)")
    versus = f"   llama-bench tg{args.tokens} {tg:8.1f}   ratio {decode / tg:.3f} (target >= 0.9)" if tg else ""
    print(f"single-user decode     engine {decode:8.1f} tokens/s{versus}")
    lone_wait = team[0][2] if team else 0.0
    for n, rate, wait in team:
        baseline = (batched or {}).get(n)
        beside = f"  llama-batched-bench {baseline:8.1f}  ratio {rate / baseline:.3f}" if baseline else ""
        print(f"{n} simultaneous user(s)  aggregate {rate:8.1f} tokens/s{beside}  last first token after "
              f"{wait * 1000:6.0f} ms = x{wait / lone_wait:.2f} of a lone user's")
    if bin_dir is None:
        print(f"llama-bench / llama-batched-bench columns skipped: {why}")
    elif gpu_layers != 0 and args.bin_dir is None:
        print("warning: bench.py's cached tools are a CPU build; pass --bin-dir with a build for this GPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
