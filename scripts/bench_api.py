#!/usr/bin/env python3
"""What an API request costs on top of the model: the work to prepare it, and streamed decode vs raw.

``prepare``: CPU time one /v1/chat/completions request spends before its reply is queued (rendering
the chat template, tokenizing, fitting the context window, checking the grammar), measured in the
calling thread around ``services.completions.chat`` with an 18-message conversation and a JSON schema;
also how many renders, tokenizations and grammar parses that takes. Measured on a 2-core CPU box
(SmolLM2 135M, shared with other work, load average 8-11; 30 requests each, medians of two runs
interleaved): before the one prepare step (commit 9b965ff) 6.1 and 8.2 ms per request, 5.3 and
7.1 ms of it in 4 renders, 3 tokenizations and 1 grammar parse; after it 2.6 and 3.1 ms, 1.8 and
2.2 ms of it in 1 render, 1 tokenization and 1 grammar parse. The script runs against either tree.
``decode``: a streamed request through the app's HTTP API (official openai client) vs raw
llama-cpp-python, interleaved round by round so drift in machine load hits both alike. Targets:
decode tokens/s through the API >= 0.97 x raw; time to first token at most 30 ms above raw.
``tools``: what tools cost the decode, in the engine, rounds interleaved: a forced tool call (its
arguments held to the schema by a grammar) against plain text of the same length (target >= 0.9x),
and tool_choice auto whose reply is plain text (a lazy grammar that never triggers) against the same
request without tools (target >= 0.97x). The model runs with Qwen 2.5's template, so its tools take
the native (hermes) path with its lazy grammar rather than the generic JSON reply. Both are also
printed against the same prompt with ``tool_choice: none`` (the tools shown, nothing parsed or
constrained), which separates what the grammar and the parser cost from what the longer prompt (the
tools' descriptions, ~230 tokens) costs every decode step.

    .venv/bin/python scripts/bench_api.py [--part prepare|decode|tools|all] [--model PATH] [--tokens 128]
        [--rounds 3] [--threads N] [--requests 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
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


# The prepare part's request: a system prompt, eight exchanges and a question, answered in a JSON schema.
SYSTEM = "You are a careful assistant for a small orchard. Answer briefly and in plain words."
EXCHANGES = [
    (f"Question {n}: which of the {n + 3} apple trees in row {n} needs pruning first, and why?",
     f"Row {n}: the tree nearest the gate, because its branches cross and shade the others in the afternoon.")
    for n in range(8)
]
QUESTION = "Which tree should I water first tomorrow morning, and how much water does it need?"
# The same measurement of the code before the one prepare step, for the comparison line (see above).
BEFORE_ONE_PREPARE_STEP = "6.1-8.2 ms, 4 renders, 3 tokenizations, 1 grammar parse (commit 9b965ff, 2-core CPU)"
SCHEMA = {"type": "object", "properties": {"tree": {"type": "string"}, "litres": {"type": "integer"}},
          "required": ["tree", "litres"]}


@dataclass
class PrepareWork:
    """What the calling thread did to prepare one request: CPU seconds, and the calls that cost it."""

    cpu_s: float = 0.0  # the whole service call
    counted_cpu_s: float = 0.0  # inside renders, tokenizations and grammar parses
    renders: int = 0
    tokenizations: int = 0
    grammars: int = 0


def conversation() -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}]
    for question, answer in EXCHANGES:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": QUESTION}]


class CallCounter:
    """Counts (and times, in CPU seconds) the renders, tokenizations and grammar parses of one thread.

    It wraps the functions every version of the app calls for them (the chat format's ``render``, the
    loaded model's ``tokenize`` and llama.cpp's grammar sampler), so the same script measures the code
    before and after a change. Calls from other threads (the engine thread building a reply's sampler)
    are not the request's preparation and are not counted.
    """

    def __init__(self) -> None:
        self.work = PrepareWork()
        self._thread = threading.get_ident()
        self._depth = 0
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, field_name: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            if threading.get_ident() != self._thread:
                return original(*args, **kwargs)
            setattr(self.work, field_name, getattr(self.work, field_name) + 1)
            self._depth += 1
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.work.counted_cpu_s += time.thread_time() - started

        setattr(owner, name, counted)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def prepare_costs(model: Path, threads: int, ctx_size: int, requests: int) -> list[PrepareWork]:
    """Each request's preparation, through the completion service the API routes call (no HTTP)."""
    import dataclasses

    import llama_cpp

    from webui.config import Settings
    from webui.engine import Engine, LoadSettings, SamplingParams, scheduler
    from webui.hardware import HardwareInfo
    from webui.prompts import templates
    from webui.services import Services
    from webui.services.access import LOCAL_USER
    from webui.services.completions import GenerationOptions

    try:
        from webui.engine import grammar_for
    except ImportError:  # the code before the one prepare step kept it among the services
        from webui.services.completions import grammar_for

    engine = Engine(parallel=1, prompt_cache_mb=0)
    engine.load(model, LoadSettings(n_ctx=ctx_size, n_threads=threads))
    hardware = HardwareInfo(cpu_physical_cores=threads, cpu_logical_cores=threads, ram_total_mb=8192,
                            ram_available_mb=4096, gpus=(), gpu_offload_supported=False)
    sampling = SamplingParams(temperature=0, max_tokens=4, grammar=grammar_for(
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}))
    options = {"model": model.name, "sampling": sampling}
    if "max_tokens" in {f.name for f in dataclasses.fields(GenerationOptions)}:
        options["max_tokens"] = 4  # the code before the one prepare step took the budget here
    works: list[PrepareWork] = []
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(data_dir=Path(workdir) / "data", models_dir=Path(workdir) / "models", offline=True)
        services = Services(settings, hardware, engine)
        for index in range(requests + 1):  # the first one warms caches (Jinja, the vocabulary) and is not kept
            counter = CallCounter()
            counter.wrap(templates.ChatFormat, "render", "renders")
            counter.wrap(scheduler.LoadedModel, "tokenize", "tokenizations")
            counter.wrap(llama_cpp, "llama_sampler_init_grammar", "grammars")
            try:
                started = time.thread_time()
                generation = services.completions.chat(LOCAL_USER, conversation(), GenerationOptions(**options))
                counter.work.cpu_s = time.thread_time() - started
            finally:
                counter.restore()
            for _ in generation.chunks:  # a few tokens, so the engine is idle when the next one is timed
                pass
            if index:
                works.append(counter.work)
    engine.unload()
    return works


def report_prepare(model: Path, works: list[PrepareWork]) -> None:
    last = works[-1]
    print(f"prepare: {model.name}, {len(conversation())} messages + JSON schema, {len(works)} requests (medians)")
    print(f"  CPU per request        {statistics.median(w.cpu_s for w in works) * 1000:7.2f} ms in the service call, "
          f"{statistics.median(w.counted_cpu_s for w in works) * 1000:6.2f} ms of it rendering, tokenizing and "
          "parsing grammars")
    print(f"  calls per request      {last.renders} renders, {last.tokenizations} tokenizations, "
          f"{last.grammars} grammar parses")
    print(f"  before one prepare step {BEFORE_ONE_PREPARE_STEP}")


def decode(model: Path, args: argparse.Namespace) -> None:
    """Streamed decode through the app's HTTP API vs raw llama-cpp-python, round by round."""
    import openai
    from llama_cpp import Llama

    from tests.support.app_server import running_app

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


TOOL_RATIO_TARGETS = {"forced": 0.9, "auto": 0.97}
TOOL_QUESTION = "Look up the weather for Paris, Lyon and Marseille for the next three days."
BENCH_TOOL_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "units": {"enum": ["celsius", "fahrenheit"]},
    "notes": {"type": "string", "maxLength": 60}}, "required": ["city", "days", "units", "notes"], "additionalProperties": False}


def tools_cost(model: Path, args: argparse.Namespace) -> None:
    """Decode tokens/s with tools (forced call; auto answered in text) vs without, in the engine."""
    from webui.engine import Engine, LoadSettings, PromptRequest, SamplingParams
    from webui.prompts.toolcalls import ToolChoice, ToolRequest, ToolSpec

    template = (ROOT / "tests" / "fixtures" / "chat_templates" / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    engine = Engine()
    engine.load(model, LoadSettings(n_ctx=args.ctx_size, n_threads=args.threads, chat_format=template))
    weather = ToolSpec("get_weather", "The weather forecast for a city.", BENCH_TOOL_SCHEMA)
    greedy = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=args.tokens)

    def run(question: str, tools: ToolRequest | None, sampling: SamplingParams):
        fitted = engine.prepare(PromptRequest(sampling, messages=({"role": "user", "content": question},),
                                              tools=tools, strict=True))
        stats = calls = None
        for chunk in engine.stream(fitted):
            calls = calls or chunk.tool_calls
            stats = chunk.stats or stats
        return stats, calls

    rates: dict[str, list[tuple[float, float]]] = {"forced": [], "auto": [], "forced-none": [], "auto-none": []}
    shown_only = ToolRequest((weather,), ToolChoice("none"))
    run(TOOL_QUESTION, None, replace(greedy, max_tokens=8))  # warm-up
    for round_number in range(1, args.rounds + 1):
        forced, calls = run(TOOL_QUESTION, ToolRequest((weather,), ToolChoice("required")), greedy)
        same_length = replace(greedy, max_tokens=forced.completion_tokens, ignore_eos=True)
        plain, _ = run(TOOL_QUESTION, None, same_length)
        plain_shown, _ = run(TOOL_QUESTION, shown_only, same_length)
        rates["forced"].append((forced.tokens_per_s, plain.tokens_per_s))
        rates["forced-none"].append((forced.tokens_per_s, plain_shown.tokens_per_s))
        auto, auto_calls = run(PROMPT, ToolRequest((weather,)), replace(greedy, ignore_eos=True))
        bare, _ = run(PROMPT, None, replace(greedy, ignore_eos=True))
        bare_shown, _ = run(PROMPT, shown_only, replace(greedy, ignore_eos=True))
        rates["auto"].append((auto.tokens_per_s, bare.tokens_per_s))
        rates["auto-none"].append((auto.tokens_per_s, bare_shown.tokens_per_s))
        print(f"round {round_number}: forced call {forced.completion_tokens} tokens {forced.tokens_per_s:.1f}/s "
              f"({len(calls or ())} calls) vs plain {plain.completion_tokens} tokens {plain.tokens_per_s:.1f}/s "
              f"(tools shown {plain_shown.tokens_per_s:.1f}/s); auto {auto.completion_tokens} tokens "
              f"{auto.tokens_per_s:.1f}/s ({len(auto_calls or ())} calls) vs no tools {bare.tokens_per_s:.1f}/s "
              f"(tools shown {bare_shown.tokens_per_s:.1f}/s)", flush=True)
    engine.unload()
    print(f"model: {model.name} with Qwen 2.5's template (hermes tools); greedy; {args.rounds} rounds (medians), "
          f"{args.threads} threads")
    for kind, label in (("forced", "forced tool call vs plain text of its length"),
                        ("auto", "tool_choice auto answered in text vs no tools"),
                        ("forced-none", "forced call vs the same prompt, tool_choice none"),
                        ("auto-none", "auto in text vs the same prompt, tool_choice none")):
        with_tools = statistics.median(a for a, _ in rates[kind])
        without = statistics.median(b for _, b in rates[kind])
        ratio = with_tools / without if without else 0.0
        target = TOOL_RATIO_TARGETS.get(kind)
        verdict = f"(target >= {target}) {'ok' if ratio >= target else 'MISSED'}" if target else "(grammar and parser only)"
        print(f"{label:52} {with_tools:7.1f} vs {without:7.1f} tokens/s  ratio {ratio:.3f} {verdict}")


def main() -> int:
    from webui.models.embedded import embedded_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("prepare", "decode", "tools", "all"), default="all")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40, help="requests timed by the prepare part")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-size", type=int, default=2048)
    args = parser.parse_args()
    model = (args.model or embedded_model_path()).resolve()
    if args.part in ("prepare", "all"):
        report_prepare(model, prepare_costs(model, args.threads, args.ctx_size, args.requests))
    if args.part in ("decode", "all"):
        decode(model, args)
    if args.part in ("tools", "all"):
        tools_cost(model, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
