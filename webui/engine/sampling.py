"""Per-sequence sampling in C: a llama.cpp sampler chain per request, and logprobs when asked.

Sampling with ``llama_sampler_sample`` on the context's own logits row avoids copying the
vocabulary's logits into Python for every token (about 3 ms a token in the high-level ``Llama``).
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Sequence
from typing import Any

import llama_cpp

from webui.engine.errors import InvalidGrammar, InvalidSampling
from webui.engine.types import SamplingParams, TokenLogprob

PENALTY_LAST_N = 64  # the window llama-cpp-python's high-level API uses for repeat penalties
BAN_BIAS = -100.0  # OpenAI's logit_bias range is -100..100: -100 bans the token, so it becomes -inf here
# Characters with a meaning in a regular expression (Python's and ECMAScript's alike): a trigger text that is
# not one token is matched literally, so these are escaped.
REGEX_SPECIALS = frozenset("\\^$.|?*+()[]{}/")


def build_sampler(vocab: Any, sampling: SamplingParams, *, end_of_generation: Sequence[int] | None = None) -> Any:
    """A sampler chain with the request's logit biases, penalties, top-k, typical-p, top-p, min-p, temperature
    and seed. The grammar is not in it: ``constrained.ReplySampler`` checks it after the pick.

    The caller owns the result and frees it with ``llama_sampler_free``. A bias on a token outside the
    vocabulary raises ``InvalidSampling``. ``end_of_generation`` (``end_of_generation_tokens``, computed once per
    model by the caller) is what ``ignore_eos`` bans; left out, it is computed here.
    """
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    biases = logit_biases(sampling, n_vocab)
    if sampling.ignore_eos:
        banned = end_of_generation if end_of_generation is not None else end_of_generation_tokens(vocab)
        biases += [(token, -math.inf) for token in banned]
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if biases:  # first, as llama.cpp's common sampler puts it: every later step sees the biased scores
        entries = (llama_cpp.llama_logit_bias * len(biases))(*(llama_cpp.llama_logit_bias(t, b) for t, b in biases))
        add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), entries))
    # Then the order of llama-cpp-python's high-level API, so replies match what the app gave before.
    if has_penalties(sampling):
        keep = shortlist_before_penalties(sampling)
        if keep:
            add(chain, llama_cpp.llama_sampler_init_top_k(keep))
        add(chain, llama_cpp.llama_sampler_init_penalties(
            n_vocab, PENALTY_LAST_N, sampling.repeat_penalty,
            sampling.frequency_penalty, sampling.presence_penalty))
    if sampling.temperature <= 0:  # the most likely token: typical-p, like top-k/p, only shapes sampling
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if sampling.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(sampling.top_k))
    if 0 < sampling.typical_p < 1:  # llama.cpp's default order: top-k, typical-p, top-p, min-p, temperature
        add(chain, llama_cpp.llama_sampler_init_typical(sampling.typical_p, 1))
    if 0 < sampling.top_p < 1:
        add(chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
    if sampling.min_p > 0:
        add(chain, llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(sampling.temperature))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if sampling.seed < 0 else sampling.seed
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


def has_penalties(sampling: SamplingParams) -> bool:
    """Whether the chain gets a penalties sampler: the only one in it that remembers the tokens it accepts."""
    return sampling.repeat_penalty != 1.0 or bool(sampling.frequency_penalty) or bool(sampling.presence_penalty)


def logit_biases(sampling: SamplingParams, n_vocab: int) -> list[tuple[int, float]]:
    """The request's logit biases for llama.cpp: -100 or less bans (-inf), as in OpenAI's API.

    ``InvalidSampling`` for a token id outside the vocabulary or a bias that is not a number.
    """
    biases: list[tuple[int, float]] = []
    for token, bias in sampling.logit_bias:
        if not 0 <= token < n_vocab:
            raise InvalidSampling(f"logit_bias names token {token}, but this model's vocabulary has {n_vocab} "
                                  f"tokens (0-{n_vocab - 1}).")
        if math.isnan(bias) or bias == math.inf:
            raise InvalidSampling(f"logit_bias for token {token} must be a number from -100 to 100, not {bias}.")
        biases.append((token, -math.inf if bias <= BAN_BIAS else float(bias)))
    return biases


def end_of_generation_tokens(vocab: Any) -> tuple[int, ...]:
    """Every token that ends a reply (EOS, end of turn...): what ``ignore_eos`` bans. Scans the vocabulary."""
    return tuple(t for t in range(llama_cpp.llama_vocab_n_tokens(vocab)) if llama_cpp.llama_vocab_is_eog(vocab, t))


def grammar_sampler(vocab: Any, sampling: SamplingParams) -> Any | None:
    """The request's grammar as a llama.cpp sampler (lazy: from a trigger on), or None without one.

    Trigger patterns follow llama.cpp's convention: a pattern must match the whole reply so far
    (``[\\s\\S]*?(<tool_call>)[\\s\\S]*`` finds an opener anywhere) and its first capture group marks where
    the grammar starts reading; a trigger token's text is part of what the grammar reads, so the grammar
    must begin with it. ``InvalidGrammar`` otherwise.
    """
    if not sampling.grammar:
        return None
    gbnf = sampling.grammar.encode("utf-8")
    if not sampling.grammar_lazy:
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, gbnf, b"root")
    else:
        patterns, tokens = lazy_triggers(vocab, sampling)
        _check_trigger_tokens(vocab, gbnf, tokens)
        wanted = [p.encode() for p in patterns]
        pattern_array = (ctypes.c_char_p * len(wanted))(*wanted)
        token_array = (llama_cpp.llama_token * len(tokens))(*tokens)
        grammar = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, gbnf, b"root", pattern_array, len(wanted), token_array, len(tokens))
    if not grammar:
        raise InvalidGrammar("The output format could not be turned into a grammar: llama.cpp rejected the GBNF text.")
    return grammar


def lazy_triggers(vocab: Any, sampling: SamplingParams) -> tuple[list[str], list[int]]:
    """A lazy grammar's trigger patterns and trigger token ids.

    A trigger token text that is one token of the vocabulary (special tokens included) triggers as that
    token; one that is not is matched as literal text instead. ``InvalidGrammar`` for a pattern that
    llama.cpp's regular expressions (C++ ``std::regex``) would not compile: it throws across the C
    boundary, which ends the process, so such a pattern must never reach it.
    """
    patterns = list(sampling.grammar_triggers)
    tokens: list[int] = []
    for text in sampling.grammar_trigger_tokens:
        ids = _tokenize_special(vocab, text)
        if len(ids) == 1:
            tokens.append(ids[0])
        elif text:
            literal = "".join("\\" + c if c in REGEX_SPECIALS else c for c in text)
            pattern = f"^[\\s\\S]*?({literal})[\\s\\S]*$"  # whole-match: a search would be quadratic
            if pattern not in patterns:
                patterns.append(pattern)
    for pattern in patterns:
        _check_trigger_pattern(pattern)
    return patterns, tokens


def _tokenize_special(vocab: Any, text: str) -> list[int]:
    data = text.encode("utf-8")
    room = len(data) + 8
    ids = (llama_cpp.llama_token * room)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), ids, room, False, True)
    return list(ids[:n]) if n >= 0 else [0, 0]  # negative: more tokens than room, so certainly not one


def _check_trigger_pattern(pattern: str) -> None:
    """Refuse what Python's ``re`` and C++'s ECMAScript ``std::regex`` read differently or not at all.

    ``re`` finds unbalanced brackets and unknown escapes; ECMAScript also refuses ``(?`` other than
    ``(?:``, ``(?=``, ``(?!`` and a ``{`` that does not begin a ``{n}``, ``{n,}`` or ``{n,m}`` count.
    """
    problem = None
    try:
        re.compile(pattern)
    except re.error as exc:
        problem = str(exc)
    else:
        outside = re.sub(r"\\.|\[(?:\\.|[^\]\\])*\]", "", pattern)  # escapes and character classes removed
        if re.search(r"\(\?[^:=!]", outside):
            problem = "only (?:...), (?=...) and (?!...) groups are understood"
        elif re.search(r"\{(?!\d+(?:,\d*)?\})", outside):
            problem = "a literal { must be written \\{"
    if problem:
        raise InvalidGrammar(f"The tool-call trigger pattern {pattern!r} is not a regular expression llama.cpp "
                             f"accepts: {problem}.")


def _check_trigger_tokens(vocab: Any, gbnf: bytes, tokens: Sequence[int]) -> None:
    """Each trigger token must be where the grammar can start: llama.cpp feeds its text to the grammar, and a
    grammar that cannot take it throws across the C boundary, which ends the process."""
    if not tokens:
        return
    eager = llama_cpp.llama_sampler_init_grammar(vocab, gbnf, b"root")
    if not eager:
        raise InvalidGrammar("The output format could not be turned into a grammar: llama.cpp rejected the GBNF text.")
    try:
        for token in tokens:
            candidate = llama_cpp.llama_token_data(token, 0.0, 0.0)
            candidates = llama_cpp.llama_token_data_array(ctypes.pointer(candidate), 1, -1, False)
            llama_cpp.llama_sampler_apply(eager, ctypes.byref(candidates))
            if candidate.logit == -math.inf:
                text = token_piece(vocab, token, special=True).decode("utf-8", "replace")
                raise InvalidGrammar(f"The tool-call grammar cannot start with its trigger token {text!r}.")
    finally:
        llama_cpp.llama_sampler_free(eager)


def shortlist_before_penalties(sampling: SamplingParams) -> int:
    """How many of the most likely tokens the penalties need to see; 0 when they must see the whole vocabulary.

    The penalties look up every candidate in their window, which for Gemma's 262k-token vocabulary
    costs ~1.4 ms a token (most of the sampling time). Penalties that only lower scores (repeat
    penalty >= 1, frequency and presence penalties >= 0) touch at most ``PENALTY_LAST_N`` tokens, so
    the ``k`` best after them are among the ``k + PENALTY_LAST_N`` best before them: cutting to those
    first picks exactly the same tokens. Logit biases (ignore_eos's included) come before the cut, so it
    sees the biased scores; a grammar, applied before the chain when it refuses the first pick, leaves
    the same argument standing on the tokens it allows.
    """
    lowers_only = (sampling.repeat_penalty >= 1.0 and sampling.frequency_penalty >= 0
                   and sampling.presence_penalty >= 0)
    if not lowers_only:
        return 0
    if sampling.temperature <= 0:
        return 1 + PENALTY_LAST_N
    return sampling.top_k + PENALTY_LAST_N if sampling.top_k > 0 else 0


def check_sampling(vocab: Any, sampling: SamplingParams) -> None:
    """Raise ``InvalidGrammar`` or ``InvalidSampling`` now, in the caller's thread, rather than once the request
    is running: the grammar (lazy or not) and its triggers compile, the logit biases name real tokens."""
    logit_biases(sampling, llama_cpp.llama_vocab_n_tokens(vocab))
    grammar = grammar_sampler(vocab, sampling)
    if grammar is not None:
        llama_cpp.llama_sampler_free(grammar)


def token_piece(vocab: Any, token: int, *, special: bool = False) -> bytes:
    """The bytes a token stands for (control tokens give none, unless ``special``: then their text)."""
    buffer = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buffer, 64, 0, special)
    if n < 0:
        buffer = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, -n, 0, special)
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
