"""Continuous batching: many replies decoded together in one llama.cpp context, one sequence each.

llama-cpp-python's high-level ``Llama`` decodes one sequence at a time (its issue #771), so this
drives llama.cpp's batch API through the low-level bindings. Only the engine thread calls into a
``Batcher``; tokenizing from other threads only reads the vocabulary.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import logging
import multiprocessing
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals
from llama_cpp._logger import set_verbose

from webui.engine.errors import ModelLoadError
from webui.engine.loading import LLAMA_LOAD_LOCK
from webui.engine.policy import choose_parallel, common_prefix, kv_bytes_per_token
from webui.engine.constrained import ReplySampler
from webui.engine.draft import DraftModel
from webui.engine.lookup import DraftPlanner, PromptLookup
from webui.engine.sampling import end_of_generation_tokens, logprobs_for, token_piece
from webui.engine.stops import StopScanner
from webui.engine.types import GenerationStats, LoadSettings, ModelInfo, SamplingParams, StreamChunk, TokenLogprob
from webui.prompts.templates import ChatFormat, resolve_chat_format
from webui.prompts.toolcalls import writes_reasoning

log = logging.getLogger(__name__)

# A text whose tokens the exactness probe decodes one and several per pass (any text does; this one is plain).
EXACTNESS_PROBE_TEXT = ("The reading room opens at nine in the morning and closes at six in the evening. Visitors "
                        "sign the register at the front desk and leave their coats in the lockers by the stairs.")

KV_TYPES = {"f16": (llama_cpp.GGML_TYPE_F16, 2.0), "q8_0": (llama_cpp.GGML_TYPE_Q8_0, 34 / 32),
            "q4_0": (llama_cpp.GGML_TYPE_Q4_0, 18 / 32)}


@dataclass
class LoadedModel:
    """A model file, its vocabulary and chat format: what tokenizing and rendering need."""

    model: Any  # llama_cpp._internals.LlamaModel (it reads metadata and tokenizes; we reuse it)
    settings: LoadSettings
    chat_format: ChatFormat
    info: ModelInfo
    n_seq: int

    @property
    def vocab(self) -> Any:
        return self.model.vocab

    @functools.cached_property
    def end_of_generation(self) -> tuple[int, ...]:
        """The tokens that end a reply, which ``ignore_eos`` bans: the vocabulary scanned once per model (by the
        ``Batcher``, at load)."""
        return end_of_generation_tokens(self.vocab)

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        return self.model.tokenize(text.encode("utf-8"), add_bos, special)

    def close(self) -> None:
        self.model.close()


def load_mode(use_mmap: bool, use_mlock: bool) -> int:
    """llama.cpp's ``load_mode`` for the mmap and mlock boxes (llama.cpp replaced its two flags with it: setting
    ``use_mmap`` on the parameters now sets nothing, and both boxes went unheard)."""
    if use_mlock:
        return llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK if use_mmap else llama_cpp.LLAMA_LOAD_MODE_MLOCK
    return llama_cpp.LLAMA_LOAD_MODE_MMAP if use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE


def open_model(path: Path, settings: LoadSettings, *, parallel: int | None, free_bytes: int) -> LoadedModel:
    """Load a GGUF file (weights and vocabulary); the context with its sequences comes separately."""
    if settings.kv_cache_type not in KV_TYPES:
        raise ModelLoadError(f"Unknown KV cache type {settings.kv_cache_type!r}; use one of {', '.join(KV_TYPES)}.")
    set_verbose(False)  # what Llama(verbose=False) does: llama.cpp's own log lines stay quiet
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = settings.n_gpu_layers
    params.load_mode = load_mode(settings.use_mmap, settings.use_mlock)
    try:
        with LLAMA_LOAD_LOCK:
            model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        log.error("llama.cpp failed to load %s: %s", path, exc)
        raise ModelLoadError(
            f"llama.cpp could not load {path.name}: the file is damaged, incomplete, of an "
            f"unsupported architecture, or too large for this machine's memory ({exc})."
        ) from exc
    metadata = dict(model.metadata() or {})
    architecture = metadata.get("general.architecture", "unknown")
    bos = model.token_bos()
    eos = model.token_eos()
    try:
        chat_format = resolve_chat_format(
            metadata, model_name=path.name,
            bos_token=model.detokenize([bos], special=True).decode("utf-8", "ignore") if bos >= 0 else "",
            eos_token=model.detokenize([eos], special=True).decode("utf-8", "ignore") if eos >= 0 else "",
            override=settings.chat_format,
        )
    except ValueError as exc:
        model.close()
        raise ModelLoadError(f"The chat format override for {path.name} is invalid: {exc}") from exc
    per_token = kv_bytes_per_token(metadata, KV_TYPES[settings.kv_cache_type][1])
    n_seq = choose_parallel(parallel, per_token * settings.n_ctx, free_bytes)
    info = ModelInfo(
        path=path,
        architecture=architecture,
        name=metadata.get("general.name", path.stem),
        n_ctx=settings.n_ctx,
        n_ctx_train=int(metadata.get(f"{architecture}.context_length", 0) or 0),
        n_layers=int(metadata.get(f"{architecture}.block_count", 0) or 0),
        n_gpu_layers=settings.n_gpu_layers,
        size_bytes=path.stat().st_size,
        chat_format=chat_format.name,
        chat_format_source=chat_format.source,
        chat_format_note=chat_format.note,
        flash_attn=settings.flash_attn,
        metadata=metadata,
        writes_reasoning=writes_reasoning(chat_format.template),
    )
    return LoadedModel(model=model, settings=settings, chat_format=chat_format, info=info, n_seq=n_seq)


@dataclass(eq=False)
class Job:
    """One reply as the engine thread runs it: tokens to evaluate, how to sample, where output goes."""

    tokens: list[int]
    stop: tuple[str, ...]
    sampling: SamplingParams  # max_tokens already fitted to the room left in the sequence
    dropped: int
    cancel: threading.Event
    emit: Callable[[object], None]  # a StreamChunk, or an exception for the consumer
    finished: Callable[[], None]
    user: str | None = None
    conversation: str | None = None
    submitted: float = field(default_factory=time.perf_counter)
    # Control tokens (other than those that end the reply) come out as their text, for a reply parser that
    # reads a family's markers (harmony's <|channel|>, Mistral's [TOOL_CALLS]); otherwise they show nothing.
    special_text: bool = False


@dataclass(eq=False)
class _Running:
    job: Job
    sampler: ReplySampler
    pending: list[int]
    cached: int
    scanner: StopScanner
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    generated: int = 0
    next_token: int | None = None
    output_index: int | None = None
    first_token_at: float | None = None
    lookup: PromptLookup | None = None  # None: prompt lookup is off for this model
    draft_match: int = 0  # how many tokens matched where this step's draft was found
    drafted: int = 0
    accepted: int = 0


@dataclass(eq=False)
class Slot:
    """One sequence of the context: the tokens its KV cache holds and whose conversation they are."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    conversation: str | None = None
    last_used: float = 0.0
    running: _Running | None = None
    # A copy from another sequence's cache into this one is queued; llama.cpp moves the data at the next
    # decode. Until then neither sequence may have its state written (a restore would be overwritten or copied).
    copy_pending: bool = False
    copy_source: bool = False


class SequenceStore:
    """Saved KV states of evicted conversations, least recently used dropped first, within a byte budget.

    Only one sequence's state is copied (``llama_state_seq_get_data``), not the whole context.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._items: OrderedDict[str, tuple[list[int], Any]] = OrderedDict()
        self._used = 0

    def __contains__(self, conversation: str) -> bool:
        return conversation in self._items

    def put(self, conversation: str, tokens: list[int], state: Any) -> None:
        self.pop(conversation)
        if len(state) > self.capacity:
            return
        self._items[conversation] = (tokens, state)
        self._used += len(state)
        while self._used > self.capacity:
            _, (_, dropped) = self._items.popitem(last=False)
            self._used -= len(dropped)

    def pop(self, conversation: str) -> tuple[list[int], Any] | None:
        item = self._items.pop(conversation, None)
        if item is not None:
            self._used -= len(item[1])
        return item


def context_params(settings: LoadSettings, n_seq: int) -> Any:
    """llama.cpp context parameters for ``n_seq`` sequences of ``settings.n_ctx`` tokens each (the chat model's
    context, and a draft model's beside it)."""
    params = llama_cpp.llama_context_default_params()
    params.n_seq_max = n_seq
    params.n_ctx = settings.n_ctx * n_seq  # each sequence gets the context size the user set
    params.n_batch = max(1, min(settings.n_batch, params.n_ctx))
    params.n_ubatch = min(params.n_batch, 512)
    params.n_threads = settings.n_threads or max(multiprocessing.cpu_count() // 2, 1)
    params.n_threads_batch = settings.n_threads or multiprocessing.cpu_count()
    params.type_k = params.type_v = KV_TYPES[settings.kv_cache_type][0]
    params.flash_attn_type = {True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                              False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
                              None: llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO}[settings.flash_attn]
    params.kv_unified = False  # one KV stream per sequence: a long chat never crowds out another
    # Sliding-window layers (Gemma 3) keep only their window and one ubatch of cells, as llama.cpp's server
    # does: less memory, and on the 10th turn of a long chat their attention reads ~1,000 cells, not all
    # of them (its time to first token fell from ~1.6x the 1st turn's to ~1.3x for Gemma 3 270M). The cost:
    # a cut far back (a regenerated reply) may find its window overwritten; ``Batcher._window_kept`` checks that.
    params.swa_full = False
    params.no_perf = True
    return params


def open_draft_model(settings: LoadSettings, target: LoadedModel) -> DraftModel:
    """The draft model ``settings.draft_model`` for ``target``, loaded with the same settings and sequences.
    Raises ModelLoadError for a file that cannot draft for it."""
    assert settings.draft_model is not None
    draft_settings = replace(settings, draft_model=None, prompt_lookup=False, chat_format=None)
    opened = open_model(settings.draft_model, draft_settings, parallel=target.n_seq, free_bytes=0)
    try:
        model = opened.model.model
        if llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model):
            raise ModelLoadError(f"{opened.info.file} cannot draft: a recurrent model's cache cannot be cut back "
                                 "to a position when the chat model rejects a guess.")
        return DraftModel(opened, context_params(draft_settings, target.n_seq), target_vocab=target.vocab)
    except BaseException:
        opened.close()
        raise


def passes_may_agree(settings: LoadSettings) -> bool:
    """False where passes of several tokens surely round differently from passes of one, which spares the
    exactness probe (seconds at load for a large model on the CPU): with every layer on the CPU and flash
    attention off, attention over 2+ rows goes through llamafile's tinyBLAS when the build has it."""
    on_cpu = settings.n_gpu_layers == 0 or not llama_cpp.llama_supports_gpu_offload()
    return not (on_cpu and settings.flash_attn is False and b"LLAMAFILE = 1" in llama_cpp.llama_print_system_info())


def is_greedy(sampling: SamplingParams) -> bool:
    """Whether a reply takes the most likely token at every step (its text must not change with drafts)."""
    return sampling.temperature <= 0 or sampling.top_k == 1


# A draft model's guesses start this long and grow by 2 while all are accepted; after a miss, they are one
# longer than what was accepted (the same for every sequence: they are checked together, in one pass).
DRAFT_MODEL_START = 4


class Batcher:
    """The scheduler's core: N sequence slots in one context, stepped one batch at a time."""

    def __init__(self, loaded: LoadedModel, *, cache_bytes: int) -> None:
        settings = loaded.settings
        params = context_params(settings, loaded.n_seq)
        self.n_batch, self.n_ubatch = params.n_batch, params.n_ubatch
        self.loaded = loaded
        # Opened first: a draft model that cannot draft for this one refuses the load before anything else.
        self.draft = open_draft_model(settings, loaded) if settings.draft_model is not None else None
        self.draft_length = DRAFT_MODEL_START
        self.ctx = llama_cpp.llama_init_from_model(loaded.model.model, params)
        if not self.ctx:
            if self.draft is not None:
                self.draft.close()
            raise ModelLoadError(
                f"llama.cpp could not make a context of {settings.n_ctx} tokens x {loaded.n_seq} sequences for "
                f"{loaded.info.file}: not enough memory. Lower the context size or --parallel."
            )
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = loaded.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_seq = llama_cpp.llama_n_ctx_seq(self.ctx)
        self.n_swa = llama_cpp.llama_model_n_swa(loaded.model.model)  # 0: every layer sees the whole context
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.slots = [Slot(seq_id=i) for i in range(loaded.n_seq)]
        self.store = SequenceStore(cache_bytes)
        self.evaluated_tokens = 0  # prompt tokens evaluated since load (tests and benchmarks count them)
        self._prompt_tokens_since_decode = 0  # prompt tokens evaluated since the replies last got a token
        # Per token id: its bytes, or None for an end-of-generation token. Each ctypes call gives up the
        # GIL and may wait for it behind the consumers' threads, so each token asks llama.cpp only once.
        self._pieces: dict[int, bytes | None] = {}
        self._special_pieces: dict[int, bytes | None] = {}  # the same, control tokens as their text
        # What ignore_eos bans, found at load rather than when the first request asks: the scan calls llama.cpp
        # once per token of the vocabulary (~0.1 s of CPU for Gemma 3's 262k, 0.5 s on a loaded 2-core machine),
        # and in the engine thread it delayed that request's first token and every running reply's next one.
        self.end_of_generation = loaded.end_of_generation
        self.min_shared = max(16, self.n_ctx_seq // 256)  # fewest tokens worth copying from another sequence
        self.max_state_copy = self.n_ctx_seq // 4  # most tokens a source may hold to be copied through its state
        # Without flash attention llama.cpp stores V transposed and copies a sequence's state row by row: on a
        # GPU one device copy per row and layer, ~100 ms for a 30-token prompt of SmolLM2 on an H200 (each new
        # chat's first token waited for it), where copying the stream stays on the device. So there, a shared
        # prefix is always copied as a stream, unless flash attention is surely on (auto may turn it off).
        if settings.n_gpu_layers != 0 and settings.flash_attn is not True and llama_cpp.llama_supports_gpu_offload():
            self.max_state_copy = 0
        # Rejected drafts are cut from a sequence's cache; a recurrent (or hybrid) model's state cannot be cut
        # back to a position, so there nothing drafts (neither the prompt nor a draft model).
        model = loaded.model.model
        cuttable = not (llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model))
        if self.draft is not None and not cuttable:
            log.warning("%s cannot take drafts (its cache cannot be cut back); the draft model %s is not used",
                        loaded.info.file, self.draft.name)
            self.draft.close()
            self.draft = None
        self.prompt_lookup = settings.prompt_lookup and cuttable
        self.planner = DraftPlanner()
        self.drafted_tokens = self.accepted_tokens = 0  # since load, for /status
        # Greedy replies draft only where a pass of several tokens computes each one's logits bit for bit as
        # a pass of one does: elsewhere llama.cpp's CPU kernels for several rows (llamafile's tinyBLAS, the
        # repacked and tiled K-quant gemms) round differently, and a near tie could flip a greedy pick, so
        # those replies decode one token per pass and stay exactly the text they were. Sampled replies
        # draft everywhere: each token is still drawn from the model's own distribution.
        self.drafting = self.prompt_lookup or self.draft is not None
        self.exact_passes = self.drafting and passes_may_agree(settings) and self._passes_agree()
        # With flash attention, a one-token pass behind 512+ cached cells takes llama.cpp's split-KV path, so
        # there greedy drafting stops once a sequence holds more than 256 cells (llama.cpp pads to 256).
        self.exact_cells = self.n_ctx_seq if settings.flash_attn is False else min(self.n_ctx_seq, 256)

    def logits_in_passes(self, tokens: list[int], prefix: int, per_pass: int) -> list[np.ndarray] | None:
        """The logits of every token after the first ``prefix`` of ``tokens``, decoded ``per_pass`` tokens at a
        time on a scratch sequence (the first slot's, cleared before and after; only before any request);
        None if llama.cpp refused a pass. The exactness probe and ``scripts/batch_invariance.py`` compare them."""
        batch, seq = self.batch, self.slots[0].seq_id

        def decode(chunk: list[int], first: int, logits: bool) -> bool:
            for i, token in enumerate(chunk):
                batch.token[i], batch.pos[i] = token, first + i
                batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
                batch.logits[i] = logits
            batch.n_tokens = len(chunk)
            return llama_cpp.llama_decode(self.ctx, batch) == 0

        rows: list[np.ndarray] = []
        try:
            llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)
            if not decode(tokens[:prefix], 0, False):
                return None
            for start in range(prefix, len(tokens), per_pass):
                chunk = tokens[start:start + per_pass]
                if not decode(chunk, start, True):
                    return None
                rows += [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i),
                                               shape=(self.n_vocab,)).copy() for i in range(len(chunk))]
            return rows
        finally:
            llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def _passes_agree(self) -> bool:
        """Whether this context gives a text's tokens identical logits decoded one per pass and several per
        pass (``1 + max_draft`` and 3 tokens per pass)."""
        rows = min(self.planner.max_draft + 1, self.n_batch)
        tokens = self.loaded.tokenize(EXACTNESS_PROBE_TEXT, add_bos=True, special=False)[:2 + rows]
        single = self.logits_in_passes(tokens, 2, 1)
        agree = single is not None
        for per_pass in (rows, 3):
            batched = self.logits_in_passes(tokens, 2, per_pass) if agree else None
            agree = batched is not None and all(np.array_equal(a, b) for a, b in zip(single, batched, strict=True))
        log.info("prompt lookup: passes of several tokens %s one-token passes bit for bit; greedy replies %s",
                 "match" if agree else "do not match", "draft too" if agree else "decode one token per pass")
        return agree

    def _can_draft(self, sampling: SamplingParams) -> bool:
        """Whether a reply sampled so may ever verify drafts: a sampled one always, a greedy one where passes agree."""
        return not is_greedy(sampling) or self.exact_passes

    def _may_draft(self, slot: Slot, run: _Running, rows: int) -> bool:
        """Whether ``run`` may verify drafted tokens this step (``rows``: its token and the most it drafts)."""
        return not is_greedy(run.job.sampling) or (self.exact_passes and len(slot.tokens) + rows <= self.exact_cells)

    # -- admission -------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return sum(1 for slot in self.slots if slot.running is None)

    @property
    def idle(self) -> bool:
        return all(slot.running is None for slot in self.slots)

    def active_users(self) -> Counter[str]:
        return Counter(s.running.job.user for s in self.slots if s.running and s.running.job.user is not None)

    def admit(self, job: Job) -> None:
        """Give ``job`` a free slot, reusing whatever its KV cache already holds of the prompt."""
        eog = self.end_of_generation if job.sampling.ignore_eos else None
        sampler = ReplySampler(self.vocab, job.sampling, end_of_generation=eog,
                               special_piece=lambda token: self._piece(token, special=True) or b"")
        slot = self._choose_slot(job)
        slot.conversation = job.conversation
        n = min(common_prefix(slot.tokens, job.tokens), len(job.tokens) - 1)
        if n < len(slot.tokens) and not llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, n, -1):
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)  # this cache cannot cut; start over
            n = 0
        elif not self._window_kept(slot, n):
            log.info("the sliding window before token %d was overwritten; evaluating the prompt again", n)
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            n = 0
        del slot.tokens[n:]
        n = self._share_prefix(slot, job.tokens, n)
        slot.running = _Running(job=job, sampler=sampler, pending=job.tokens[n:], cached=n,
                                scanner=StopScanner(job.stop),
                                lookup=(PromptLookup(job.tokens) if self.prompt_lookup and self._can_draft(job.sampling)
                                        else None))

    def _window_kept(self, slot: Slot, n: int) -> bool:
        """Whether the token after the first ``n`` of ``slot`` still finds its sliding window in the cache.

        Sliding-window layers overwrite cells that the newest token no longer sees, so a sequence cut
        back past them lacks the window its next token needs (llama.cpp's server uses the same test).
        """
        if self.n_swa <= 0 or n == 0:
            return True
        oldest = llama_cpp.llama_memory_seq_pos_min(self.memory, slot.seq_id)
        return oldest == 0 or 0 < oldest < n - self.n_swa

    def _share_prefix(self, slot: Slot, tokens: list[int], cached: int) -> int:
        """Copy a longer start of ``tokens`` from another sequence's cache rather than evaluate it again.

        Chats that share a system prompt, or readers asking about the same text, then evaluate only
        what is their own. Sequences live in separate KV streams, so llama.cpp copies the whole stream
        (about 12 ms for Gemma 3 270M at 4,096 tokens, where evaluating 16 tokens takes ~70 ms on one
        core) unless ``_copy_state`` can copy just the cells in use: it is worth it only for at least
        ``min_shared`` more tokens. Returns the tokens now cached.
        """
        source, shared = None, cached
        for other in self.slots:
            if other is not slot and len(other.tokens) > shared:
                length = min(common_prefix(other.tokens, tokens), len(tokens) - 1)
                if length > shared and self._window_kept(other, length):
                    source, shared = other, length
        if source is None or shared - cached < self.min_shared:
            return cached
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        if not self._copy_state(source, slot):
            llama_cpp.llama_memory_seq_cp(self.memory, source.seq_id, slot.seq_id, -1, -1)
            slot.copy_pending = source.copy_source = True
        if not llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, shared, -1):
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)  # this cache cannot cut; start over
            slot.tokens = []
            return 0
        slot.tokens = tokens[:shared]
        return shared

    def _copy_state(self, source: Slot, slot: Slot) -> bool:
        """Copy ``source``'s cells into ``slot`` now, through llama.cpp's per-sequence state; False to leave it
        to ``llama_memory_seq_cp``.

        A state holds only the cells in use: ~1 ms for a 34-token prompt of Gemma 3 270M, where the
        stream copy moves all 4,096 cells (~11 ms) inside the next decode, so with four users asking
        at once the last three waited ~35 ms more for their first token. Past a quarter of the stream
        (read and written once each) the state is no cheaper. A copy still queued into ``source``, or
        out of ``slot``, must run first, so those wait for the stream copy too.
        """
        if source.copy_pending or slot.copy_source or slot.copy_pending or len(source.tokens) > self.max_state_copy:
            return False
        size = llama_cpp.llama_state_seq_get_size(self.ctx, source.seq_id)
        state = (ctypes.c_uint8 * size)()
        if (size and llama_cpp.llama_state_seq_get_data(self.ctx, state, size, source.seq_id)
                and llama_cpp.llama_state_seq_set_data(self.ctx, state, size, slot.seq_id)):
            return True
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        return False

    def _choose_slot(self, job: Job) -> Slot:
        free = [slot for slot in self.slots if slot.running is None]
        if job.conversation is not None:
            for slot in free:
                if slot.conversation == job.conversation:
                    return slot
        else:
            def reusable(slot: Slot) -> int:
                return common_prefix(slot.tokens, job.tokens) if slot.conversation is None else 0

            shared = max(free, key=reusable)
            # Take over a cache only when at least half of it is this prompt's prefix (its own earlier
            # turn, a common system prompt), as llama.cpp's server does: a few template tokens in common
            # must not wipe another conversation's cache while other slots are free.
            if reusable(shared) > 0 and 2 * reusable(shared) >= len(shared.tokens):
                return shared
        slot = min(free, key=lambda s: (-self._running_neighbours(s), bool(s.tokens), s.last_used))
        self._evict(slot)
        saved = self.store.pop(job.conversation) if job.conversation is not None else None
        if saved is not None:
            tokens, state = saved
            if slot.copy_pending or slot.copy_source:  # a queued copy would overwrite or copy the restored state
                log.info("a copy into this sequence is still queued; evaluating the conversation again")
            elif llama_cpp.llama_state_seq_set_data(self.ctx, state, len(state), slot.seq_id):
                slot.tokens = list(tokens)
            else:
                log.warning("could not restore the cached state of a conversation; evaluating it again")
                llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        return slot

    def _running_neighbours(self, slot: Slot) -> int:
        """How many of the sequences on either side of ``slot`` are replying (0-2).

        Replies in sequences next to each other decode in one pass of llama.cpp; four in sequences
        1, 3, 5 and 7 took four (41 tokens/s for Gemma 3 270M on 2 cores, 75 in 0-3). So a new
        conversation takes a free sequence beside the running ones before an empty one, and an empty one
        before the least recently used cache (an evicted cache goes to the RAM store when there is room).
        """
        return sum(1 for i in (slot.seq_id - 1, slot.seq_id + 1)
                   if 0 <= i < len(self.slots) and self.slots[i].running is not None)

    def _evict(self, slot: Slot) -> None:
        """Empty a slot, saving its conversation's KV state to RAM first when there is room for it."""
        if slot.tokens and slot.conversation is not None and self.store.capacity > 0:
            size = llama_cpp.llama_state_seq_get_size(self.ctx, slot.seq_id)
            if 0 < size <= self.store.capacity:
                state = (ctypes.c_uint8 * size)()
                if llama_cpp.llama_state_seq_get_data(self.ctx, state, size, slot.seq_id):
                    self.store.put(slot.conversation, list(slot.tokens), state)
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        slot.tokens = []
        slot.conversation = None

    # -- decoding --------------------------------------------------------------------------

    def step(self) -> None:
        """Decode one batch: one token for each replying sequence, or chunks of the waiting prompts.

        Prompts go first, up to ``n_batch`` of their tokens between two tokens of the running replies,
        so a long prompt holds the replies back one chunk at a time. Over separate KV streams llama.cpp
        would split a batch mixing both into two passes anyway (the replies with one token of each
        prompt, then the rest of the prompts), and every reply's token would wait for both: separate
        steps cost the replies the same and give new prompts their first token a pass sooner.
        """
        for slot in self.slots:
            if slot.running and slot.running.job.cancel.is_set():
                self._finish(slot, "cancelled")
        decoding = [s for s in self.slots if s.running and s.running.next_token is not None]
        prompting = sorted((s for s in self.slots if s.running and s.running.pending),
                           key=lambda s: s.running.job.submitted)  # type: ignore[union-attr]
        chunks: list[tuple[Slot, list[int]]] = []
        room = self.n_batch - self._prompt_tokens_since_decode if decoding else self.n_batch
        if prompting and room > 0:
            for slot in prompting:
                if room <= 0:
                    break
                chunk = slot.running.pending[:room]  # type: ignore[union-attr]
                chunks.append((slot, chunk))
                room -= len(chunk)
                self._prompt_tokens_since_decode += len(chunk)
        else:
            chunks = self._decode_chunks(decoding)
            self._prompt_tokens_since_decode = 0
        if not chunks:
            return
        # llama.cpp runs a batch over separate KV streams as one pass per run of consecutive sequence ids
        # (each giving as many tokens as the shortest): the batch lists them in id order, and
        # ``_choose_slot`` keeps the running ones next to each other.
        chunks.sort(key=lambda c: c[0].seq_id)
        started = time.perf_counter()
        batch, n = self.batch, 0
        for slot, chunk in chunks:
            run = slot.running
            assert run is not None
            replying = run.next_token is not None  # every row of a reply's chunk (its token, its draft) is sampled
            wants_logits = replying or len(chunk) == len(run.pending)
            for i, token in enumerate(chunk):
                batch.token[n] = token
                batch.pos[n] = len(slot.tokens) + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = replying or (wants_logits and i == len(chunk) - 1)
                n += 1
            if wants_logits:
                run.output_index = n - len(chunk) if replying else n - 1
        batch.n_tokens = n
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            log.error("llama_decode failed with code %d for %d sequences", code, len(chunks))
            for slot, _ in chunks:
                if slot.running:
                    slot.running.job.emit(RuntimeError(f"llama.cpp could not decode this reply (code {code})."))
                    self._finish(slot, "error", emit_stats=False)
                    llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
                    slot.tokens = []
            return
        for slot in self.slots:
            slot.copy_pending = slot.copy_source = False  # llama.cpp applied queued copies before this batch
        decoded = False  # a step of reply tokens (and drafts), not of prompts
        for slot, chunk in chunks:
            run = slot.running
            assert run is not None
            slot.tokens.extend(chunk)
            drafted = 0
            if run.next_token is None:
                del run.pending[: len(chunk)]
                self.evaluated_tokens += len(chunk)
            else:
                decoded, drafted = True, len(chunk) - 1
            if run.output_index is not None and not run.pending:
                self._sample(slot, run, drafted)
        if decoded and self.prompt_lookup and self.draft is None:  # the planner sizes prompt lookup's drafts
            self.planner.observe(n, time.perf_counter() - started)

    def _decode_chunks(self, decoding: list[Slot]) -> list[tuple[Slot, list[int]]]:
        """Each replying sequence's next token, then the tokens drafted after it when verifying them pays.

        All sequences verify as many drafted tokens, and all of them fit one ubatch, so llama.cpp runs
        the step as one pass (over separate KV streams it splits sequences of unequal lengths into
        passes). One pass also keeps a rollback safe with sliding-window layers: the pass reuses only
        cells its first token no longer sees, which no later token sees either.
        """
        chunks = [(slot, [slot.running.next_token]) for slot in decoding]  # type: ignore[union-attr,list-item]
        if not self.drafting:
            return chunks
        room = min(self.n_batch, self.n_ubatch) // len(decoding) - 1
        limits = []
        for slot in decoding:
            run = slot.running
            assert run is not None
            # A step with d drafted tokens writes up to d + 1 tokens and puts d + 1 in the cache.
            limit = min(room, self.planner.max_draft, run.job.sampling.max_tokens - run.generated - 1,
                        self.n_ctx_seq - len(slot.tokens) - 2)
            if limit <= 0 or not self._may_draft(slot, run, limit + 1):
                return chunks
            limits.append(limit)
        if self.draft is not None:
            length = min(*limits, self.draft_length)
            guesses = self.draft.propose([(slot.seq_id, [*slot.tokens, chunk[0]]) for slot, chunk in chunks], length)
            for (_, chunk), guess in zip(chunks, guesses):
                chunk.extend(guess)
            return chunks
        found = []
        for slot, limit in zip(decoding, limits):
            assert slot.running is not None and slot.running.lookup is not None
            draft = slot.running.lookup.draft(limit)
            if draft is None:
                return chunks
            found.append(draft)
        drafted = self.planner.choose([(self.planner.acceptance(d.match), len(d.tokens)) for d in found])
        if drafted:
            for (slot, chunk), draft in zip(chunks, found):
                chunk.extend(draft.tokens[:drafted])
                slot.running.draft_match = draft.match  # type: ignore[union-attr]
        return chunks

    def _sample(self, slot: Slot, run: _Running, drafted: int = 0) -> None:
        """The reply's next tokens from this step's rows: the model's pick at each row, going on to the next
        row while the pick is the token drafted there (that row then saw the history the reply has).

        Each pick is the sampler chain's, in order, exactly as without drafts, so greedy replies are the
        same and sampled ones keep their distribution. The cache cells of rejected drafts are removed.
        """
        first, run.output_index = run.output_index, None
        confirmed = len(slot.tokens) - drafted  # cells holding the reply's real history
        accepted = 0
        run.drafted += drafted
        while True:
            token = self._next_token(slot, run, first + accepted, confirmed + accepted)
            if token is not None and accepted < drafted and token == slot.tokens[confirmed + accepted]:
                accepted += 1
                run.accepted += 1
                continue
            if token is not None:
                run.next_token = token
            break
        if not drafted:
            return
        if self.draft is not None:
            self.draft_length = (min(self.draft_length + 2, self.planner.max_draft) if accepted == drafted
                                 else max(1, accepted + 1))
        else:
            self.planner.record(run.draft_match, accepted, missed=token is not None and accepted < drafted)
        self.drafted_tokens += drafted
        self.accepted_tokens += accepted
        keep = confirmed + accepted
        if keep < len(slot.tokens):
            if not llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1):
                # Models whose cache cannot be cut never draft (see __init__); this is the guard if one does.
                log.error("llama.cpp refused to remove rejected drafts from sequence %d", slot.seq_id)
                llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
                slot.tokens = []
                if slot.running is not None:
                    run.job.emit(RuntimeError("llama.cpp could not undo rejected draft tokens of this reply."))
                    self._finish(slot, "error", emit_stats=False)
                return
            del slot.tokens[keep:]

    def _next_token(self, slot: Slot, run: _Running, index: int, cached: int) -> int | None:
        """Sample the token at batch row ``index`` and hand it to the reader; None once the reply has ended.

        ``cached``: the cells of the sequence that hold its history up to that row.
        """
        token = run.sampler.pick(self.ctx, index)
        if run.first_token_at is None:
            run.first_token_at = time.perf_counter()
        piece = self._piece(token, special=run.job.special_text)
        if piece is None:
            if not run.job.sampling.ignore_eos:
                self._finish(slot, "stop")
                return None
            # Banned, yet taken when nothing else was left (a grammar that is complete): the reply still
            # runs to max_tokens, as llama.cpp's server does with ignore_eos.
            piece = b""
        run.generated += 1
        logprobs: list[TokenLogprob] | None = None
        if run.job.sampling.logprobs is not None:
            logprobs = [logprobs_for(self.ctx, self.vocab, index, self.n_vocab, token, run.job.sampling.logprobs)]
        text, stopped = run.scanner.feed(run.decoder.decode(piece))
        if text or logprobs:
            run.job.emit(StreamChunk(text=text, logprobs=logprobs))
        if stopped:
            self._finish(slot, "stop", flush=False)
            return None
        if run.generated >= run.job.sampling.max_tokens or cached + 1 >= self.n_ctx_seq:
            self._finish(slot, "length")
            return None
        if run.lookup is not None:
            run.lookup.extend((token,))
        return token

    def _piece(self, token: int, *, special: bool = False) -> bytes | None:
        """The bytes ``token`` stands for, or None if it ends the reply (asked of llama.cpp once per token)."""
        pieces = self._special_pieces if special else self._pieces
        try:
            return pieces[token]
        except KeyError:
            is_end = llama_cpp.llama_vocab_is_eog(self.vocab, token)
            piece = None if is_end else token_piece(self.vocab, token, special=special)
            pieces[token] = piece
            return piece

    def _finish(self, slot: Slot, reason: str, *, flush: bool = True, emit_stats: bool = True) -> None:
        run = slot.running
        assert run is not None
        slot.running = None
        slot.last_used = time.perf_counter()
        if slot.copy_pending:  # ended before the copy was made: nothing in this cache can be trusted
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            slot.tokens = []
            slot.conversation = None
        run.sampler.free()
        job = run.job
        if flush:
            tail = run.scanner.feed(run.decoder.decode(b"", final=True))[0] + run.scanner.flush()
            if tail:
                job.emit(StreamChunk(text=tail))
        if emit_stats:
            done = time.perf_counter()
            job.emit(StreamChunk(stats=GenerationStats(
                prompt_tokens=len(job.tokens),
                completion_tokens=run.generated,
                ttft_s=(run.first_token_at or done) - job.submitted,
                total_s=done - job.submitted,
                stopped_by_user=reason == "cancelled",
                dropped_messages=job.dropped,
                finish_reason=reason,
                cached_tokens=run.cached,
                stop_sequence=run.scanner.matched if run.scanner.matched in job.sampling.stop else None,
                drafted_tokens=run.drafted,
                accepted_tokens=run.accepted,
            )))
        job.finished()

    def fail_all(self, error: BaseException) -> None:
        """End every running reply with ``error`` (after an unexpected failure in the engine thread)."""
        for slot in self.slots:
            if slot.running:
                slot.running.job.emit(error)
                self._finish(slot, "error", flush=False, emit_stats=False)

    def close(self) -> None:
        for slot in self.slots:
            if slot.running:
                slot.running.sampler.free()
                slot.running = None
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None
        if self.draft is not None:
            self.draft.close()
            self.draft = None
