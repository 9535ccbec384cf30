"""The sampler chain against real llama.cpp logits: cutting to a shortlist before the penalties changes no pick."""

from __future__ import annotations

import ctypes
from dataclasses import replace
from pathlib import Path

import llama_cpp
import pytest

from webui.engine import LoadSettings, SamplingParams
from webui.engine.constrained import ReplySampler
from webui.engine.sampling import PENALTY_LAST_N, build_sampler, shortlist_before_penalties, token_piece
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


def test_penalties_that_can_raise_a_score_see_the_whole_vocabulary() -> None:
    assert shortlist_before_penalties(SamplingParams(repeat_penalty=0.9)) == 0
    assert shortlist_before_penalties(SamplingParams(presence_penalty=-0.5)) == 0
    # The grammar is applied before the chain when it refuses a pick: the cut is still exact on what it allows.
    assert shortlist_before_penalties(SamplingParams(grammar='root ::= "a"')) == shortlist_before_penalties(SamplingParams()) > 0
    assert shortlist_before_penalties(SamplingParams(top_k=0)) == 0
    assert shortlist_before_penalties(SamplingParams(top_k=40)) == 40 + PENALTY_LAST_N


JSON_ANSWER = r'''
root ::= "{" ws "\"answer\"" ws ":" ws "\"" [a-z ]{1,40} "\"" ws "}"
ws ::= [ \t\n]*
'''
SKY_SENTENCE = 'root ::= "sky" [a-z ]{1,30} "."'


@pytest.mark.parametrize("kind", ["greedy", "penalties", "lazy"])
def test_checking_the_grammar_after_the_pick_gives_the_reply_of_the_grammar_in_the_chain(
        smollm_path: Path, kind: str) -> None:
    """Greedy picks are the same as llama.cpp's grammar sampler in the chain gives (lazy: its own trigger)."""
    loaded = open_model(smollm_path, LoadSettings(n_ctx=512, n_threads=1), parallel=1, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    vocab = batcher.vocab
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    sampling = SamplingParams(temperature=0.0, repeat_penalty=1.3 if kind == "penalties" else 1.0, grammar=JSON_ANSWER)
    if kind == "lazy":  # free text until the model writes "sky" (inside a token: " sky"), then the grammar
        sampling = replace(sampling, grammar=SKY_SENTENCE, grammar_lazy=True,
                           grammar_triggers=(r"^[\s\S]*?(sky)[\s\S]*$",))
    if sampling.grammar_lazy:
        patterns = (ctypes.c_char_p * 1)(sampling.grammar_triggers[0].encode())
        grammar = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, sampling.grammar.encode(), b"root", patterns, 1, (llama_cpp.llama_token * 1)(), 0)
    else:
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, sampling.grammar.encode(), b"root")
    head = [llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(sampling.logit_bias), (llama_cpp.llama_logit_bias * len(
        sampling.logit_bias))(*(llama_cpp.llama_logit_bias(t, b) for t, b in sampling.logit_bias)))] if sampling.logit_bias else []
    penalties = [llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, sampling.repeat_penalty, 0.0, 0.0)]
    in_chain = chain(*head, *penalties, grammar, llama_cpp.llama_sampler_init_greedy())
    checked_after = ReplySampler(vocab, sampling)
    try:
        tokens = loaded.tokenize("<|im_start|>user\nAnswer in JSON: what colour is the sky?<|im_end|>\n"
                                 "<|im_start|>assistant\n", add_bos=True, special=True)
        picks: list[int] = []
        for _ in range(40):
            array = (ctypes.c_int32 * len(tokens))(*tokens)
            assert llama_cpp.llama_decode(batcher.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))) == 0
            chosen = llama_cpp.llama_sampler_sample(in_chain, batcher.ctx, -1)
            assert checked_after.pick(batcher.ctx, -1) == chosen, f"same pick at step {len(picks)}"
            picks.append(chosen)
            if llama_cpp.llama_vocab_is_eog(vocab, chosen):
                break
            tokens = [chosen]
        reply = b"".join(token_piece(vocab, t) for t in picks)
        if kind == "lazy":
            before, _, after = reply.partition(b"sky")
            assert before and after.endswith(b"."), f"free text, then the grammar's sentence: {reply!r}"
        else:
            assert reply.lstrip().startswith(b"{"), reply
        assert llama_cpp.llama_vocab_is_eog(vocab, picks[-1]), f"the grammar ended the reply: {reply!r}"
    finally:
        llama_cpp.llama_sampler_free(in_chain)
        checked_after.free()
        batcher.close()
        loaded.close()
