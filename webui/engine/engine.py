"""The one owner of the llama.cpp model: load, unload, prepare (render, tokenize, fit), stream, cancel.

One engine thread owns the llama.cpp context and runs the scheduler (``Batcher``): replies join a
running batch at the next step, up to ``parallel`` at once; the rest wait in one line, first come
first served, and see their place in it. Loads and unloads wait in the same line and run once the
running replies are done. Tokenizing and rendering from other threads hold a read lock that a load
or unload takes for writing, so a model is never freed under them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webui.engine.errors import EngineError, ModelLoadError, NoModelLoaded
from webui.engine.handoff import STREAM_END, merge_handed_over, stream_ends
from webui.engine.loading import check_gguf_file
from webui.engine.policy import pick_next
from webui.engine.prepare import prepare_for
from webui.engine.replies import needs_parsing, parsed_reply
from webui.engine.scheduler import Batcher, Job, LoadedModel, open_model
from webui.engine.types import (
    FittedPrompt,
    GenerationStats,
    LoadSettings,
    Message,
    ModelInfo,
    PromptRequest,
    PromptLookupStats,
    SamplingParams,
    StreamChunk,
)
from webui.hardware import parse_proc_meminfo
from webui.prompts.templates import RenderedPrompt
from webui.prompts.toolcalls import ReplyFormat

log = logging.getLogger(__name__)

POLL_S = 0.1


class ReadWriteLock:
    """Many readers (tokenize, render) or one writer (load, unload); a waiting writer holds off new readers.

    The standard library has none. A thread that already reads may read again (``fit`` renders and
    tokenizes in a loop) without waiting behind a writer that waits for it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers: dict[int, int] = {}
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if me not in self._readers:
                while self._writing or self._writers_waiting:
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._readers[me] -= 1
                if not self._readers[me]:
                    del self._readers[me]
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass(eq=False)
class _Request:
    """A reply waiting in line (or running): what was asked, the prompt fitted for it, and its output."""

    ask: PromptRequest
    prompt: FittedPrompt | None  # None: no model was loaded to fit it for; it is fitted once admitted
    cancel: threading.Event
    user: str | None
    conversation: str | None
    out: queue.SimpleQueue[object] = field(default_factory=queue.SimpleQueue)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)
class _Command:
    """A load or unload waiting in line; it runs in the engine thread once no reply is running."""

    run: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def available_memory_bytes() -> int:
    """RAM available now (Linux); 0 when unknown, which lets ``choose_parallel`` take its default."""
    try:
        return parse_proc_meminfo(Path("/proc/meminfo").read_text())[1] * 2**20
    except OSError:
        return 0


class Engine:
    """Owns llama.cpp; every method is safe to call from any thread."""

    def __init__(self, *, prompt_cache_mb: int = 0, parallel: int | None = 1,
                 free_memory: Callable[[], int] = available_memory_bytes) -> None:
        """``parallel`` is how many replies decode together (None: chosen from free memory at load).
        ``prompt_cache_mb`` > 0 keeps the KV state of conversations evicted from their slot in RAM,
        so users who take turns do not evaluate their whole chat again."""
        self._prompt_cache_mb = prompt_cache_mb
        self._parallel = parallel
        self._free_memory = free_memory
        self._cond = threading.Condition()
        self._line: list[_Request | _Command] = []
        self._models = ReadWriteLock()
        self._loaded: LoadedModel | None = None
        self._batcher: Batcher | None = None
        self._load_number = 0  # counts loads, so a prompt fitted for an earlier one is fitted again
        self._thread: threading.Thread | None = None
        self._switching_to: str | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        loaded = self._loaded
        return loaded.info if loaded else None

    @property
    def load_settings(self) -> LoadSettings | None:
        loaded = self._loaded
        return loaded.settings if loaded else None

    @property
    def parallel(self) -> int:
        """Sequence slots of the loaded model's context (replies decoded at once); 0 with no model."""
        loaded = self._loaded
        return loaded.n_seq if loaded else 0

    @property
    def queue_length(self) -> int:
        """Requests (and model switches) waiting for a free slot."""
        with self._cond:
            return len(self._line)

    @property
    def switching_to(self) -> str | None:
        """The file a model switch is loading (or waiting to load), so waiting users can be told."""
        return self._switching_to

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens evaluated since the model was loaded (reused cache tokens not counted)."""
        batcher = self._batcher
        return batcher.evaluated_tokens if batcher else 0

    @property
    def prompt_lookup(self) -> PromptLookupStats | None:
        """Whether the loaded model drafts from the prompt, and how many drafted tokens it accepted; None with no model."""
        batcher = self._batcher
        if batcher is None:
            return None
        return PromptLookupStats(batcher.drafting, batcher.drafted_tokens, batcher.accepted_tokens,
                                 greedy_drafts=batcher.exact_passes,
                                 draft_model=batcher.draft.name if batcher.draft is not None else None)

    # -- loading -----------------------------------------------------------------------------

    def load(self, path: Path, settings: LoadSettings, *, on_wait: Callable[[int], None] | None = None) -> ModelInfo:
        """Load ``path``, replacing the current model only once the new one has loaded.

        A switch waits for the running replies. If the new file fails, the previous model is
        restored, so a bad file never leaves the app without a model.
        """
        path = Path(path)
        check_gguf_file(path)
        self._switching_to = path.name
        try:
            return self._command(lambda: self._load_now(path, settings), on_wait)
        finally:
            self._switching_to = None

    def unload(self) -> None:
        self._command(self._release_now, None)

    def _load_now(self, path: Path, settings: LoadSettings) -> ModelInfo:
        with self._models.write():
            previous = (self._loaded.info.path, self._loaded.settings) if self._loaded else None
            self._release()
            try:
                self._open(path, settings)
            except ModelLoadError:
                if previous is not None:
                    log.warning("restoring %s after a failed load of %s", previous[0].name, path.name)
                    self._open(*previous)
                raise
            assert self._loaded is not None
            return self._loaded.info

    def _release_now(self) -> None:
        with self._models.write():
            self._release()

    def _release(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self._loaded is not None:
            self._loaded.close()
        self._batcher = None
        self._loaded = None
        self._load_number += 1

    def _open(self, path: Path, settings: LoadSettings) -> None:
        started = time.perf_counter()
        loaded = open_model(path, settings, parallel=self._parallel, free_bytes=self._free_memory())
        try:
            batcher = Batcher(loaded, cache_bytes=self._prompt_cache_mb * 2**20)
        except BaseException:
            loaded.close()
            raise
        loaded.info = replace(loaded.info, n_ctx=batcher.n_ctx_seq)  # what llama.cpp made of the size asked for
        self._loaded, self._batcher = loaded, batcher
        self._load_number += 1
        log.info(
            "loaded %s (%s, n_ctx=%d x %d sequences, gpu layers=%d, format=%s) in %.1fs",
            path.name, loaded.info.architecture, loaded.info.n_ctx, loaded.n_seq, settings.n_gpu_layers,
            loaded.chat_format.name, time.perf_counter() - started,
        )

    # -- prompts and tokens ------------------------------------------------------------------

    def _require_model(self) -> LoadedModel:
        if self._loaded is None:
            raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
        return self._loaded

    def render(self, messages: Sequence[Message]) -> RenderedPrompt:
        """The exact text the model receives for ``messages``, special tokens included (the exact-prompt view)."""
        with self._models.read():
            return self._require_model().chat_format.render(list(messages))

    def count_tokens(self, text: str) -> int:
        with self._models.read():
            return len(self._require_model().tokenize(text, add_bos=False, special=False))

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """The tokens of ``messages`` as a prompt (template and special tokens included), nothing dropped."""
        with self._models.read():
            model = self._require_model()
            rendered = model.chat_format.render(list(messages))
            return len(model.tokenize(rendered.text, add_bos=not rendered.added_special, special=True))

    def prepare(self, request: PromptRequest) -> FittedPrompt:
        """The one prepare step: ``request`` rendered with the model's template, tokenized, fitted, checked.

        A chat too long for the context loses its oldest turns and its reply budget shrinks down to
        ``MIN_REPLY_TOKENS``, unless ``request.strict``; what still does not fit raises ContextExceeded,
        a grammar llama.cpp cannot compile InvalidGrammar. ``stream`` then runs exactly this.
        """
        with self._models.read():
            return prepare_for(self._require_model(), request, self._load_number)

    # -- generation --------------------------------------------------------------------------

    def stream(
        self,
        prompt: FittedPrompt,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the reply to a prepared prompt; the last chunk carries the stats.

        ``user`` keeps one user from taking a second slot while another waits; ``conversation``
        lets the next turn reuse this one's KV cache and evaluate only the new tokens.
        """
        request = _Request(prompt.request, prompt, cancel or threading.Event(), user, conversation)
        return self._parsed(request, self._submit(request, on_wait))

    def stream_chat(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> Iterator[StreamChunk]:
        """``prepare`` and ``stream`` a chat in one call; a refusal is raised where the stream is read."""
        ask = PromptRequest(sampling, messages=tuple(messages))
        return self._prepare_and_stream(ask, cancel, on_wait, user, conversation)

    def stream_completion(
        self,
        text: str,
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Raw continuation of ``text`` with no chat template (the notebook mode), as ``stream_chat``."""
        return self._prepare_and_stream(PromptRequest(sampling, text=text), cancel, on_wait, user, conversation)

    def _prepare_and_stream(
        self,
        ask: PromptRequest,
        cancel: threading.Event | None,
        on_wait: Callable[[int], None] | None,
        user: str | None,
        conversation: str | None,
    ) -> Iterator[StreamChunk]:
        request = _Request(ask, None, cancel or threading.Event(), user, conversation)
        try:
            request.prompt = self.prepare(ask)  # a prompt too long is refused at once, not after the wait
        except NoModelLoaded:
            pass  # it waits in line, in case a load is about to start, and fails there if none did
        except BaseException as exc:  # noqa: BLE001 - raised where the caller reads the stream
            request.out.put(exc)
            request.out.put(STREAM_END)
            return self._read(request, on_wait)
        return self._parsed(request, self._submit(request, on_wait))

    @staticmethod
    def _parsed(request: _Request, chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        """The reply split into answer, thinking and tool calls by the format its prompt was prepared with."""
        return parsed_reply(chunks, lambda: request.prompt.reply_format if request.prompt else ReplyFormat())

    def _submit(self, request: _Request, on_wait: Callable[[int], None] | None) -> Iterator[StreamChunk]:
        self._enqueue(request)
        return self._read(request, on_wait)

    def _read(self, request: _Request, on_wait: Callable[[int], None] | None) -> Iterator[StreamChunk]:
        """Everything the engine thread produced since the consumer last looked, merged into one chunk.

        The engine thread never waits for the consumer (the queue is unbounded), so the consumer's
        own thread reads it: no extra thread, and one wake-up instead of two per token and reply,
        which on 2 cores is CPU the model gets back. A consumer that stops reading cancels the reply
        (and takes it out of the line if it still waits).
        """
        finished = False
        reported = 0
        try:
            while not finished:
                try:
                    items = [request.out.get(timeout=POLL_S)]
                except queue.Empty:
                    position = self._position(request)
                    if on_wait and position and position != reported:
                        reported = position
                        on_wait(position)
                    continue
                while True:
                    try:
                        items.append(request.out.get_nowait())
                    except queue.Empty:
                        break
                finished = stream_ends(items)
                yield from merge_handed_over(items)
        finally:
            if not finished:
                request.cancel.set()  # a waiting request leaves the line; a running one stops at the next step
                self._withdraw(request)

    # -- the line and the engine thread ------------------------------------------------------

    def _enqueue(self, item: _Request | _Command) -> None:
        with self._cond:
            self._line.append(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llama-engine", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _position(self, item: _Request | _Command) -> int:
        """1 = next in line; 0 = not waiting (running or done)."""
        with self._cond:
            return self._line.index(item) + 1 if item in self._line else 0

    def _withdraw(self, item: _Request | _Command) -> bool:
        """Take a waiting item out of the line; False if it already left (it runs or ran)."""
        with self._cond:
            if item in self._line:
                self._line.remove(item)
                return True
            return False

    def _command(self, run: Callable[[], Any], on_wait: Callable[[int], None] | None) -> Any:
        command = _Command(run)
        self._enqueue(command)
        reported = 0
        while not command.done.wait(POLL_S):
            position = self._position(command)
            if on_wait and position and position != reported:
                reported = position
                try:
                    on_wait(position)
                except BaseException:
                    if self._withdraw(command):
                        raise
                    command.done.wait()  # it started already: let it finish before raising
                    raise
        if command.error is not None:
            raise command.error
        return command.result

    def _run(self) -> None:
        """The engine thread: admit waiting replies into free slots, run loads, step the batch."""
        while True:
            admitted: list[_Request] = []
            command: _Command | None = None
            with self._cond:
                self._drop_cancelled()
                batcher = self._batcher
                head = [item for item in self._line[: self._first_command()] if isinstance(item, _Request)]
                free = batcher.free_slots if batcher else len(head)  # with no model, they fail at once
                active = batcher.active_users() if batcher else {}
                while head and free:
                    request = head.pop(pick_next([r.user for r in head], active))
                    self._line.remove(request)
                    admitted.append(request)
                    if request.user is not None and batcher:
                        active[request.user] = active.get(request.user, 0) + 1
                    free -= 1
                idle = batcher is None or batcher.idle
                if not admitted and idle and self._line and isinstance(self._line[0], _Command):
                    command = self._line.pop(0)
                elif not admitted and idle:
                    self._cond.wait(POLL_S if self._line else None)
                    continue
            for request in admitted:
                self._admit(request)
            if command is not None:
                try:
                    command.result = command.run()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    command.error = exc
                command.done.set()
                continue
            batcher = self._batcher
            if batcher is not None and not batcher.idle:
                try:
                    batcher.step()
                except Exception as exc:  # noqa: BLE001 - one bad step must not kill the engine thread
                    log.exception("the engine's decode step failed")
                    batcher.fail_all(EngineError(f"The reply failed inside llama.cpp: {exc}"))

    def _first_command(self) -> int:
        for index, item in enumerate(self._line):
            if isinstance(item, _Command):
                return index
        return len(self._line)

    def _drop_cancelled(self) -> None:
        """Requests stopped while still waiting leave the line without ever running."""
        for request in [i for i in self._line if isinstance(i, _Request) and i.cancel.is_set()]:
            self._line.remove(request)
            request.out.put(StreamChunk(stats=GenerationStats(
                prompt_tokens=request.prompt.prompt_tokens if request.prompt else 0,
                completion_tokens=0, ttft_s=0.0, total_s=time.perf_counter() - request.submitted,
                stopped_by_user=True, dropped_messages=0, finish_reason="cancelled",
            )))
            request.out.put(STREAM_END)

    def _admit(self, request: _Request) -> None:
        try:
            if self._loaded is None or self._batcher is None:
                raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
            prompt = request.prompt
            if prompt is None or prompt.load_number != self._load_number:  # the model changed while it waited
                prompt = request.prompt = prepare_for(self._loaded, request.ask, self._load_number)
            self._batcher.admit(Job(
                tokens=prompt.tokens, stop=prompt.stop, sampling=prompt.sampling, dropped=prompt.dropped_messages,
                cancel=request.cancel, emit=request.out.put, finished=lambda: request.out.put(STREAM_END),
                user=request.user, conversation=request.conversation, submitted=request.submitted,
                special_text=needs_parsing(prompt.reply_format),  # the parser reads the family's markers
            ))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            request.out.put(exc)
            request.out.put(STREAM_END)
