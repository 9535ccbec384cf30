"""Grammar-constrained sampling at nearly the cost of plain sampling: sample first, check the grammar after.

llama.cpp's grammar sampler, put in a sampler chain, checks every token of the vocabulary at every step
(49k for SmolLM2, 262k for Gemma 3), and its lazy form runs C++ ``std::regex`` over the whole reply
after each token (a search that starts with ``[\\s\\S]*?`` is quadratic in the reply's length). llama.cpp's
own common sampler (``common/sampling.cpp``) avoids the first: it samples without the grammar, asks the
grammar about the picked token only, and samples again with the grammar over the whole vocabulary only
when that token is refused. There is no C entry point for it, so this does the same through the C API.
It also watches a lazy grammar's triggers itself, with Python's ``re`` on the reply's bytes, and only then
hands an eager grammar the text from the trigger on, as llama.cpp's lazy grammar does internally.

Greedy replies are the same as with the grammar in the chain: the most likely token is either allowed
(and then it is the most likely allowed one) or refused (and the second pass picks the most likely
allowed one). Sampled replies draw from the grammar-filtered distribution when the first pick is refused,
as llama.cpp's server does.
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import llama_cpp
import numpy as np

from webui.engine.sampling import (
    PENALTY_LAST_N,
    build_sampler,
    grammar_sampler,
    has_penalties,
    lazy_triggers,
    token_piece,
)
from webui.engine.types import SamplingParams

log = logging.getLogger(__name__)

# llama_token_data as numpy sees it: the candidates array is filled from the logits row without a Python loop.
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)
SHORTLIST = 256  # the most likely tokens the grammar is asked about first when it refuses the pick


def allowed_needed(sampling: SamplingParams, banned: int) -> int | None:
    """How many grammar-allowed tokens among the most likely ones make the chain's pick the same as over the whole
    vocabulary; None when only the whole vocabulary will do.

    The chain keeps the ``top_k`` best (1 when greedy) of what it is given; penalties that only lower scores
    change at most ``PENALTY_LAST_N`` of them and bans (negative biases, ignore_eos's) at most ``banned``: so
    that many allowed tokens at the top of the row hold everything the chain can pick. A bias that raises a
    token could lift one from anywhere, and without top-k every allowed token counts.
    """
    if any(bias > 0 for _, bias in sampling.logit_bias):
        return None
    if sampling.repeat_penalty < 1.0 or sampling.frequency_penalty < 0 or sampling.presence_penalty < 0:
        return None
    if sampling.temperature <= 0:
        need = 1
    elif sampling.top_k > 0:
        need = sampling.top_k
    else:
        return None
    return need + (PENALTY_LAST_N if has_penalties(sampling) else 0) + banned


class TriggerWatch:
    """Where a lazy grammar starts, by llama.cpp's rules: a trigger token, or a pattern over the reply so far.

    A pattern written ``^...$`` must match the whole reply; any other is searched for. The first capture
    group that matched marks where the constrained text begins (else the match's start). Patterns are
    matched on bytes, so a multi-byte character split across tokens is matched once it is whole.
    """

    def __init__(self, patterns: Sequence[str], tokens: Sequence[int]) -> None:
        self._patterns = [(p.startswith("^") and p.endswith("$"), re.compile(p.encode("utf-8"))) for p in patterns]
        self._tokens = frozenset(tokens)
        self._reply = bytearray()

    def is_trigger_token(self, token: int) -> bool:
        return token in self._tokens

    def start(self, piece: bytes) -> bytes | None:
        """Add one token's text; the constrained text (from the trigger to the end) once a pattern matches."""
        self._reply += piece
        for whole, pattern in self._patterns:
            found = pattern.fullmatch(self._reply) if whole else pattern.search(self._reply)
            if found:
                groups = [i for i in range(1, (pattern.groups or 0) + 1) if found.start(i) != found.end(i)]
                begin = found.start(groups[0]) if groups else found.start()
                return bytes(self._reply[begin:])
        return None


class ReplySampler:
    """One reply's sampling: the request's chain, and its grammar (if any) checked after the pick.

    ``pick`` samples the next token from a logits row and records it in every sampler's state. The caller
    frees the C samplers with ``free``. ``special_piece`` gives a token's text with control tokens as their
    text, which is what a grammar reads.
    """

    def __init__(self, vocab: Any, sampling: SamplingParams, *, end_of_generation: Sequence[int] | None = None,
                 special_piece: Callable[[int], bytes] | None = None) -> None:
        self._vocab = vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self._piece = special_piece or (lambda token: token_piece(vocab, token, special=True))
        self._watch: TriggerWatch | None = None
        self._candidates: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        grammar = None
        if sampling.grammar:
            # The eager form: laziness is watched here (TriggerWatch), not by llama.cpp's regexes.
            grammar = grammar_sampler(vocab, replace(sampling, grammar_lazy=False))
            if sampling.grammar_lazy:
                patterns, tokens = lazy_triggers(vocab, sampling)
                self._watch = TriggerWatch(patterns, tokens)
        try:
            self._chain = build_sampler(vocab, replace(sampling, grammar=None, grammar_lazy=False),
                                        end_of_generation=end_of_generation)
        except BaseException:
            if grammar is not None:
                llama_cpp.llama_sampler_free(grammar)
            raise
        self._grammar = grammar
        # Without penalties nothing in the chain remembers what it accepted, so the first pick may come from
        # llama_sampler_sample (its candidates array built in C, and its accept a no-op); with them, the chain
        # must only ever accept the token finally kept.
        self._chain_keeps_no_state = not has_penalties(sampling)
        banned = len(sampling.logit_bias) + (len(end_of_generation or ()) if sampling.ignore_eos else 0)
        self._allowed_needed = allowed_needed(sampling, banned) if grammar is not None else None

    @property
    def _constraining(self) -> bool:
        return self._grammar is not None and self._watch is None

    def pick(self, ctx: Any, index: int) -> int:
        """The next token from logits row ``index`` of ``ctx``, accepted by the chain and the grammar."""
        if not self._constraining:
            token = llama_cpp.llama_sampler_sample(self._chain, ctx, index)  # samples and accepts
            if self._watch is not None:
                self._watch_for_trigger(token)
            return token
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        if self._chain_keeps_no_state:
            token = llama_cpp.llama_sampler_sample(self._chain, ctx, index)
        else:
            token = self._sample(logits, with_grammar=False)
        if not self._allows(token):
            token = self._sample_shortlist(logits)
            if token is None:
                token = self._sample(logits, with_grammar=True)
            if not self._allows(token):
                # The grammar allows nothing here: end the reply rather than feed it a token it refuses
                # (llama.cpp aborts the process on that).
                log.warning("the reply's grammar allows no further token; ending the reply")
                llama_cpp.llama_sampler_accept(self._chain, token)
                return llama_cpp.llama_vocab_eos(self._vocab)
        llama_cpp.llama_sampler_accept(self._chain, token)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        return token

    def free(self) -> None:
        llama_cpp.llama_sampler_free(self._chain)
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None

    def _sample(self, logits: np.ndarray, *, with_grammar: bool) -> int:
        """Apply the chain (after the grammar, if asked) to a fresh copy of the whole row: the picked token."""
        if self._candidates is None:
            self._candidates = np.empty(self._n_vocab, dtype=TOKEN_DATA)
            self._ids = np.arange(self._n_vocab, dtype=np.int32)
        candidates = self._candidates
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            candidates.ctypes.data_as(llama_cpp.llama_token_data_p), self._n_vocab, -1, False)
        if with_grammar:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _sample_shortlist(self, logits: np.ndarray) -> int | None:
        """The chain's pick from the grammar-allowed tokens among the most likely ones, when enough of them are
        allowed for that to be the pick over the whole vocabulary (``allowed_needed``); else None."""
        need = self._allowed_needed
        if need is None or 2 * need > self._n_vocab:
            return None
        size = max(SHORTLIST, 2 * need)
        best = np.argpartition(logits, -size)[-size:]
        candidates = np.empty(size, dtype=TOKEN_DATA)
        candidates["id"] = best
        candidates["logit"] = logits[best]
        candidates["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            candidates.ctypes.data_as(llama_cpp.llama_token_data_p), size, -1, False)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        if int(np.count_nonzero(candidates["logit"][:array.size] != -np.inf)) < need:
            return None
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _allows(self, token: int) -> bool:
        """Whether the grammar lets ``token`` come next (llama.cpp sets a refused token's logit to -inf)."""
        candidate = llama_cpp.llama_token_data(token, 0.0, 0.0)
        array = llama_cpp.llama_token_data_array(ctypes.pointer(candidate), 1, -1, False)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return candidate.logit != -math.inf

    def _watch_for_trigger(self, token: int) -> None:
        """Start the grammar at a trigger token, or once a pattern finds where the constrained text begins."""
        assert self._watch is not None and self._grammar is not None
        if self._watch.is_trigger_token(token):
            self._watch = None
            llama_cpp.llama_sampler_accept(self._grammar, token)  # checked to be the grammar's start when built
            return
        constrained = self._watch.start(self._piece(token))
        if constrained is None:
            return
        self._watch = None
        if not self._feed(constrained):
            log.warning("the reply's grammar cannot read its own trigger %r; the reply goes on unconstrained",
                        constrained[:40])
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None

    def _feed(self, text: bytes) -> bool:
        """Give the grammar ``text`` (already written) as tokens whose texts join to exactly it.

        The grammar reads only the tokens' texts, so any tokenization of the same bytes leaves it in the same
        state. False if the tokenizer changes the bytes (a leading space) or the grammar refuses them.
        """
        room = len(text) + 8
        ids = (llama_cpp.llama_token * room)()
        n = llama_cpp.llama_tokenize(self._vocab, text, len(text), ids, room, False, True)
        tokens = list(ids[:max(n, 0)])
        if n < 0 or b"".join(self._piece(t) for t in tokens) != text:
            return False
        for token in tokens:
            if not self._allows(token):
                return False
            llama_cpp.llama_sampler_accept(self._grammar, token)
        return True
