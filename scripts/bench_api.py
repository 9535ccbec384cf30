#!/usr/bin/env python3
"""Streamed decode through the app's /v1/chat/completions (official openai client) vs raw llama-cpp-python.

Both run the same request in one process run, interleaved round by round so drift in machine load
hits both alike. Targets: decode tokens/s through the API >= 0.97 x raw; time to first token at most
30 ms above raw.

    .venv/bin/python scripts/bench_api.py [--model PATH] [--tokens 128] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed essay about the history of computing, from the abacus to modern chips."
SEED = 1234
TEMPERATURE = 0.7
RATIO_TARGET = 0.97
TTFT_OVERHEAD_TARGET_MS = 30


@dataclass
class Run:
    tokens: int
    ttft_s: float
    decode_tok_s: float


def decode_rate(tokens: int, first_at: float | None, last_at: float | None) -> float:
    if tokens <= 1 or first_at is None or last_at is None or last_at <= first_at:
        return 0.0
    return (tokens - 1) / (last_at - first_at)


def timed(pieces, llm) -> Run:
    """Time a stream of text pieces from the moment it is asked for; tokens are counted on the result."""
    started = time.perf_counter()
    first_at = last_at = None
    text = ""
    for piece in pieces:
        if piece:
            now = time.perf_counter()
            first_at = first_at or now
            last_at = now
            text += piece
    tokens = len(llm.tokenize(text.encode(), add_bos=False, special=True))
    return Run(tokens, (first_at or started) - started, decode_rate(tokens, first_at, last_at))


def raw_pieces(llm, max_tokens: int):
    for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens, temperature=TEMPERATURE,
        top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=SEED, stream=True,
    ):
        yield chunk["choices"][0]["delta"].get("content") or ""


def api_pieces(client, model: str, max_tokens: int):
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
        temperature=TEMPERATURE, top_p=0.95, seed=SEED, stream=True,
        extra_body={"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0},
    )
    for chunk in stream:
        if chunk.choices:
            yield chunk.choices[0].delta.content or ""


def main() -> int:
    import openai
    from llama_cpp import Llama

    from tests.support.app_server import running_app
    from webui.models.embedded import embedded_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-size", type=int, default=2048)
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()

    llm = Llama(model_path=str(model), n_ctx=args.ctx_size, n_threads=args.threads, verbose=False)
    raw_runs: list[Run] = []
    api_runs: list[Run] = []
    with tempfile.TemporaryDirectory() as workdir, running_app(
        Path(workdir),
        ["--model", str(model), "--offline", "--threads", str(args.threads), "--ctx-size", str(args.ctx_size),
         "--data-dir", str(Path(workdir) / "data"), "--models-dir", str(Path(workdir) / "models")],
    ) as app:
        client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="local", max_retries=0, timeout=600)
        timed(raw_pieces(llm, 16), llm), timed(api_pieces(client, model.name, 16), llm)  # warm-up
        for round_number in range(1, args.rounds + 1):
            raw_runs.append(timed(raw_pieces(llm, args.tokens), llm))
            api_runs.append(timed(api_pieces(client, model.name, args.tokens), llm))
            print(f"round {round_number}: raw {raw_runs[-1]}  api {api_runs[-1]}", flush=True)

    def median(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    raw_rate, api_rate = median(raw_runs, "decode_tok_s"), median(api_runs, "decode_tok_s")
    raw_ttft, api_ttft = median(raw_runs, "ttft_s"), median(api_runs, "ttft_s")
    ratio = api_rate / raw_rate if raw_rate else 0.0
    overhead_ms = (api_ttft - raw_ttft) * 1000
    print(f"model: {model.name}; {args.tokens} new tokens, seed {SEED}, {args.rounds} rounds (medians), "
          f"{args.threads} threads")
    print(f"tokens generated       raw {[r.tokens for r in raw_runs]}  api {[r.tokens for r in api_runs]}")
    print(f"decode tokens/s        raw {raw_rate:8.1f}   api {api_rate:8.1f}   ratio api/raw {ratio:.3f} "
          f"(target >= {RATIO_TARGET}) {'ok' if ratio >= RATIO_TARGET else 'MISSED'}")
    print(f"time to first token    raw {raw_ttft * 1000:6.0f} ms  api {api_ttft * 1000:6.0f} ms  overhead "
          f"{overhead_ms:+.0f} ms (target <= +{TTFT_OVERHEAD_TARGET_MS} ms) "
          f"{'ok' if overhead_ms <= TTFT_OVERHEAD_TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
