"""Per-sequence sampling in C: a llama.cpp sampler chain per request, and logprobs when asked.

Sampling with ``llama_sampler_sample`` on the context's own logits row avoids copying the
vocabulary's logits into Python for every token (about 3 ms a token in the high-level ``Llama``).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp

from webui.engine.errors import InvalidGrammar
from webui.engine.types import SamplingParams, TokenLogprob

PENALTY_LAST_N = 64  # the window llama-cpp-python's high-level API uses for repeat penalties


def build_sampler(vocab: Any, sampling: SamplingParams) -> Any:
    """A sampler chain with the request's grammar, penalties, top-k/p, min-p, temperature and seed.

    The caller owns the result and frees it with ``llama_sampler_free``. A grammar that does not
    compile raises ``InvalidGrammar`` (llama.cpp returns NULL and logs why).
    """
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    # The order of llama-cpp-python's high-level API, so replies match what the app gave before.
    if sampling.repeat_penalty != 1.0 or sampling.frequency_penalty or sampling.presence_penalty:
        keep = shortlist_before_penalties(sampling)
        if keep:
            add(chain, llama_cpp.llama_sampler_init_top_k(keep))
        add(chain, llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(vocab), PENALTY_LAST_N, sampling.repeat_penalty,
            sampling.frequency_penalty, sampling.presence_penalty))
    if sampling.grammar:
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, sampling.grammar.encode("utf-8"), b"root")
        if not grammar:
            llama_cpp.llama_sampler_free(chain)
            raise InvalidGrammar("The output format could not be turned into a grammar: llama.cpp rejected the GBNF text.")
        add(chain, grammar)
    if sampling.temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if sampling.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(sampling.top_k))
    if 0 < sampling.top_p < 1:
        add(chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
    if sampling.min_p > 0:
        add(chain, llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(sampling.temperature))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if sampling.seed < 0 else sampling.seed
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


def shortlist_before_penalties(sampling: SamplingParams) -> int:
    """How many of the most likely tokens the penalties need to see; 0 when they must see the whole vocabulary.

    The penalties look up every candidate in their window, which for Gemma's 262k-token vocabulary
    costs ~1.4 ms a token (most of the sampling time). Penalties that only lower scores (repeat
    penalty >= 1, frequency and presence penalties >= 0) touch at most ``PENALTY_LAST_N`` tokens, so
    the ``k`` best after them are among the ``k + PENALTY_LAST_N`` best before them: cutting to those
    first picks exactly the same tokens. A grammar may reject every likely token, so it sees them all.
    """
    lowers_only = (sampling.repeat_penalty >= 1.0 and sampling.frequency_penalty >= 0
                   and sampling.presence_penalty >= 0)
    if not lowers_only or sampling.grammar:
        return 0
    if sampling.temperature <= 0:
        return 1 + PENALTY_LAST_N
    return sampling.top_k + PENALTY_LAST_N if sampling.top_k > 0 else 0


def check_grammar(vocab: Any, gbnf: str | None) -> None:
    """Raise ``InvalidGrammar`` now, in the caller's thread, rather than once the request is running."""
    if gbnf:
        llama_cpp.llama_sampler_free(build_sampler(vocab, SamplingParams(grammar=gbnf, repeat_penalty=1.0)))


def token_piece(vocab: Any, token: int) -> bytes:
    """The bytes a token stands for (control tokens give none)."""
    buffer = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buffer, 64, 0, False)
    if n < 0:
        buffer = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, -n, 0, False)
    return buffer.raw[:max(n, 0)]


def logprobs_for(ctx: Any, vocab: Any, index: int, n_vocab: int, token: int, top_n: int) -> TokenLogprob:
    """The chosen token's log-probability and the ``top_n`` most likely ones, from one logits row.

    Only requests that ask for logprobs pay for reading the row into Python.
    """
    import numpy as np

    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
    peak = float(row.max())
    log_total = peak + math.log(float(np.exp(row - peak).sum()))
    top: dict[str, float] = {}
    if top_n > 0:
        best = np.argpartition(row, -top_n)[-top_n:]
        for candidate in best[np.argsort(-row[best])]:
            text = token_piece(vocab, int(candidate)).decode("utf-8", "replace")
            top.setdefault(text, float(row[candidate]) - log_total)
    return TokenLogprob(
        token=token_piece(vocab, token).decode("utf-8", "replace"),
        logprob=float(row[token]) - log_total,
        top=top,
    )
