"""A draft model: a small GGUF with the chat model's vocabulary that guesses each reply's next tokens.

The chat model then checks a whole guess in one pass (speculative decoding), as llama.cpp's server
does with ``--model-draft``. The draft model has its own context beside the chat model's, one sequence
per slot, and keeps each sequence's cache in step with the reply: before it drafts, it drops what the
chat model rejected and evaluates what it has not seen yet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

from webui.engine.errors import ModelLoadError

log = logging.getLogger(__name__)

# llama.cpp's server accepts a draft vocabulary up to this many tokens longer or shorter than the chat
# model's (SPEC_VOCAB_MAX_SIZE_DIFFERENCE): sizes are often padded differently within one family.
VOCAB_SIZE_SLACK = 128
FIRST_COMPARED_TOKEN = 5  # ... and compares every token's text from here on (the first few are control tokens)


def vocabulary_mismatch(target: Any, draft: Any) -> str | None:
    """Why the ``draft`` vocabulary cannot draft for the ``target`` one (two ``llama_vocab`` pointers); None
    when it can: the same kind of tokenizer, the same start and end tokens, and the same text for every
    token both have."""
    n_target, n_draft = llama_cpp.llama_vocab_n_tokens(target), llama_cpp.llama_vocab_n_tokens(draft)
    if llama_cpp.llama_vocab_type(target) != llama_cpp.llama_vocab_type(draft):
        return "it uses another kind of tokenizer"
    if abs(n_target - n_draft) > VOCAB_SIZE_SLACK:
        return f"its vocabulary has {n_draft:,} tokens against the chat model's {n_target:,}"
    for name in ("bos", "eos"):
        ours, theirs = (getattr(llama_cpp, f"llama_vocab_{name}")(v) for v in (target, draft))
        if ours != theirs:
            return f"its {name.upper()} token is {theirs}, the chat model's {ours}"
    for token in range(FIRST_COMPARED_TOKEN, min(n_target, n_draft)):
        if llama_cpp.llama_vocab_get_text(target, token) != llama_cpp.llama_vocab_get_text(draft, token):
            return f"token {token} is another word in it"
    return None


class DraftModel:
    """A draft model's context: proposes the next tokens of several sequences at once, greedily."""

    def __init__(self, loaded: Any, params: Any, *, target_vocab: Any) -> None:
        """``loaded``: the opened draft GGUF (a LoadedModel); ``params``: its context parameters, those of the
        chat model's context. Raises ModelLoadError for a vocabulary the chat model does not share."""
        why = vocabulary_mismatch(target_vocab, loaded.vocab)
        if why:
            raise ModelLoadError(f"{loaded.info.file} cannot draft for this model: {why}. A draft model must "
                                 "share the chat model's tokenizer (a smaller model of the same family).")
        self.loaded = loaded
        self.ctx = llama_cpp.llama_init_from_model(loaded.model.model, params)
        if not self.ctx:
            raise ModelLoadError(f"llama.cpp could not make a context for the draft model {loaded.info.file}: "
                                 "not enough memory.")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_batch = params.n_batch
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.n_vocab = min(llama_cpp.llama_vocab_n_tokens(loaded.vocab), llama_cpp.llama_vocab_n_tokens(target_vocab))
        self.cached: dict[int, list[int]] = {}  # per sequence id: the tokens in the draft model's cache

    @property
    def name(self) -> str:
        return self.loaded.info.file

    def propose(self, histories: Sequence[tuple[int, Sequence[int]]], n: int) -> list[list[int]]:
        """``n`` tokens to follow each history (sequence id, every token so far including the one about to
        be checked), one greedy pass per token over all sequences together."""
        last_rows = self._catch_up(histories)
        drafts: list[list[int]] = [[] for _ in histories]
        for step in range(n):
            picks = [int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, row),
                                                         shape=(self.n_vocab,)))) for row in last_rows]
            for draft, token in zip(drafts, picks):
                draft.append(token)
            if step == n - 1:
                break
            rows = [(seq, len(self.cached[seq]), token, True) for (seq, _), token in zip(histories, picks)]
            last_rows = self._decode(rows)
            for (seq, _), token in zip(histories, picks):
                self.cached[seq].append(token)
        return drafts

    def _catch_up(self, histories: Sequence[tuple[int, Sequence[int]]]) -> list[int]:
        """Make each sequence's cache hold its history: cut what differs, evaluate what is missing; the batch
        row of each history's last token, all evaluated in one last pass so their logits can be read."""
        body: list[tuple[int, int, int, bool]] = []
        last: list[tuple[int, int, int, bool]] = []
        for seq, history in histories:
            cached = self.cached.setdefault(seq, [])
            same = 0
            for ours, theirs in zip(cached, history):
                if ours != theirs:
                    break
                same += 1
            same = min(same, len(history) - 1)  # the last token is evaluated again for its logits
            if same < len(cached):
                llama_cpp.llama_memory_seq_rm(self.memory, seq, same, -1)
                del cached[same:]
            tail = history[same:]
            body += [(seq, same + i, token, False) for i, token in enumerate(tail[:-1])]
            last.append((seq, len(history) - 1, tail[-1], True))
            cached.extend(tail)
        for start in range(0, len(body), self.n_batch):
            self._decode(body[start:start + self.n_batch])
        return self._decode(last)

    def _decode(self, rows: Sequence[tuple[int, int, int, bool]]) -> list[int]:
        """One pass of (sequence, position, token, wants logits) rows; the batch rows that have logits."""
        batch = self.batch
        wanted: list[int] = []
        for i, (seq, position, token, logits) in enumerate(rows):
            batch.token[i], batch.pos[i] = token, position
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
            batch.logits[i] = logits
            if logits:
                wanted.append(i)
        batch.n_tokens = len(rows)
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"the draft model's llama_decode failed ({code})")
        return wanted

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None
        self.loaded.close()
