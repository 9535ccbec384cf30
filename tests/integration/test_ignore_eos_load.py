"""ignore_eos's banned tokens are found when the model loads, not in the first request that asks (real llama.cpp,
SmolLM2): that scan of the vocabulary ran in the engine thread and held back the request's first token."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from webui.engine import LoadSettings, SamplingParams
from webui.engine import sampling, scheduler
from webui.engine.scheduler import Batcher, Job, open_model


def test_the_first_ignore_eos_reply_runs_to_max_tokens_without_scanning_the_vocabulary(
        smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = open_model(smollm_path, LoadSettings(n_ctx=256, n_threads=2), parallel=1, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    try:
        eos = loaded.model.token_eos()
        scans: list[object] = []

        def counted_scan(vocab: object) -> tuple[int, ...]:
            scans.append(vocab)
            return sampling.end_of_generation_tokens(vocab)

        monkeypatch.setattr(scheduler, "end_of_generation_tokens", counted_scan)
        monkeypatch.setattr(sampling, "end_of_generation_tokens", counted_scan)
        prompt = loaded.tokenize("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n",
                                 add_bos=False, special=True)
        finished: dict[bool, object] = {}
        for ignore_eos in (False, True):
            out: list = []
            batcher.admit(Job(tokens=prompt, stop=(), dropped=0, cancel=threading.Event(), emit=out.append,
                              finished=lambda: None,
                              sampling=SamplingParams(temperature=0.0, max_tokens=60, ignore_eos=ignore_eos)))
            while not batcher.idle:
                batcher.step()
            finished[ignore_eos] = out[-1].stats
    finally:
        batcher.close()
        loaded.close()

    assert eos in batcher.end_of_generation  # found at load
    assert scans == []  # and no request scanned the vocabulary again
    plain, banned = finished[False], finished[True]
    assert plain.finish_reason == "stop" and plain.completion_tokens < 60  # the plain reply ends by itself
    assert banned.finish_reason == "length" and banned.completion_tokens == 60  # the banned one runs to the budget
