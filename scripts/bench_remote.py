#!/usr/bin/env python3
"""Streamed decode through the app (ChatService -> router -> remote backend) vs the same server called directly.

Both send the same request (same prompt, seed and token budget) in one run, interleaved round by round
so drift in machine or server load hits both alike. Target: decode tokens/s through the app >= 0.95 x
direct. Time to first token is printed beside it.

    .venv/bin/python scripts/bench_remote.py --backend http://127.0.0.1:8080 [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
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
RATIO_TARGET = 0.95


@dataclass(frozen=True)
class Run:
    tokens: int
    ttft_s: float
    total_s: float

    @property
    def decode_tps(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.tokens - 1) / decode_s if self.tokens > 1 and decode_s > 0 else 0.0


def direct(url: str, model_id: str, max_tokens: int) -> Run:
    """The server's own stream read with plain httpx, counting events as tokens (as the app does)."""
    import httpx

    body = {"model": model_id, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "max_tokens": max_tokens, "temperature": TEMPERATURE, "seed": SEED}
    started = time.perf_counter()
    first = None
    tokens = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    first = first or time.perf_counter()
                    tokens += 1
    end = time.perf_counter()
    return Run(tokens, (first or end) - started, end - started)


def through_app(chat, max_tokens: int) -> Run:
    """ChatService.stream, as the Chat tab calls it; the consumer times what it receives."""
    from webui.engine import SamplingParams

    sampling = SamplingParams(temperature=TEMPERATURE, seed=SEED, max_tokens=max_tokens)
    started = time.perf_counter()
    first = None
    final = None
    for update in chat.stream("bench", [{"role": "user", "content": PROMPT}], system_prompt="", sampling=sampling):
        if update.text and first is None:
            first = time.perf_counter()
        final = update
    end = time.perf_counter()
    if final is None or final.error or final.stats is None:
        raise SystemExit(f"the app's reply failed: {final.error if final else 'nothing came back'}")
    return Run(final.stats.completion_tokens, (first or end) - started, end - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from webui.engine.remote import RemoteBackend
    from webui.engine.router import EngineRouter
    from webui.history import HistoryStore
    from webui.services import ChatService

    url = args.backend.rstrip("/").removesuffix("/v1")
    router = EngineRouter(None, [RemoteBackend(url)])
    models = router.remote_models()
    if not models:
        raise SystemExit(f"{url} lists no models")
    router.use_remote(models[0])
    with tempfile.TemporaryDirectory() as tmp:
        chat = ChatService(router, HistoryStore(Path(tmp) / "history.sqlite3"))
        through_app(chat, 8)  # warm both paths (connections, the server's prompt cache)
        direct(url, models[0].model_id, 8)
        app_runs, direct_runs = [], []
        for round_number in range(1, args.rounds + 1):
            app_runs.append(through_app(chat, args.tokens))
            direct_runs.append(direct(url, models[0].model_id, args.tokens))
            print(f"round {round_number}: app {app_runs[-1].decode_tps:.1f} tok/s ({app_runs[-1].tokens} tokens), "
                  f"direct {direct_runs[-1].decode_tps:.1f} tok/s ({direct_runs[-1].tokens} tokens)")
    app_tps = statistics.median(r.decode_tps for r in app_runs)
    direct_tps = statistics.median(r.decode_tps for r in direct_runs)
    app_ttft = statistics.median(r.ttft_s for r in app_runs) * 1000
    direct_ttft = statistics.median(r.ttft_s for r in direct_runs) * 1000
    ratio = app_tps / direct_tps if direct_tps else 0.0
    print(f"model: {models[0].file}")
    print(f"decode tokens/s (median of {args.rounds}): app {app_tps:.2f}, direct {direct_tps:.2f}, "
          f"ratio {ratio:.3f} (target >= {RATIO_TARGET}) {'OK' if ratio >= RATIO_TARGET else 'BELOW TARGET'}")
    print(f"time to first token (median): app {app_ttft:.0f} ms, direct {direct_ttft:.0f} ms")
    return 0 if ratio >= RATIO_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
