"""scripts/bench_serving.py's pure parts: reading GuideLLM's JSON report, the comparison table, the options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripts import loaded_script

REPO_ROOT = Path(__file__).resolve().parents[2]
# GuideLLM 0.8.1's JSON report of concurrency 2 against the app (Gemma 3 270M, 4 requests of 200 prompt and
# 16 output tokens, on the loaded 2-core box), cut down to the parts the script reads.
REPORT = Path(__file__).parent / "data" / "bench" / "guidellm-0.8.1-concurrent-2.json"


@pytest.fixture(scope="module")
def serving():
    with loaded_script("bench_serving") as module:
        yield module


def level(serving, concurrency: int, tokens_per_s: float, p50: float, p95: float):
    return serving.LevelResult(concurrency, 8, 0, tokens_per_s, p50, p95)


def test_a_guidellm_report_gives_the_levels_aggregate_tokens_and_first_token_percentiles(serving) -> None:
    (result,) = serving.read_report(REPORT)
    assert result.concurrency == 2
    assert (result.completed, result.errored) == (4, 0)
    assert result.output_tokens_per_s == pytest.approx(0.911, abs=0.001)  # GuideLLM's "Output Tokens Per Sec"
    assert result.ttft_p50_ms == pytest.approx(12711.1, abs=0.1)
    assert result.ttft_p95_ms == pytest.approx(23666.5, abs=0.1)


def test_a_missing_or_broken_report_is_named(serving, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no readable report"):
        serving.read_report(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{\"benchmarks\": [")
    with pytest.raises(ValueError, match="no readable report"):
        serving.read_report(broken)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ValueError, match="holds no benchmarks"):
        serving.read_report(empty)


def test_a_report_without_the_first_token_median_says_so(serving, tmp_path: Path) -> None:
    report = json.loads(REPORT.read_text())
    del report["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["successful"]["percentiles"]["p50"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ValueError, match="no p50 of time to first token"):
        serving.read_report(path)


def test_a_report_of_another_profile_is_refused(serving, tmp_path: Path) -> None:
    report = json.loads(REPORT.read_text())
    report["benchmarks"][0]["config"]["strategy"] = {"type_": "throughput"}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ValueError, match="not a concurrency level"):
        serving.read_report(path)


def test_the_table_marks_each_target_and_says_where_the_app_loses(serving) -> None:
    rows = [serving.Comparison(level(serving, 1, 52.0, 180, 220), level(serving, 1, 50.0, 200, 260)),
            serving.Comparison(level(serving, 4, 80.0, 400, 900), level(serving, 4, 100.0, 380, 700))]
    table = serving.comparison_table(rows).splitlines()
    one = next(line for line in table if line.split()[0] == "1")
    four = next(line for line in table if line.split()[0] == "4")
    assert one.split()[1:5] == ["52.0", "50.0", "1.04", "ok"]
    assert one.split()[5:9] == ["180", "200", "0.90", "ok"]
    assert four.split()[1:5] == ["80.0", "100.0", "0.80", "MISSED"]
    assert four.split()[5:9] == ["400", "380", "1.05", "MISSED"]
    assert four.split()[9:12] == ["900", "700", "1.29"]  # p95: shown, no target
    assert table[-1] == "the app loses at level 4: tokens/s x0.80 (-20%); level 4: TTFT p50 x1.05 (+5%)"


def test_the_table_says_when_every_target_is_met(serving) -> None:
    rows = [serving.Comparison(level(serving, 2, 70.0, 300, 400), level(serving, 2, 70.0, 300, 500))]
    table = serving.comparison_table(rows).splitlines()
    assert table[-1] == "all targets met"
    assert "ok" in table[1] and "MISSED" not in table[1]


def test_levels_are_whole_positive_numbers(serving) -> None:
    assert serving.parse_levels("1, 2,4,8") == [1, 2, 4, 8]
    for bad in ("", "1,two", "0,1"):
        with pytest.raises(ValueError, match="--levels"):
            serving.parse_levels(bad)


def test_guidellm_is_asked_for_one_concurrency_level_with_the_ggufs_own_tokenizer(serving) -> None:
    model = Path("/models/a,b/gemma-3-270m-q4_k_m.gguf")
    command = serving.guidellm_command(Path("/venv/bin/guidellm"), target="http://127.0.0.1:7860",
                                       model_name=model.name, model=model, level=4, requests=12,
                                       prompt_tokens=200, output_tokens=128, report=Path("/tmp/app-4.json"))
    options = {flag: json.loads(value) for flag, value in zip(command[2::2], command[3::2], strict=False)
               if flag.startswith("--") and value.startswith("{")}
    assert command[:2] == ["/venv/bin/guidellm", "run"]
    assert options["--backend"] == {"kind": "openai_http", "target": "http://127.0.0.1:7860",
                                    "model": "gemma-3-270m-q4_k_m.gguf"}  # GuideLLM's own requests, no extras
    assert options["--profile"] == {"kind": "concurrent", "streams": [4]}
    assert options["--constraint"] == {"kind": "max_requests", "count": 12}
    assert options["--data"] == {"kind": "synthetic_text", "prompt_tokens": 200, "output_tokens": 128}
    assert options["--tokenizer"] == {"kind": "huggingface_auto", "model": "/models/a,b",
                                      "load_kwargs": {"gguf_file": "gemma-3-270m-q4_k_m.gguf"}}
    assert options["--output"] == {"kind": "json", "path": "/tmp/app-4.json"}


def test_the_document_workload_quotes_a_passage_of_its_own_per_request_the_same_for_both_sides(serving) -> None:
    rows = serving.document_workload(level=2, requests=6, output_tokens=128)
    assert rows == serving.document_workload(level=2, requests=6, output_tokens=128), "the same prompts for both"
    assert len({row["prompt"] for row in rows}) == 6 and all(row["output_tokens_count"] == 128 for row in rows)
    assert all(row["prompt"].endswith("Quote the passage above exactly, word for word.") for row in rows)
    assert rows[0]["prompt"] != serving.document_workload(level=4, requests=1, output_tokens=128)[0]["prompt"]
    model = Path("/models/gemma-3-270m-q4_k_m.gguf")
    command = serving.guidellm_command(Path("/venv/bin/guidellm"), target="http://127.0.0.1:7860",
                                       model_name=model.name, model=model, level=2, requests=6, prompt_tokens=200,
                                       output_tokens=128, report=Path("/tmp/app-2.json"),
                                       data_file=Path("/tmp/document-prompts-2.jsonl"))
    data = json.loads(command[command.index("--data") + 1])
    assert data == {"kind": "json_file", "path": "/tmp/document-prompts-2.jsonl"}


def test_help_names_every_option() -> None:
    result = subprocess.run([sys.executable, "scripts/bench_serving.py", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    for option in ("--model", "--levels", "--requests", "--prompt-tokens", "--output-tokens", "--guidellm-venv"):
        assert option in result.stdout
