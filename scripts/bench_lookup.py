#!/usr/bin/env python3
"""Prompt lookup: replies with and without it, beside llama.cpp's own ``llama-lookup`` on the same prompts, in one run.

Two prompts, rendered as the app renders them: a document answer that quotes its passage, and a free
story. For each, the engine's greedy decode tokens/s with prompt lookup on and off (rounds
interleaved, medians), whether the two replies are the same text, and ``llama-lookup``'s tokens/s
with ``--spec-draft-n-max`` N and 0 on the same prompt (and whether its own two texts match).
Targets (issue 26): document answer >= 1.5x with lookup, story >= 0.97x, and the engine's gain
>= 0.9x of llama-lookup's.

``llama-lookup`` is built once by ``scripts/bench.py``'s build helper into ~/.cache/webui-bench/build, from the
pinned sdist with the app's portable CPU flags, beside the other baselines, so both sides
run the same kernels. Compare ratios from one run: the machine may be shared.

    .venv/bin/python scripts/bench_lookup.py [--model PATH] [--tokens 200] [--rounds 3] [--threads 2] [--draft-max 16]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402 - its build helper makes llama-lookup beside the other baselines

PASSAGE = ("The reading room of the Hallam Library opens at nine in the morning and closes at six in the evening. "
           "Visitors must sign the register at the front desk and leave coats and bags in the lockers by the stairs. "
           "Rare books may be read only at the long oak table under the north windows, with pencils, never pens. "
           "Photographs are allowed without flash. The library is closed on public holidays and during the first "
           "week of August, when the shelves are cleaned and the catalogue is checked against the stacks.")
PROMPTS = {
    "document answer": f"Here are the library's house rules:\n\n{PASSAGE}\n\nQuote the rules above exactly, "
                       "word for word, then say which of them is about rare books.",
    "free story": "Write a long story about a dragon who learns to bake bread.",
}


# The sampling of a document answer in the app (the "Document answers (RAG)" preset), and greedy decoding.
SAMPLINGS = {
    "document": {"temperature": 0.1, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.1, "seed": 1},
    "greedy": {"temperature": 0.0, "seed": 1},
}


def lookup_flags(sampling: dict) -> list[str]:
    """llama-lookup's command-line flags for one of SAMPLINGS."""
    flags = {"temperature": "--temp", "top_p": "--top-p", "min_p": "--min-p", "repeat_penalty": "--repeat-penalty",
             "seed": "--seed"}
    return [part for key, value in sampling.items() for part in (flags[key], str(value))]


def llama_lookup(tool: Path, model: Path, prompt: str, *, tokens: int, threads: int, draft_max: int,
                 flash_attn: str, sampling: dict) -> tuple[float, str, int, int]:
    """llama-lookup's decode tokens/s, its text, and its drafted and accepted tokens (``draft_max`` 0: none)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(prompt)
    try:
        result = subprocess.run(
            [str(tool), "-m", str(model), "-f", handle.name, "-n", str(tokens), *lookup_flags(sampling), "-t", str(threads),
             "-c", "4096", "-fa", flash_attn, "--spec-draft-n-max", str(draft_max)],
            capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(handle.name)

    def number(pattern: str) -> float:
        found = re.search(pattern, result.stderr)
        return float(found.group(1)) if found else 0.0

    return (number(r"decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t/s"), result.stdout,
            int(number(r"n_drafted\s+=\s+(\d+)")), int(number(r"n_accept\s+=\s+(\d+)")))


def engine_reply(engine, prompt: str, tokens: int, sampling: dict) -> tuple[float, str, object]:
    """One reply: decode tokens/s (first to last text), its text, its stats."""
    from webui.engine import SamplingParams

    first = last = None
    text, stats = "", None
    for chunk in engine.stream_chat([{"role": "user", "content": prompt}], SamplingParams(**sampling, max_tokens=tokens)):
        if chunk.text:
            first = first or time.perf_counter()
            last = time.perf_counter()
        text += chunk.text
        stats = chunk.stats or stats
    return bench.decode_rate(stats.completion_tokens if stats else 0, first or 0, last or 0), text, stats


def same_prefix(a: str, b: str) -> bool:
    """Whether two greedy texts agree as far as the shorter goes (llama-lookup may overshoot -n)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def main() -> int:
    import llama_cpp

    from webui import hardware
    from webui.engine import Engine, LoadSettings
    from webui.engine.lookup import MAX_DRAFT
    from webui.models.embedded import embedded_model_path
    from webui.models.fit import resolve_flash_attn
    from webui.models.model_settings import flash_attn_choice, parse_flash_attn_choice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=200, help="new tokens per reply")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per prompt (medians are printed)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--draft-max", type=int, default=MAX_DRAFT, help="llama-lookup's --spec-draft-n-max")
    parser.add_argument("--sampling", choices=sorted(SAMPLINGS), default="document",
                        help="document: the app's document-answer preset (temperature 0.1, seed 1); greedy: temperature 0")
    parser.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                        help="auto: the app's default for this machine")
    args = parser.parse_args()
    sampling = SAMPLINGS[args.sampling]
    model = (args.model or embedded_model_path()).resolve()
    flash_attn = resolve_flash_attn(parse_flash_attn_choice(args.flash_attn), 0, "f16", hardware.detect())
    bin_dir, why = bench.build_llama_targets(("llama-lookup",))
    tool = bin_dir / "llama-lookup" if bin_dir is not None else None

    engines = {}
    for lookup in (False, True):
        engines[lookup] = Engine(parallel=1)
        engines[lookup].load(model, LoadSettings(n_ctx=4096, n_threads=args.threads, flash_attn=flash_attn,
                                                 prompt_lookup=lookup))
    results = []
    for name, prompt in PROMPTS.items():
        rates: dict[bool, list[float]] = {False: [], True: []}
        texts: dict[bool, str] = {}
        drafted = accepted = 0
        for lookup in (False, True):
            engine_reply(engines[lookup], prompt + " (warm-up)", 16, sampling)
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
            for lookup in (False, True):
                rate, texts[lookup], stats = engine_reply(engines[lookup], prompt, args.tokens, sampling)
                rates[lookup].append(rate)
                if lookup:
                    drafted, accepted = stats.drafted_tokens, stats.accepted_tokens
        rendered = engines[False].render([{"role": "user", "content": prompt}]).text
        reference = None
        if tool is not None:
            text = rendered.removeprefix("<bos>").removeprefix("<s>")  # llama-lookup adds the BOS itself
            plain = llama_lookup(tool, model, text, tokens=args.tokens, threads=args.threads, draft_max=0,
                                 flash_attn=flash_attn_choice(flash_attn), sampling=sampling)
            drafting = llama_lookup(tool, model, text, tokens=args.tokens, threads=args.threads,
                                    draft_max=args.draft_max, flash_attn=flash_attn_choice(flash_attn),
                                    sampling=sampling)
            reference = (plain, drafting)
        results.append((name, statistics.median(rates[False]), statistics.median(rates[True]),
                        texts[False] == texts[True], drafted, accepted, reference))
    for engine in engines.values():
        engine.unload()

    print(f"model: {model.name}; {args.tokens} new tokens, {args.sampling} sampling {sampling}; {args.threads} threads; flash attention "
          f"{flash_attn_choice(flash_attn)}; llama.cpp build: {bench.build_line(llama_cpp.llama_print_system_info().decode())}")
    print("(ratios from this one run; the machine may be shared, so compare ratios, not absolutes)")
    targets = {"document answer": 1.5, "free story": 0.97}
    for name, off, on, same, drafted, accepted, reference in results:
        gain = on / off if off else 0.0
        line = (f"{name:16} engine off {off:7.1f} t/s  on {on:7.1f} t/s  x{gain:.2f} (target >= {targets[name]})  "
                f"drafted {drafted} accepted {accepted}  same text: {'yes' if same else 'NO'}")
        if reference is not None:
            (plain, _, _, _), (drafting, _, ref_drafted, ref_accepted) = reference
            ref_gain = drafting / plain if plain else 0.0
            ref_same = same_prefix(reference[0][1], reference[1][1])
            line += (f"\n{'':16} llama-lookup n_max 0 {plain:7.1f} t/s  n_max {args.draft_max} {drafting:7.1f} t/s  "
                     f"x{ref_gain:.2f}  drafted {ref_drafted} accepted {ref_accepted}  same text: "
                     f"{'yes' if ref_same else 'NO'}  engine gain / llama-lookup's: "
                     f"{gain / ref_gain if ref_gain else 0:.2f} (target >= 0.9)")
        print(line)
    if tool is None:
        print(f"llama-lookup columns skipped: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
