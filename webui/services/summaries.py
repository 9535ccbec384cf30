"""Summaries of a document or a whole collection: one pass when it fits, map-reduce when not, with Stop.

A summary the page starts runs as a background job of its user (:class:`SummaryJob`), so closing
the page only stops following it; the finished summary is saved as a chat in the user's history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from webui.auth import User
from webui.engine import Engine, EngineError, Message, NoModelLoaded, SamplingParams
from webui.errors import UserError, unexpected_message
from webui.history import HistoryStore
from webui.prompts.presets import PresetError
from webui.rag import Passage, RagError
from webui.rag.summarize import (
    REDUCE_INSTRUCTIONS,
    Piece,
    Place,
    cites_anything,
    estimated_calls,
    format_places,
    input_budget,
    map_prompt,
    merged_places,
    pack,
    reduce_groups,
    reduce_prompt,
    reply_tokens_for,
    resolve_citations,
    spans_several_files,
    summary_title,
    without_overlaps,
)
from webui.services.documents import DocumentService
from webui.services.presets import PresetService, applied_preset
from webui.services.streaming import UPDATE_INTERVAL_S

log = logging.getLogger(__name__)

SUMMARIZER_PRESET = "Summarizer"
# Used when the built-in preset was deleted or cannot be read: the same instructions, shorter.
FALLBACK_SYSTEM = (
    "Summarize the text the user gives you: one sentence with the main point, then up to five "
    "bullet points with the key facts. Use only what the text says."
)
FALLBACK_SAMPLING = SamplingParams(temperature=0.2, top_p=0.9, min_p=0.05, repeat_penalty=1.1, max_tokens=512)
_LABEL_TOKENS = 16  # a partial summary's "[n] (pp. 3–7)" label, for the progress estimate


class SummaryError(RagError):
    """Nothing to summarize or to save; str() is the sentence to show."""


class SummaryRunning(SummaryError):
    """The user's previous summary is still running: one at a time per user."""


@dataclass(frozen=True)
class CitedPart:
    """One part a summary was made from, with the pages (or sections) it covers as a reader cites them."""

    citation: str  # "pp. 3–7", or "a.pdf, pp. 3–7" when the summary spans several files
    text: str


@dataclass(frozen=True)
class Summary:
    """A finished (or stopped) summary and the parts its citations point into."""

    collection: str
    file_name: str | None  # None: the whole collection
    text: str  # citations already turned into pages: "[pp. 3–7]"
    parts: tuple[Piece, ...]  # the partial summaries (map-reduce) or the passages (one pass)
    passages: int
    map_steps: int
    calls: int
    seconds: float
    stopped: bool = False

    @property
    def subject(self) -> str:
        """What was summarized, as a title names it."""
        return self.file_name or f"the collection '{self.collection}'"

    @property
    def with_file(self) -> bool:
        return spans_several_files(self.parts)

    @property
    def cites_pages(self) -> bool:
        """Whether the text cites any page or section (small models often cite nothing)."""
        return cites_anything(self.text)

    @property
    def cited_parts(self) -> tuple[CitedPart, ...]:
        """The parts with their citations, file names included only when several files are summarized."""
        return tuple(CitedPart(format_places(p.places, with_file=self.with_file), p.text) for p in self.parts)


@dataclass(frozen=True)
class SummaryUpdate:
    """What the page shows while a summary runs: a caption, a fraction done, the text streaming now."""

    caption: str
    fraction: float
    text: str = ""
    done: bool = False
    summary: Summary | None = None
    error: str | None = None
    conversation: str | None = None  # the chat a finished job's summary was saved as


@dataclass(frozen=True)
class _Setup:
    system: str
    sampling: SamplingParams
    budget: int
    per_group: int


def summary_sources(summary: Summary) -> list[dict[str, Any]]:
    """The parts as a reply's sources are saved in the chat (same keys as ``chat.sources_meta``)."""
    sources = []
    for number, part in enumerate(summary.parts, start=1):
        first = part.places[0] if part.places else Place("")
        sources.append({
            "number": number, "file_name": first.file_name, "page": first.page, "heading": first.heading,
            "collection": summary.collection, "score": 1.0,
            "citation": format_places(part.places, with_file=True), "text": part.text,
        })
    return sources


class SummaryJob:
    """One user's summary running on its own thread: its latest update for whoever follows it, and Stop.

    Followers only read: one that goes away (its page was closed) leaves the job running.
    """

    def __init__(self, owner: str, subject: str) -> None:
        self.owner = owner  # the user id: a job is found and stopped by its owner only
        self.subject = subject  # "greenhouse.pdf" or "the collection 'Greenhouse'"
        self.cancel = threading.Event()
        self._changed = threading.Condition()
        self._latest = SummaryUpdate(caption=f"Starting the summary of {subject}…", fraction=0.0)
        self._version = 0

    @property
    def latest(self) -> SummaryUpdate:
        with self._changed:
            return self._latest

    @property
    def running(self) -> bool:
        return not self.latest.done

    def publish(self, update: SummaryUpdate) -> None:
        with self._changed:
            self._latest = update
            self._version += 1
            self._changed.notify_all()

    def updates(self, *, wait_s: float = 1.0) -> Iterator[SummaryUpdate]:
        """The latest update now, then each newer one as it comes (a slow reader skips to the newest),
        until the last, which is ``done``. ``wait_s`` bounds each wait, so an abandoned reader's thread
        is soon free."""
        seen = -1
        while True:
            with self._changed:
                if not self._changed.wait_for(lambda: self._version != seen, timeout=wait_s):
                    continue
                update, seen = self._latest, self._version
            yield update
            if update.done:
                return


class SummaryService:
    """Summarize what a user may read, through the engine's public streaming interface."""

    def __init__(
        self, engine: Engine, documents: DocumentService, presets: PresetService, history: HistoryStore
    ) -> None:
        self._engine = engine
        self._documents = documents
        self._presets = presets
        self._history = history
        self._jobs: dict[str, SummaryJob] = {}  # user id -> their latest job, running or finished
        self._jobs_guard = threading.Lock()

    def start(
        self, user: User, collection: str, file_name: str | None = None, *, max_tokens: int | None = None
    ) -> SummaryJob:
        """Start summarizing on a thread of its own; raises :class:`SummaryRunning` while the user's
        previous summary runs. A finished summary with text is saved as a chat (its id in the last update)."""
        with self._jobs_guard:
            previous = self._jobs.get(user.id)
            if previous is not None and previous.running:
                raise SummaryRunning(f"A summary of {previous.subject} is still running: wait for it to "
                                     "finish, or stop it, before starting another.")
            job = SummaryJob(user.id, file_name or f"the collection '{collection}'")
            self._jobs[user.id] = job
        threading.Thread(target=self._run_job, args=(job, user, collection, file_name, max_tokens),
                         name=f"summary-{user.name}", daemon=True).start()
        return job

    def job(self, user: User) -> SummaryJob | None:
        """The user's latest summary job, running or finished (kept in memory until their next one)."""
        with self._jobs_guard:
            return self._jobs.get(user.id)

    def stop(self, user: User) -> bool:
        """Stop the user's running summary: the current generation and every step after it."""
        job = self.job(user)
        if job is None or not job.running:
            return False
        job.cancel.set()
        return True

    def summarize(
        self,
        user: User,
        collection: str,
        file_name: str | None = None,
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[SummaryUpdate]:
        """Stream progress, then one update with ``done`` and the summary (or an error).

        ``user`` must be able to read the collection (their own, or a shared one); their own copy
        of the Summarizer preset is used if they have one. ``max_tokens`` caps each model reply; by
        default the preset's value is used. Setting ``cancel`` stops it.
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        try:
            passages = self._documents.passages(user.id, collection, file_name)
            if not passages:
                raise SummaryError(f"There is nothing to summarize in '{collection}' yet: add files first.")
            yield from self._run(user, collection, file_name, passages, cancel, started, max_tokens)
        except (EngineError, RagError) as exc:
            log.warning("summary of %s/%s failed: %s", collection, file_name or "*", exc)
            yield SummaryUpdate(caption="", fraction=0.0, done=True, error=str(exc))

    def _run_job(
        self, job: SummaryJob, user: User, collection: str, file_name: str | None, max_tokens: int | None
    ) -> None:
        """The job's thread: publish each update; save a summary with text as a chat before the last."""
        final = SummaryUpdate(caption="", fraction=0.0, done=True, error="The summary ended without a result.")
        try:
            for update in self.summarize(user, collection, file_name, max_tokens=max_tokens, cancel=job.cancel):
                if update.done:
                    final = update
                    break
                job.publish(update)
            if final.summary is not None and final.summary.text.strip():
                final = replace(final, conversation=self.save_to_chat(user, final.summary))
        except Exception as exc:  # noqa: BLE001 - the job ends with a sentence; a bug's traceback is logged
            if isinstance(exc, UserError):
                log.warning("summary of %s for %s failed: %s", job.subject, user.name, exc)
                message = str(exc)
            else:
                log.error("summary of %s for %s failed unexpectedly", job.subject, user.name, exc_info=exc)
                message = unexpected_message(exc)
            if final.summary is not None:  # made, but not saved: still shown on the page
                message = f"The summary could not be saved to the chat: {message}"
            final = replace(final, done=True, error=message)
        job.publish(final)

    def save_to_chat(self, user: User, summary: Summary) -> str:
        """Save the summary as a new conversation (request and cited reply); returns its id."""
        if not summary.text.strip():
            raise SummaryError("There is no summary to save yet: summarize a document first.")
        info = self._engine.info
        owner = user.id
        conversation = self._history.create(owner, f"Summary of {summary.subject}", model=info.file if info else None)
        self._history.append(owner, conversation.id, "user", f"Summarize {summary.subject}.")
        self._history.append(owner, conversation.id, "assistant", summary.text,
                             meta={"sources": summary_sources(summary), "collections": [summary.collection]})
        return conversation.id

    # -- the steps ---------------------------------------------------------------------------

    def _setup(self, user: User, title: str, max_tokens: int | None) -> _Setup:
        info = self._engine.info
        if info is None:
            raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
        try:
            preset = applied_preset(self._presets.get(SUMMARIZER_PRESET, user), info)
            system = preset.system_prompt
            sampling = replace(FALLBACK_SAMPLING, **preset.sampling.as_dict())
        except PresetError as exc:
            log.warning("the %s preset cannot be used (%s); using the built-in instructions", SUMMARIZER_PRESET, exc)
            system, sampling = FALLBACK_SYSTEM, FALLBACK_SAMPLING
        count = self._engine.count_tokens
        # The longer of the two instructions, so one budget serves map and reduce steps alike.
        overhead = count(system) + count(REDUCE_INSTRUCTIONS.replace("{title}", title))
        reply = reply_tokens_for(info.n_ctx, max_tokens or sampling.max_tokens, overhead)
        budget = input_budget(info.n_ctx, reply, overhead)
        if budget < 64:
            raise EngineError(
                f"The model's context window ({info.n_ctx} tokens) is too small to summarize with; "
                "load the model with a larger context size.")
        sampling = replace(sampling, max_tokens=reply)
        return _Setup(system, sampling, budget, per_group=max(2, budget // (reply + _LABEL_TOKENS)))

    def _run(
        self, user: User, collection: str, file_name: str | None, passages: Sequence[Passage],
        cancel: threading.Event, started: float, max_tokens: int | None,
    ) -> Iterator[SummaryUpdate]:
        title = summary_title(file_name, collection)
        setup = self._setup(user, title, max_tokens)
        count = self._engine.count_tokens
        pieces = without_overlaps([Piece(p.text, (Place(p.file_name, p.page, p.heading),)) for p in passages])
        with_file = spans_several_files(pieces)
        batches = pack(pieces, budget_tokens=setup.budget, count_tokens=count, with_file=with_file)
        total = estimated_calls(len(batches), setup.per_group)
        calls = 0

        def finished(text: str, parts: Sequence[Piece], *, stopped: bool) -> SummaryUpdate:
            summary = Summary(collection, file_name, text, tuple(parts), len(passages), len(batches), calls,
                              round(time.monotonic() - started, 2), stopped)
            log.info("summary of %s: %d passages, %d map steps, %d calls, %.1f s%s", summary.subject,
                     len(passages), len(batches), calls, summary.seconds, " (stopped)" if stopped else "")
            return SummaryUpdate(caption="Stopped." if stopped else "Done.", fraction=1.0, done=True, summary=summary)

        def step(prompt: str, caption: str) -> Iterator[SummaryUpdate | str]:
            """Stream one model call: updates while it runs, then its whole text (a str) last."""
            messages: list[Message] = [{"role": "system", "content": setup.system}, {"role": "user", "content": prompt}]
            text = ""
            yield SummaryUpdate(caption=caption, fraction=calls / total)
            shown_at = 0.0
            # Read to the very end: a stream left early sets ``cancel``, which here is the whole
            # summary's Stop flag, not just this step's.
            for chunk in self._engine.stream_chat(messages, setup.sampling, cancel=cancel, user=user.id,
                                                  conversation=None):
                text += chunk.text
                if chunk.text and time.monotonic() - shown_at >= UPDATE_INTERVAL_S:
                    shown_at = time.monotonic()
                    yield SummaryUpdate(caption=caption, fraction=calls / total, text=text)
            yield text

        # One pass: everything fits one call, and the passages themselves are what it cites.
        if len(batches) == 1:
            text = ""
            for item in step(map_prompt(title, batches[0], with_file=with_file), f"Summarizing {title}…"):
                if isinstance(item, str):
                    text = item
                else:
                    yield item
            calls = 1
            yield finished(resolve_citations(text, batches[0], with_file=with_file), batches[0],
                           stopped=cancel.is_set())
            return

        partials: list[Piece] = []
        for number, batch in enumerate(batches, start=1):
            if cancel.is_set():
                yield finished("", partials, stopped=True)
                return
            where = format_places(merged_places(batch), with_file=with_file)
            caption = f"Reading part {number} of {len(batches)} ({where})…"
            text = ""
            for item in step(map_prompt(title, batch, with_file=with_file), caption):
                if isinstance(item, str):
                    text = item
                else:
                    yield item
            calls += 1
            if cancel.is_set():  # a part cut short is not a summary of that part
                yield finished("", partials, stopped=True)
                return
            if text.strip():
                partials.append(Piece(resolve_citations(text, batch, with_file=with_file), merged_places(batch)))
        if not partials:
            raise SummaryError("The model wrote nothing for any part of the text; try another model.")

        level = partials
        while len(level) > 1:
            groups = reduce_groups(level, budget_tokens=setup.budget, count_tokens=count, with_file=with_file)
            combined: list[Piece] = []
            for group in groups:
                if cancel.is_set():
                    yield finished("", partials, stopped=True)
                    return
                if len(group) == 1:
                    combined.append(group[0])
                    continue
                where = format_places(merged_places(group), with_file=with_file)
                text = ""
                for item in step(reduce_prompt(title, group, with_file=with_file), f"Combining the summaries of {where}…"):
                    if isinstance(item, str):
                        text = item
                    else:
                        yield item
                calls += 1
                if cancel.is_set():
                    yield finished("", partials, stopped=True)
                    return
                # A combination that came out empty keeps its inputs' text rather than losing it.
                merged_text = resolve_citations(text, group, with_file=with_file) or "\n\n".join(p.text for p in group)
                combined.append(Piece(merged_text, merged_places(group)))
            level = combined
        yield finished(level[0].text, partials, stopped=False)
