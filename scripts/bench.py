#!/usr/bin/env python3
"""Chat speed, raw llama-cpp-python vs the running app, measured side by side in one run.

Prints decode tokens/s and time to first token for both, and their ratio. Targets: the app's
decode rate >= 0.95 x raw; the app's time to first token within 100 ms of raw.

Team mode (continuous batching): aggregate tokens/s for 1, 2, 4 and 8 simultaneous users beside
llama.cpp's own ``llama-batched-bench`` at as many sequences (target at 4: >= 0.85x), how long the
last user waited for a first token (target at 4: within 1.5x of a lone user's), and the time to
first token on the 10th turn of a ~2,000-token conversation divided by that on the 1st (target
<= 1.2), for one conversation and for two taking turns (each keeps its KV cache), beside llama-bench's
own ratio for as many new prompt tokens behind as many cached ones (``-d``). Raw single-sequence
decode is also compared with ``llama-bench`` tg128 (target: app >= 0.9x).

``llama-batched-bench`` and ``llama-bench`` are built once into ~/.cache/webui-bench from the
vendored llama.cpp of the pinned llama-cpp-python sdist, with the app's portable CPU flags
(``GGML_NATIVE=off``: AVX2 without the CPU-specific extras that die with SIGILL on some VMs). If the
sdist cannot be fetched or built, those columns are skipped with a message. The targets are set on
Gemma 3 270M (``--model``), where batching pays on 2 cores.

Time to first token is reported twice, raw beside the app: on a new prompt (~500 tokens that nothing
cached shares) and on the next turn of that conversation (its prefix already in the KV cache).
The raw model and llama.cpp's tools get the GPU layers the app's model has, read from its /status,
and the llama.cpp build's CPU variant and features are printed beside the figures.

    .venv/bin/python scripts/bench.py [--model PATH] [--tokens 128] [--rounds 3] [--users 1,2,4,8] [--turns 10]
        [--only decode,ttft,users,turns,baselines]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

LLAMA_CPP_VERSION = "0.3.36"  # the pinned llama-cpp-python, whose vendored llama.cpp the baselines build
CACHE = Path(os.environ.get("WEBUI_BENCH_CACHE", Path.home() / ".cache" / "webui-bench"))
PROMPT = "Write a long, detailed essay about the history of computing, from the abacus to modern chips."
SEED = 1234
TEMPERATURE = 0.7
FOLLOW_UP = "Now say the same in three short sentences."
PARTS = ("decode", "ttft", "users", "turns", "baselines")  # what --only may pick


@dataclass
class Run:
    tokens: int
    ttft_s: float
    decode_tok_s: float


def decode_rate(tokens: int, first_at: float, last_at: float) -> float:
    return (tokens - 1) / (last_at - first_at) if tokens > 1 and last_at > first_at else 0.0


class AppClient:
    """A lean client of the app's streaming ``chat`` endpoint over Gradio's queue protocol (HTTP + SSE).

    gradio_client polls its message queue every 50 ms, which would be charged to the app; this
    client reads each server-sent event as it arrives, as a browser does. ``fn_index`` from another
    client skips reading the app's config (200 kB, ~20 ms of the app's CPU): a browser reads it once
    per page, not per message, so simultaneous users must not each fetch it while the others decode.
    """

    def __init__(self, url: str, fn_index: int | None = None) -> None:
        import httpx

        self._http = httpx.Client(base_url=url, timeout=300)
        # One session for all of this client's requests, as a browser tab (or gradio_client) has: the app
        # builds a session's state of every component once (~20 ms of its event loop), not per message.
        self._session = uuid.uuid4().hex
        if fn_index is None:
            dependencies = self._http.get("/config").json()["dependencies"]
            fn_index = next(d["id"] for d in dependencies if d.get("api_name") == "chat")
        self.fn_index = fn_index

    def stream(self, message: str, max_tokens: int, seed: int, history: list | None = None):
        """Yield the reply text each time it grows."""
        self._http.post("/gradio_api/queue/join", json={
            "data": [message, "", max_tokens, TEMPERATURE, seed, history], "fn_index": self.fn_index,
            "session_hash": self._session, "event_data": None, "trigger_id": None,
        }).raise_for_status()
        text = ""
        with self._http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self._session}) as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("msg") == "process_generating":
                    value = event["output"]["data"][0]
                    text = value if isinstance(value, str) else apply_diff(text, value)
                    yield text
                elif event.get("msg") == "process_completed":
                    if not event.get("success", True):
                        raise RuntimeError(f"the app failed: {event.get('output')}")
                    return


def apply_diff(text: str, operations: list) -> str:
    """Gradio streams a growing string as diff operations on the previous value."""
    for action, _path, value in operations:
        text = text + value if action == "append" else value if action == "replace" else text
    return text


def rendered_prompt(llm, model: Path, messages: list[dict[str, str]] | None = None):
    """The prompt exactly as the app renders it (a GGUF without a template, like Gemma 3 270M's, would
    otherwise get llama-cpp-python's own fallback format and a different, often empty, reply)."""
    from webui.prompts.templates import resolve_chat_format

    def token_text(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", "ignore") if token >= 0 else ""

    chat_format = resolve_chat_format(dict(llm.metadata or {}), model_name=model.name,
                                      bos_token=token_text(llm.token_bos()), eos_token=token_text(llm.token_eos()))
    return chat_format.render(messages or [{"role": "user", "content": PROMPT}])


def raw_run(llm, rendered, max_tokens: int) -> Run:
    """Straight llama-cpp-python on the same rendered prompt, streamed, no app in between."""
    return raw_reply(llm, rendered, max_tokens)[0]


def rendered_tokens(llm, rendered) -> list[int]:
    """The rendered prompt's tokens, as the app tokenizes it (special tokens parsed, BOS only if missing)."""
    return llm.tokenize(rendered.text.encode("utf-8"), add_bos=not rendered.added_special, special=True)


def raw_reply(llm, rendered, max_tokens: int) -> tuple[Run, str]:
    """:func:`raw_run` with the reply's text (the next turn of a conversation needs it)."""
    started = time.perf_counter()
    first_at = last_at = None
    text = ""
    tokens_in = rendered_tokens(llm, rendered)
    for chunk in llm.create_completion(
        prompt=tokens_in, max_tokens=max_tokens, temperature=TEMPERATURE, stop=list(rendered.stop) or None,
        top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1, seed=SEED, stream=True,
    ):
        piece = chunk["choices"][0].get("text") or ""
        if piece:
            first_at = first_at or time.perf_counter()
            last_at = time.perf_counter()
            text += piece
    tokens = len(llm.tokenize(text.encode(), add_bos=False, special=True))
    return Run(tokens, (first_at or started) - started, decode_rate(tokens, first_at or 0, last_at or 0)), text


def app_run(client: AppClient, llm, max_tokens: int) -> Run:
    """The same request through the running app's streaming `chat` endpoint, timed by the client."""
    return app_reply(client, llm, PROMPT, max_tokens)[0]


def app_reply(client: AppClient, llm, message: str, max_tokens: int,
              history: list[dict[str, str]] | None = None) -> tuple[Run, str]:
    """:func:`app_run` for any message and history, with the reply's text."""
    started = time.perf_counter()
    first_at = last_at = None
    text = ""
    for text_so_far in client.stream(message, max_tokens, SEED, history):
        if text_so_far and text_so_far != text:
            now = time.perf_counter()
            first_at = first_at or now
            last_at = now
            text = text_so_far
    tokens = len(llm.tokenize(text.encode(), add_bos=False, special=True))
    return Run(tokens, (first_at or started) - started, decode_rate(tokens, first_at or 0, last_at or 0)), text


def new_prompt(label: str, words: int = 120) -> str:
    """A question after ~500 tokens of notes, opened by ``label``: no earlier request shares more of it
    than the chat template's first tokens, so its time to first token pays for the whole prompt."""
    notes = " ".join(f"item{(k * 37 + len(label)) % 997}" for k in range(words))
    return f"{label}. Here are my notes: {notes}. {PROMPT}"


@dataclass
class FirstTokens:
    """Time to first token of one round, raw and through the app, new prompt and cached prefix."""

    raw_new: float
    app_new: float
    raw_cached: float
    app_cached: float
    new_tokens: int  # the new prompt, rendered
    cached_tokens: int  # the next turn's whole prompt, rendered (most of it the cached prefix)


def first_token_round(client: AppClient, llm, model: Path, max_tokens: int = 24) -> FirstTokens:
    """One new conversation and its second turn, raw then through the app.

    The second turn's prompt starts with the first turn and its reply, which both sides still hold
    in their KV cache (llama-cpp-python reuses the longest common prefix; the app keeps the slot).
    """
    first = new_prompt(f"Reader {uuid.uuid4().hex[:8]}")
    opening = [{"role": "user", "content": first}]
    rendered_new = rendered_prompt(llm, model, opening)
    raw_new, raw_text = raw_reply(llm, rendered_new, max_tokens)
    follow = opening + [{"role": "assistant", "content": raw_text}, {"role": "user", "content": FOLLOW_UP}]
    rendered_follow = rendered_prompt(llm, model, follow)
    raw_cached, _ = raw_reply(llm, rendered_follow, max_tokens)
    app_new, app_text = app_reply(client, llm, first, max_tokens)
    app_cached, _ = app_reply(client, llm, FOLLOW_UP, max_tokens,
                              opening + [{"role": "assistant", "content": app_text}])
    return FirstTokens(raw_new.ttft_s, app_new.ttft_s, raw_cached.ttft_s, app_cached.ttft_s,
                       len(rendered_tokens(llm, rendered_new)), len(rendered_tokens(llm, rendered_follow)))


@dataclass(frozen=True)
class Offload:
    """Where the app runs its model: GPU layers (-1: all) and flash attention ("auto", "on" or "off").

    The raw model and llama.cpp's tools run with the same, or their columns would not compare: the
    tools' own flash-attention default is auto, which on the CPU turns it on where the app has it off.
    """

    gpu_layers: int = 0
    flash_attn: str = "off"

    @classmethod
    def from_status(cls, status: dict) -> Offload:
        """What the app loaded, from its ``/status`` JSON."""
        model = status.get("model") if isinstance(status, dict) else None
        layers = model.get("n_gpu_layers") if isinstance(model, dict) else None
        if isinstance(layers, bool) or not isinstance(layers, int):
            raise ValueError(f"the app's /status names no loaded model's n_gpu_layers: {status!r}")
        from webui.models.model_settings import FLASH_ATTN_CHOICES

        flash_attn = model.get("flash_attn")
        if flash_attn not in FLASH_ATTN_CHOICES:
            raise ValueError(f"the app's /status names no loaded model's flash_attn: {status!r}")
        return cls(layers, flash_attn)

    def tool_args(self) -> list[str]:
        """``-ngl`` and ``-fa`` for llama-bench and llama-batched-bench (whose -ngl takes no -1: 999 is all)."""
        return ["-ngl", str(999 if self.gpu_layers < 0 else self.gpu_layers), "-fa", self.flash_attn]


def parse_parts(text: str | None) -> tuple[str, ...]:
    """``--only decode,users``: the parts to run, in the order of PARTS; all when empty."""
    wanted = [p.strip() for p in (text or "").split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return tuple(p for p in PARTS if not wanted or p in wanted)


def build_line(system_info: str) -> str:
    """The loaded llama.cpp's CPU variant and the features it reports (``llama_print_system_info``)."""
    from webui.hardware import llama_cpu_variant

    enabled = [name for name, value in re.findall(r"([A-Za-z0-9_]+) = (\S+)", system_info) if value == "1"]
    return f"{llama_cpu_variant(system_info) or 'not x86'} [{' '.join(enabled) or system_info.strip()}]"


def reader_question(run: int, reader: int) -> str:
    """A simultaneous user's question: ``PROMPT`` (cached by the warm-up) then its own run and reader number."""
    return f"{PROMPT} (run {run}, reader {reader})"


def concurrent_users(client_factory, users: int, max_tokens: int):
    """``users`` clients ask at once; returns each result, the span of the run, and the last user's wait.

    Every run's questions are new (``PROMPT`` then a reader's number in that run), so a lone user and
    each of four find the same in the app's cache: the shared start that the warm-up left there.
    """
    clients = [client_factory() for _ in range(users)]
    for client in clients:  # each user has the page open and has asked before: connecting is not part of the run
        list(client.stream(PROMPT, 1, SEED))

    def one(index: int) -> tuple[float, float, float, str]:
        client = clients[index]
        submitted = time.perf_counter()
        first_at = None
        text = ""
        for text in client.stream(reader_question(users, index + 1), max_tokens, SEED + index):
            if text and first_at is None:
                first_at = time.perf_counter()
        return submitted, first_at or time.perf_counter(), time.perf_counter(), text

    with concurrent.futures.ThreadPoolExecutor(users) as pool:
        results = list(pool.map(one, range(users)))
    started = min(r[0] for r in results)
    finished = max(r[2] for r in results)
    first_token = min(r[1] for r in results)
    last_wait = max(r[1] - r[0] for r in results)
    return results, started, finished, first_token, last_wait


def conversation_ttfts(client, turns: int, conversations: int, label: str,
                       filler_words: int = 28) -> tuple[list[list[float]], list[dict[str, str]]]:
    """TTFT per turn for ``conversations`` conversations taking turns; each turn adds ~200 tokens.

    Every question has as many tokens as the others (three-digit words), so the last turn's first
    token costs more than the first's only by what the longer context costs. Also returns the last
    turn's messages of the first conversation, for the llama-bench baseline at that depth.
    """
    histories: list[list[dict[str, str]]] = [[] for _ in range(conversations)]
    ttfts: list[list[float]] = [[] for _ in range(conversations)]
    last_turn: list[dict[str, str]] = []
    for turn in range(turns):
        for index, history in enumerate(histories):
            # ``label`` keeps runs apart: a first turn must not find its prompt cached by an earlier run.
            question = (f"{label} conversation {index}, question {turn}: " + " ".join(
                f"word{100 + (turn * 31 + index * 7 + k) % 900}" for k in range(filler_words)) + ". Summarise that.")
            if index == 0:
                last_turn = history + [{"role": "user", "content": question}]
            submitted = time.perf_counter()
            first_at = None
            text = ""
            for text in client.stream(question, 64, SEED, history):
                if text and first_at is None:
                    first_at = time.perf_counter()
            ttfts[index].append((first_at or time.perf_counter()) - submitted)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
    return ttfts, last_turn


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_share(pid: int, seconds: float = 5.0) -> float | None:
    """The share of one core the app uses with nobody asking: what it takes from llama.cpp's threads
    during every reply too (its web server's polling)."""
    before = process_cpu_seconds(pid)
    time.sleep(seconds)
    after = process_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds


def median_turns(rounds: list[list[list[float]]]) -> list[list[float]]:
    """Per conversation and turn, the median over rounds of ``conversation_ttfts``' times."""
    return [[statistics.median(r[c][t] for r in rounds) for t in range(len(rounds[0][c]))]
            for c in range(len(rounds[0]))]


def simultaneous_new_tokens(llm, model: Path) -> int:
    """The prompt tokens each simultaneous user's question adds to what the warm-up left cached."""
    from webui.engine.policy import common_prefix

    warm = rendered_tokens(llm, rendered_prompt(llm, model, [{"role": "user", "content": PROMPT}]))
    asked = rendered_tokens(llm, rendered_prompt(llm, model, [{"role": "user", "content": reader_question(4, 1)}]))
    return len(asked) - common_prefix(warm, asked)


# The app wheel's portable CPU flags, and nothing that reaches the network: no curl or OpenSSL, and the
# server's web page neither built with npm nor downloaded (LLAMA_USE_PREBUILT_UI fetches it from a bucket).
LLAMA_CMAKE_FLAGS = ("-DGGML_NATIVE=off", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                     "-DLLAMA_BUILD_EXAMPLES=ON", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF",
                     "-DLLAMA_USE_PREBUILT_UI=OFF", "-DCMAKE_BUILD_TYPE=Release")


def build_llama_targets(targets: tuple[str, ...]) -> tuple[Path | None, str]:
    """llama.cpp programs (``llama-bench``, ``llama-server``, ``llama-lookup``...) from the pinned sdist: (bin dir,
    or None and why).

    Built once into the bench cache with the app's CPU flags; never ``GGML_NATIVE=on``, which dies with
    SIGILL on VMs whose cpuinfo lists instructions they do not run. A target missing from an earlier
    build is added to it (the configure step is repeated; the ggml libraries already built are kept).
    """
    bin_dir = CACHE / "build" / "bin"
    if all((bin_dir / target).exists() for target in targets):
        return bin_dir, "cached"
    if not shutil.which("cmake"):
        return None, "cmake is not installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
    source = CACHE / f"llama_cpp_python-{LLAMA_CPP_VERSION}" / "vendor" / "llama.cpp"
    steps = []
    if not sdist.exists():
        steps.append([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                      f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", str(CACHE)])
    if not source.exists():
        steps.append(["tar", "xzf", str(sdist), "-C", str(CACHE)])
    steps.append(["cmake", "-S", str(source), "-B", str(CACHE / "build"), *LLAMA_CMAKE_FLAGS])
    steps.append(["cmake", "--build", str(CACHE / "build"), "-j", str(os.cpu_count() or 2), "--target", *targets])
    print(f"building {' and '.join(targets)} into {CACHE} (once; several minutes)...", flush=True)
    with (CACHE / "build.log").open("a") as build_log:
        for step in steps:
            if subprocess.run(step, stdout=build_log, stderr=subprocess.STDOUT).returncode != 0:
                return None, f"'{' '.join(step[:3])} ...' failed; see {CACHE / 'build.log'}"
    return bin_dir, "built"


def llama_tools() -> tuple[Path | None, str]:
    """``llama-batched-bench`` and ``llama-bench``, this script's baselines (see :func:`build_llama_targets`)."""
    return build_llama_targets(("llama-batched-bench", "llama-bench"))


def jsonl(output: str) -> list[dict]:
    rows = []
    for line in output.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in rows if isinstance(r, dict)]


def batched_bench_rows(bin_dir: Path, model: Path, threads: int, prompt_tokens: int, tokens: int,
                       users: list[int], offload: Offload) -> list[dict]:
    """llama-batched-bench's JSON rows: each number of sequences with its prompt, generation and total times."""
    ctx = max(users) * (prompt_tokens + tokens) + 64
    result = subprocess.run(
        [str(bin_dir / "llama-batched-bench"), "-m", str(model), "-c", str(ctx), "-b", "2048", "-ub", "512",
         "-npp", str(prompt_tokens), "-ntg", str(tokens), "-npl", ",".join(map(str, users)), "-t", str(threads),
         *offload.tool_args(), "--output-format", "jsonl"],
        capture_output=True, text=True, timeout=1800)
    return [r for r in jsonl(result.stdout) if "pl" in r]


def batched_bench(bin_dir: Path, model: Path, threads: int, prompt_tokens: int, tokens: int,
                  users: list[int], offload: Offload = Offload()) -> dict[int, float]:
    """llama.cpp's own aggregate generated tokens/s (prompt time included) at each number of sequences."""
    rows = batched_bench_rows(bin_dir, model, threads, prompt_tokens, tokens, users, offload)
    return {int(r["pl"]): r["pl"] * r["tg"] / r["t"] for r in rows if r.get("t")}


def batched_prompt_floor(bin_dir: Path, model: Path, threads: int, new_tokens: int, users: list[int],
                         offload: Offload = Offload()) -> dict[int, float]:
    """llama.cpp's own time for N prompts of ``new_tokens`` evaluated together, over one such prompt alone.

    The floor under the last simultaneous user's first-token ratio: even when all N reach the engine
    in one step, the last first token waits for all N prompts.
    """
    rows = batched_bench_rows(bin_dir, model, threads, new_tokens, 1, sorted(set(users) | {1}), offload)
    t_pp = {int(r["pl"]): r["t_pp"] for r in rows if r.get("t_pp")}
    return {n: t_pp[n] / t_pp[1] for n in users if n in t_pp and t_pp.get(1)}


def llama_bench_tg(bin_dir: Path, model: Path, threads: int, tokens: int,
                   offload: Offload = Offload()) -> tuple[float | None, str]:
    """llama-bench's single-sequence decode tokens/s (tg128), and the backends its build runs on ("CPU", "CUDA")."""
    result = subprocess.run(
        [str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(tokens),
         *offload.tool_args(), "-r", "3", "-o", "jsonl"],
        capture_output=True, text=True, timeout=1800)
    rows = [r for r in jsonl(result.stdout) if r.get("n_gen")]
    return (rows[0]["avg_ts"], str(rows[0].get("backends") or "?")) if rows else (None, "?")


def llama_bench_depth(bin_dir: Path, model: Path, threads: int, new_tokens: int, depth: int,
                      offload: Offload = Offload()) -> float | None:
    """llama.cpp's own time for ``new_tokens`` of prompt behind ``depth`` cached tokens over that behind none.

    What the longer context alone costs: the floor under the app's 10th-turn / 1st-turn ratio.
    """
    result = subprocess.run(
        [str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads), "-p", str(new_tokens), "-n", "0",
         "-d", f"0,{depth}", *offload.tool_args(), "-r", "3", "-o", "jsonl"],
        capture_output=True, text=True, timeout=1800)
    speed = {int(r.get("n_depth", 0)): r["avg_ts"] for r in jsonl(result.stdout) if r.get("n_prompt") and r.get("avg_ts")}
    return speed[0] / speed[depth] if 0 in speed and depth in speed else None


def main() -> int:
    import llama_cpp
    from llama_cpp import Llama

    from tests.support.app_server import running_app
    from webui.models.embedded import embedded_model_path

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="parts (--only): decode = raw vs app decode tokens/s over --rounds; ttft = time to first token on a "
               "new prompt and on a cached prefix, raw vs app; users = 1..N simultaneous users (--users); turns = "
               "TTFT of turn --turns vs turn 1 of a long conversation; baselines = llama-bench tg128 and "
               "llama-batched-bench beside decode and users. Example of a short run: --only decode,ttft --rounds 1 "
               "--tokens 32")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per reply (decode and users)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of decode and of ttft (medians are printed)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-size", type=int, default=4096)
    parser.add_argument("--users", default="1,2,4,8", help="simultaneous users to measure, comma-separated")
    parser.add_argument("--no-baselines", action="store_true", help="skip llama-batched-bench and llama-bench")
    parser.add_argument("--turns", type=int, default=10, help="turns of the long-conversation measurement")
    parser.add_argument("--only", default="", metavar="PARTS",
                        help=f"comma-separated parts to run (default: all): {','.join(PARTS)}")
    args = parser.parse_args()
    try:
        parts = parse_parts(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    if args.no_baselines:
        parts = tuple(p for p in parts if p != "baselines")
    model = (args.model or embedded_model_path()).resolve()
    user_counts = [int(n) for n in args.users.split(",") if n.strip()] if "users" in parts else []
    bin_dir, why = llama_tools() if "baselines" in parts else (None, "not asked for (--only / --no-baselines)")

    raw_runs: list[Run] = []
    app_runs: list[Run] = []
    first_tokens: list[FirstTokens] = []
    team_rows = []
    single_ttfts: list[list[float]] = []
    last_turn: list[dict[str, str]] = []
    depth_ratio: float | None = None
    turn_new = turn_depth = 0
    interleaved_ttfts: list[list[float]] = []
    with tempfile.TemporaryDirectory() as workdir, running_app(
        Path(workdir),
        ["--model", str(model), "--offline", "--threads", str(args.threads), "--ctx-size", str(args.ctx_size),
         # two conversations taking turns need a slot each, even when --only leaves out the users part
         "--parallel", str(max(user_counts + [2 if "turns" in parts else 1])),
         "--data-dir", str(Path(workdir) / "data"), "--models-dir", str(Path(workdir) / "models")],
        timeout=600,  # a busy machine starts the app slowly
    ) as app:
        offload = Offload.from_status(app.status())  # the raw side offloads exactly what the app does
        # Llama's flash_attn is on or off: the app's auto is on where it applies (layers on a GPU)
        llm = Llama(model_path=str(model), n_ctx=args.ctx_size, n_threads=args.threads, n_gpu_layers=offload.gpu_layers,
                    flash_attn=offload.flash_attn != "off",
                    verbose=False)
        client = AppClient(app.url)
        idle_cpu = idle_cpu_share(app.process.pid)
        rendered = rendered_prompt(llm, model)
        if "decode" in parts or "ttft" in parts or user_counts:
            raw_run(llm, rendered, 16), app_run(client, llm, 16)  # warm both up: page cache, first-call costs
        if "decode" in parts:
            for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
                raw_runs.append(raw_run(llm, rendered, args.tokens))
                app_runs.append(app_run(client, llm, args.tokens))
        if "ttft" in parts:
            first_tokens = [first_token_round(client, llm, model) for _ in range(args.rounds)]
        for users in user_counts:
            results, started, finished, _, last_wait = concurrent_users(
                lambda: AppClient(app.url, client.fn_index), users, args.tokens)
            tokens = sum(len(llm.tokenize(r[3].encode(), add_bos=False, special=True)) for r in results)
            team_rows.append((users, tokens / (finished - started), last_wait, tokens))
        if "turns" in parts:  # each turn's median over --rounds new conversations: one turn's time is noisy
            rounds = [conversation_ttfts(client, args.turns, 1, f"Solo {r}") for r in range(args.rounds)]
            single_ttfts, last_turn = median_turns([ttfts for ttfts, _ in rounds]), rounds[0][1]
            interleaved_ttfts = median_turns([conversation_ttfts(client, args.turns, 2, f"Shared {r}")[0]
                                              for r in range(args.rounds)])
    prompt_tokens = len(llm.tokenize(PROMPT.encode(), add_bos=True, special=True)) + 8  # + the chat template
    batched: dict[int, float] = {}
    prompt_floor: dict[int, float] = {}
    user_new_tokens = 0
    bench_tg: float | None = None
    tool_backends = "?"
    if bin_dir is not None:
        if user_counts:
            batched = batched_bench(bin_dir, model, args.threads, prompt_tokens, args.tokens, user_counts, offload)
            user_new_tokens = simultaneous_new_tokens(llm, model)
            prompt_floor = batched_prompt_floor(bin_dir, model, args.threads, user_new_tokens, user_counts, offload)
        bench_tg, tool_backends = llama_bench_tg(bin_dir, model, args.threads, 128, offload)
        if last_turn:
            # the last question with its template is what the app evaluates; the rest is cached
            turn_new = len(rendered_tokens(llm, rendered_prompt(llm, model, last_turn[-1:])))
            turn_depth = len(rendered_tokens(llm, rendered_prompt(llm, model, last_turn))) - turn_new
            depth_ratio = llama_bench_depth(bin_dir, model, args.threads, turn_new, turn_depth, offload)
        if (user_counts and not batched) or bench_tg is None:
            why = f"the llama.cpp tools gave no figures (build in {bin_dir})"

    def median(runs: list, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    # The figures depend on the CPU variant and features of the llama.cpp build that is loaded.
    print(f"model: {model.name}; {args.tokens} new tokens, seed {SEED}, {args.rounds} rounds (medians), "
          f"{args.threads} threads; parts: {','.join(parts)}")
    print(f"llama.cpp build: {build_line(llama_cpp.llama_print_system_info().decode())}; "
          f"GPU offload {'supported' if llama_cpp.llama_supports_gpu_offload() else 'not supported'}")
    print(f"GPU layers: {offload.gpu_layers}, flash attention {offload.flash_attn} (the app's model, from /status), "
          "the same for the raw model"
          + (f" and {' '.join(offload.tool_args())} for llama-bench / llama-batched-bench (backends: "
             f"{tool_backends})" if bin_dir else ""))
    if bin_dir and offload.gpu_layers != 0 and tool_backends.upper() in ("CPU", "?"):
        print("warning: the llama.cpp tools were built for the CPU only, so their columns do not compare with "
              f"an app that offloads to the GPU; rebuild {CACHE / 'build'} with the app's GPU backend")
    print("(the machine may be shared with other work: compare ratios measured in this one run, not absolutes)")
    if idle_cpu is not None:
        print(f"the app with nobody asking uses {idle_cpu * 100:.1f}% of one core (its web server's polling)")
    if raw_runs:
        raw_rate, app_rate = median(raw_runs, "decode_tok_s"), median(app_runs, "decode_tok_s")
        raw_ttft, app_ttft = median(raw_runs, "ttft_s"), median(app_runs, "ttft_s")
        print(f"tokens generated       raw {[r.tokens for r in raw_runs]}  app {[r.tokens for r in app_runs]}")
        print(f"decode tokens/s        raw {raw_rate:8.1f}   app {app_rate:8.1f}   "
              f"ratio app/raw {app_rate / raw_rate:.3f} (target >= 0.95)")
        if bench_tg:
            print(f"decode tokens/s        llama-bench tg128 {bench_tg:8.1f}   app {app_rate:8.1f}   "
                  f"ratio app/llama-bench {app_rate / bench_tg:.3f} (target >= 0.9)")
        print(f"time to first token, the same prompt again: raw {raw_ttft * 1000:6.0f} ms  app {app_ttft * 1000:6.0f} ms  "
              f"difference {(app_ttft - raw_ttft) * 1000:+.0f} ms")
    elif bench_tg:
        print(f"decode tokens/s        llama-bench tg128 {bench_tg:8.1f} (no app figure: decode not run)")
    if bin_dir is None or (user_counts and not batched) or bench_tg is None:
        print(f"llama-bench / llama-batched-bench columns skipped: {why}")
    if first_tokens:
        rows = (("new prompt", "raw_new", "app_new", f"{first_tokens[0].new_tokens} tokens, nothing cached"),
                ("cached prefix", "raw_cached", "app_cached",
                 f"{first_tokens[0].cached_tokens} tokens, all but the last ~{first_tokens[0].cached_tokens - first_tokens[0].new_tokens} cached"))
        for label, raw_attr, app_attr, what in rows:
            raw_s, app_s = median(first_tokens, raw_attr), median(first_tokens, app_attr)
            print(f"time to first token, {label:13s} raw {raw_s * 1000:6.0f} ms  app {app_s * 1000:6.0f} ms  "
                  f"difference {(app_s - raw_s) * 1000:+5.0f} ms (target <= +100 ms)  [{what}]")
    base_rate = team_rows[0][1] if team_rows else 0
    lone_wait = team_rows[0][2] if team_rows else 0
    for users, rate, last_wait, tokens in team_rows:
        baseline = batched.get(users)
        versus = (f"  llama-batched-bench {baseline:7.1f}  ratio {rate / baseline:.3f}"
                  + (" (target >= 0.85)" if users == 4 else "")) if baseline else ""
        beside = (["target <= 1.5"] if users == 4 else []) + (
            [f"llama.cpp's own floor x{prompt_floor[users]:.2f}"] if users in prompt_floor and users > 1 else [])
        print(f"{users} simultaneous user(s)  aggregate {rate:7.1f} tokens/s ({tokens} tokens)  "
              f"x{rate / base_rate:.2f} of {team_rows[0][0]} user{versus}  last user's first token after "
              f"{last_wait:5.2f} s = x{last_wait / lone_wait:.2f} of a lone user's"
              + (f" ({', '.join(beside)})" if beside else ""))
    if batched:
        print(f"(llama-batched-bench: -npp {prompt_tokens} -ntg {args.tokens}, generated tokens over the whole run "
              "including prompt time, as the app's aggregate is)")
    if prompt_floor:
        print(f"(floor: llama-batched-bench -npp {user_new_tokens} -ntg 1, N prompts of the {user_new_tokens} tokens "
              "each user's question adds to the cached start, evaluated together, over one alone)")
    for label, ttfts in (("one conversation", single_ttfts), ("two conversations taking turns", interleaved_ttfts)):
        if not ttfts:
            continue
        ratios = [t[-1] / t[0] for t in ttfts]
        print(f"TTFT turn {args.turns} / turn 1, {label} (medians of {args.rounds} rounds): "
              + ", ".join(f"{t[-1] * 1000:.0f} ms / {t[0] * 1000:.0f} ms = {r:.2f}" for t, r in zip(ttfts, ratios))
              + " (target <= 1.2)")
    if depth_ratio:
        print(f"llama-bench, the same {turn_new} new prompt tokens behind {turn_depth} cached / behind none: "
              f"{depth_ratio:.2f} (what the longer context alone costs llama.cpp itself)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
