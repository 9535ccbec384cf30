"""The sampler chain against real llama.cpp logits: cutting to a shortlist before the penalties changes no pick."""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import pytest

from webui.engine import LoadSettings, SamplingParams
from webui.engine.sampling import PENALTY_LAST_N, build_sampler, shortlist_before_penalties
from webui.engine.scheduler import Batcher, open_model


def chain(*samplers):
    built = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    for sampler in samplers:
        llama_cpp.llama_sampler_chain_add(built, sampler)
    return built


def reference(vocab, sampling: SamplingParams, *, penalties: bool = True):
    """llama-cpp-python's order, the penalties looking at the whole vocabulary (what the app did before),
    after the logit biases (first, as in llama.cpp's common sampler)."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    head = [llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, sampling.repeat_penalty,
                                                   sampling.frequency_penalty, sampling.presence_penalty)] if penalties else []
    if sampling.logit_bias:
        biases = (llama_cpp.llama_logit_bias * len(sampling.logit_bias))(
            *(llama_cpp.llama_logit_bias(t, b) for t, b in sampling.logit_bias))
        head.insert(0, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(sampling.logit_bias), biases))
    if sampling.temperature <= 0:
        return chain(*head, llama_cpp.llama_sampler_init_greedy())
    return chain(*head, llama_cpp.llama_sampler_init_top_k(sampling.top_k),
                 llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
                 llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1),
                 llama_cpp.llama_sampler_init_temp(sampling.temperature),
                 llama_cpp.llama_sampler_init_dist(sampling.seed))


@pytest.mark.parametrize("sampling", [
    SamplingParams(temperature=0.0, repeat_penalty=1.5, presence_penalty=0.5, seed=1),
    SamplingParams(temperature=0.9, repeat_penalty=1.3, frequency_penalty=0.4, top_k=20, min_p=0.0, seed=7),
    # Tokens far from the lead lifted into it, and the likely ones pushed down: the shortlist sees biased scores.
    SamplingParams(temperature=0.0, repeat_penalty=1.5, logit_bias=((17, 12.0), (19, 9.0), (30, -6.0)), seed=1),
], ids=["greedy", "seeded", "logit-bias"])
def test_the_shortlist_before_the_penalties_picks_the_same_tokens(smollm_path: Path, sampling: SamplingParams) -> None:
    assert shortlist_before_penalties(sampling) > 0, "this case takes the shortcut"
    loaded = open_model(smollm_path, LoadSettings(n_ctx=512, n_threads=1), parallel=1, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    app, ref, plain = (build_sampler(batcher.vocab, sampling), reference(batcher.vocab, sampling),
                       reference(batcher.vocab, sampling, penalties=False))
    try:
        tokens = loaded.tokenize("Write the word 'apple' many times: apple apple apple", add_bos=True, special=False)
        picks, plain_differs = [], 0
        for _ in range(60):
            array = (ctypes.c_int32 * len(tokens))(*tokens)
            assert llama_cpp.llama_decode(batcher.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))) == 0
            chosen = llama_cpp.llama_sampler_sample(app, batcher.ctx, -1)
            assert llama_cpp.llama_sampler_sample(ref, batcher.ctx, -1) == chosen, f"same pick at step {len(picks)}"
            plain_differs += llama_cpp.llama_sampler_sample(plain, batcher.ctx, -1) != chosen
            picks.append(chosen)
            tokens = [chosen]
        assert plain_differs, "the penalties changed some pick, so the comparison covered them"
    finally:
        for sampler in (app, ref, plain):
            llama_cpp.llama_sampler_free(sampler)
        batcher.close()
        loaded.close()


def test_penalties_that_can_raise_a_score_or_a_grammar_see_the_whole_vocabulary() -> None:
    assert shortlist_before_penalties(SamplingParams(repeat_penalty=0.9)) == 0
    assert shortlist_before_penalties(SamplingParams(presence_penalty=-0.5)) == 0
    assert shortlist_before_penalties(SamplingParams(grammar='root ::= "a"')) == 0
    assert shortlist_before_penalties(SamplingParams(top_k=0)) == 0
    assert shortlist_before_penalties(SamplingParams(top_k=40)) == 40 + PENALTY_LAST_N
