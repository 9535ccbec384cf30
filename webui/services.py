"""The Services object: the one thing the UI talks to, built once at start-up in cli.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui import __version__
from webui.config import Settings
from webui.engine import Engine, EngineError, GenerationStats, Message, NoModelLoaded, SamplingParams
from webui.hardware import HardwareInfo
from webui.history import Conversation, HistoryStore, StoredMessage, title_from_first_message
from webui.auth import User, UserStore
from webui.models.manager import ModelManager
from webui.prompts.presets import PresetStore
from webui.rag import NO_RELEVANT_PASSAGES_MESSAGE, DocumentLibrary, Passage, RagError, build_context, fit_passages
from webui.rag.embeddings import Embedder, EmbeddingModelError
from webui.rag.pipeline import DEFAULT_MIN_SCORE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyUpdate:
    """What the chat page shows while a reply streams: the text so far, then the stats."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    notice: str | None = None  # e.g. "2 older messages were left out to fit the context window"
    error: str | None = None
    sources: tuple[Passage, ...] = ()  # the numbered passages a document answer may cite


@dataclass(frozen=True)
class PreparedReply:
    """A reply ready to generate: the filled system prompt, the conversation and its sources.

    ``answer`` is set when the reply is known without the model (no relevant passage), and
    ``error`` when it cannot be given; the UI shows either instead of generating.
    """

    system_prompt: str
    conversation: list[Message]
    sources: tuple[Passage, ...] = ()
    answer: str | None = None
    error: str | None = None


@dataclass
class CancelRegistry:
    """One Stop flag per browser session, so a user's Stop cancels only their own request."""

    _events: dict[str, threading.Event] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, key: str) -> threading.Event:
        with self._guard:
            event = threading.Event()
            self._events[key] = event
            return event

    def stop(self, key: str) -> bool:
        with self._guard:
            event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    def finish(self, key: str, event: threading.Event) -> None:
        with self._guard:
            if self._events.get(key) is event:
                del self._events[key]


def dropped_notice(count: int) -> str | None:
    if count <= 0:
        return None
    noun = "message was" if count == 1 else "messages were"
    return f"The conversation is longer than the context window: the {count} oldest {noun} left out of this reply."


class ChatService:
    """Chat turns through the engine, with every message saved to the user's history."""

    def __init__(
        self,
        engine: Engine,
        history: HistoryStore,
        *,
        documents: DocumentService | None = None,
        presets: PresetStore | None = None,
    ) -> None:
        self._engine = engine
        self._history = history
        self._documents = documents
        self._presets = presets
        self._cancels = CancelRegistry()

    # -- conversations -----------------------------------------------------------------------

    def conversations(self, owner: str) -> list[Conversation]:
        return self._history.list(owner)

    def messages(self, owner: str, conversation_id: str) -> list[StoredMessage]:
        return self._history.messages(owner, conversation_id)

    def add_user_message(self, owner: str, conversation_id: str | None, text: str) -> str:
        """Save the user's message (starting a conversation if needed); returns the conversation id."""
        if conversation_id is None:
            model = self._engine.info.file if self._engine.info else None
            conversation_id = self._history.create(owner, title_from_first_message(text), model=model).id
        self._history.append(owner, conversation_id, "user", text)
        return conversation_id

    def drop_last_reply(self, owner: str, conversation_id: str) -> None:
        """Forget the assistant's last reply (for Regenerate); the question stays."""
        stored = self._history.messages(owner, conversation_id)
        users = [m for m in stored if m.role == "user"]
        if users:
            self._history.truncate_after(owner, conversation_id, users[-1].id)

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        return self._history.rename(owner, conversation_id, title)

    def delete(self, owner: str, conversation_id: str) -> None:
        self._history.delete(owner, conversation_id)

    def clear(self, owner: str, conversation_id: str) -> None:
        self._history.clear(owner, conversation_id)

    # -- replies -----------------------------------------------------------------------------

    def prepare_reply(
        self,
        owner: str,
        conversation_id: str,
        *,
        system_prompt: str,
        sampling: SamplingParams,
        documents: DocumentQuery | None = None,
    ) -> PreparedReply:
        """What the model will be asked: the filled system prompt, the conversation, the sources.

        With ``documents`` naming collections, the passages retrieved for the question are trimmed
        to the context window and numbered into the prompt; when none is relevant, the prepared
        reply is the fixed answer saying so and the model is not asked at all.
        """
        stored = self._history.messages(owner, conversation_id)
        conversation: list[Message] = [{"role": m.role, "content": m.content} for m in stored]
        question = conversation[-1]["content"] if conversation and conversation[-1]["role"] == "user" else ""
        model_file = self._engine.info.file if self._engine.info else ""
        if documents is None or not documents.collections:
            system = fill_system_prompt(system_prompt, question=question, context="", model=model_file)
            return PreparedReply(system, conversation)
        try:
            found = self.document_library().retrieve(
                owner, question, documents.collections, k=documents.k, min_score=documents.min_score
            )
        except (RagError, EmbeddingModelError) as exc:
            log.warning("retrieval failed: %s", exc)
            return PreparedReply(system_prompt, conversation, error=str(exc))
        if not found:
            return PreparedReply(system_prompt, conversation, answer=NO_RELEVANT_PASSAGES_MESSAGE)
        template = rag_system_template(system_prompt, self._rag_preset_system())
        try:
            sources = self._fit_sources(template, question, conversation, found, sampling, model_file)
        except EngineError as exc:
            return PreparedReply(system_prompt, conversation, error=str(exc))
        if not sources:
            return PreparedReply(system_prompt, conversation, error=(
                "The question and system prompt leave no room for document passages in this model's "
                "context window; shorten them, lower 'Max new tokens', or load a larger context."))
        system = fill_system_prompt(template, question=question, context=build_context(sources), model=model_file)
        return PreparedReply(system, conversation, tuple(sources))

    def reply_in(
        self,
        owner: str,
        session_key: str,
        conversation_id: str,
        *,
        system_prompt: str,
        sampling: SamplingParams,
        documents: DocumentQuery | None = None,
    ) -> Iterator[ReplyUpdate]:
        """Stream the reply to a saved conversation and save it once complete (or stopped).

        A document answer's sources are saved in the reply's meta, so they show again later.
        """
        prepared = self.prepare_reply(owner, conversation_id, system_prompt=system_prompt, sampling=sampling,
                                      documents=documents)
        if prepared.error:
            yield ReplyUpdate(text="", done=True, error=prepared.error)
            return
        if prepared.answer is not None:
            picked = list(documents.collections) if documents else []
            self._history.append(owner, conversation_id, "assistant", prepared.answer,
                                 meta={"sources": [], "collections": picked})
            yield ReplyUpdate(text=prepared.answer, done=True)
            return
        last: ReplyUpdate | None = None
        for last in self.stream(session_key, prepared.conversation, system_prompt=prepared.system_prompt,
                                sampling=sampling):
            if prepared.sources:
                last = dataclasses.replace(last, sources=prepared.sources)
            yield last
        if last is not None and last.done and not last.error and last.text:
            meta: dict[str, Any] = {"stats": last.stats.as_dict()} if last.stats else {}
            if prepared.sources:
                meta["sources"] = sources_meta(prepared.sources)
            self._history.append(owner, conversation_id, "assistant", last.text, meta=meta)

    def document_library(self) -> DocumentLibrary:
        if self._documents is None:
            raise RagError("Document answers are not available in this app.")
        return self._documents.library

    def _rag_preset_system(self) -> str | None:
        """The document-answering preset's system prompt for the loaded model, if the preset exists."""
        if self._presets is None:
            return None
        try:
            preset = self._presets.get(RAG_PRESET_NAME)
        except PresetError:
            return None
        info = self._engine.info
        return preset.system_for(
            family=model_family(info), architecture=info.architecture if info else None,
            model_name=f"{info.file} {info.name}" if info else "",
        )

    def _fit_sources(
        self, template: str, question: str, conversation: list[Message], found: Sequence[Passage],
        sampling: SamplingParams, model_file: str,
    ) -> list[Passage]:
        """The passages trimmed to the room the context window leaves (before any history is dropped)."""
        info = self._engine.info
        if info is None:
            raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
        empty = fill_system_prompt(template, question=question, context="", model=model_file).strip()
        head: list[Message] = [{"role": "system", "content": empty}] if empty else []

        def prompt_tokens(messages: list[Message]) -> int:
            return len(self._engine.tokenize(self._engine.render(messages)))

        budget = passage_budget(
            info.n_ctx, sampling.max_tokens,
            with_history=prompt_tokens(head + conversation),
            newest_only=prompt_tokens(head + conversation[-1:]),
        )
        return fit_passages(found, budget_tokens=budget, count_tokens=self._engine.count_tokens)

    def stream(
        self,
        session_key: str,
        conversation: Sequence[Message],
        *,
        system_prompt: str,
        sampling: SamplingParams,
    ) -> Iterator[ReplyUpdate]:
        """Stream the assistant's reply to ``conversation`` (whose last message is the user's)."""
        messages: list[Message] = []
        if system_prompt.strip():
            messages.append({"role": "system", "content": system_prompt.strip()})
        messages.extend({"role": m["role"], "content": m["content"]} for m in conversation)
        cancel = self._cancels.start(session_key)
        text = ""
        try:
            for chunk in self._engine.stream_chat(messages, sampling, cancel=cancel):
                if chunk.stats is not None:
                    yield ReplyUpdate(
                        text=text, done=True, stats=chunk.stats,
                        notice=dropped_notice(chunk.stats.dropped_messages),
                    )
                    return
                text += chunk.text
                yield ReplyUpdate(text=text)
        except EngineError as exc:
            log.warning("chat request failed: %s", exc)
            yield ReplyUpdate(text=text, done=True, error=str(exc))
        finally:
            self._cancels.finish(session_key, cancel)

    def exact_prompt(self, owner: str, conversation_id: str | None, system_prompt: str, draft: str = "") -> str:
        """The text the model would receive for this conversation plus ``draft``, special tokens included.

        Variables are filled as at send time; document passages are not, as they depend on the search.
        """
        turns: list[Message] = []
        if conversation_id:
            turns += [{"role": m.role, "content": m.content} for m in self._history.messages(owner, conversation_id)]
        if draft.strip():
            turns.append({"role": "user", "content": draft.strip()})
        question = turns[-1]["content"] if turns and turns[-1]["role"] == "user" else ""
        system = fill_system_prompt(system_prompt, question=question, context="",
                                    model=self._engine.info.file if self._engine.info else "")
        messages: list[Message] = [{"role": "system", "content": system.strip()}] if system.strip() else []
        messages += turns
        return self._engine.render(messages).text

    def stop(self, session_key: str) -> bool:
        """Ask the running reply of this session to stop; True if one was running."""
        return self._cancels.stop(session_key)


LOCAL_USER = User(name="local", is_admin=True)


class NotAuthorized(PermissionError):
    """The signed-in user may not do this (or nobody is signed in)."""


class Services:
    """Everything the UI may call, wired from one Settings object."""

    def __init__(self, settings: Settings, hardware: HardwareInfo, engine: Engine) -> None:
        self.settings = settings
        self.hardware = hardware
        self.engine = engine
        self.history = HistoryStore(settings.history_db)
        self.users = UserStore(settings.users_file)
        self.models = ModelManager(settings, hardware, engine)
        self.presets = PresetStore(settings.presets_dir)
        self.document_actions = DocumentService(settings)  # the Documents tab's actions
        self.chat = ChatService(engine, self.history, documents=self.document_actions, presets=self.presets)
        self.preset_actions = PresetService(self.presets, engine)  # the Presets tab's actions
        self.notebook = NotebookService(engine)

    @property
    def auth_required(self) -> bool:
        """Login is required whenever the app is reachable from the network (unless explicitly waived)."""
        return self.settings.listens_on_network and not self.settings.insecure_no_auth

    def user(self, username: str | None) -> User:
        """The signed-in user; in single-user mode, the one implicit local user (an admin)."""
        if not self.auth_required:
            return LOCAL_USER
        user = self.users.get(username) if username else None
        if user is None:
            raise NotAuthorized("Please log in again.")
        return user

    @property
    def documents(self) -> DocumentLibrary:
        """The document library; Chroma and the embedding model open on first use, not at start-up."""
        return self.document_actions.library

    def require_admin(self, username: str | None) -> User:
        user = self.user(username)
        if not user.is_admin:
            raise NotAuthorized("Only an admin can do this.")
        return user

    def status(self) -> dict[str, Any]:
        """The JSON served at GET /status."""
        info = self.engine.info
        return {
            "version": __version__,
            "model": info.as_dict() if info else None,
            "hardware": self.hardware.as_dict(),
            "queue": {"waiting": self.engine.queue_length},
        }


# --- presets and the notebook (issue 4) ---------------------------------------------------------
# Imported here rather than at the top so this section can be read (and moved) as one piece.
import dataclasses  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

from webui.engine import ModelInfo  # noqa: E402
from webui.prompts.presets import (  # noqa: E402
    Preset,
    PresetError,
    SamplingSettings,
    file_stem,
    parse_preset,
)
from webui.prompts.templates import FAMILY_FORMATS, family_from_metadata  # noqa: E402

SAMPLING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SamplingSettings))
_WHOLE_NUMBER_FIELDS = frozenset({"top_k", "max_tokens"})
MAX_PRESET_IMPORT_BYTES = 256 * 1024  # a preset is a few hundred bytes; anything this big is not one


def model_family(info: ModelInfo | None) -> str | None:
    """The family a preset's variants are matched against for the loaded model.

    The chat format in use wins when it names a family (the user's override, or the family the
    engine picked); a file with its own template gets the family of its metadata and name.
    """
    if info is None:
        return None
    if info.chat_format in FAMILY_FORMATS:
        return info.chat_format
    return family_from_metadata(info.metadata, info.file)


def copy_name(name: str, taken: Iterable[str]) -> str:
    """'X (copy)', then 'X (copy 2)', ...: the first name that no preset uses yet."""
    used = {t.casefold() for t in taken}
    candidate = f"{name} (copy)"
    number = 2
    while candidate.casefold() in used:
        candidate = f"{name} (copy {number})"
        number += 1
    return candidate


def sampling_from_fields(values: Mapping[str, float | int | None]) -> SamplingSettings:
    """Editor fields to settings: a blank field stays unset; top-k and max tokens become ints.

    A fractional top-k is passed through unchanged so the store's validation names the problem.
    """
    settings: dict[str, float | int] = {}
    for name in SAMPLING_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        if name in _WHOLE_NUMBER_FIELDS and float(value).is_integer():
            value = int(value)
        settings[name] = value
    return SamplingSettings(**settings)  # type: ignore[arg-type]


def clamp_sampling(
    sampling: SamplingSettings, ranges: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, float | int], list[str]]:
    """The preset's set values fitted into the controls' ranges, and the names that had to move.

    A preset may allow wider values than a slider shows (temperature 3, max tokens 8000); the
    chat would refuse an out-of-range slider value, so it is clamped and the user is told.
    """
    values: dict[str, float | int] = {}
    moved: list[str] = []
    for name, value in sampling.as_dict().items():
        low, high = ranges.get(name, (value, value))
        fitted = min(max(value, low), high)
        if fitted != value:
            moved.append(name)
        values[name] = type(value)(fitted)
    return values, moved


@dataclass(frozen=True)
class AppliedPreset:
    """What applying a preset sets in the chat, and for which model it was chosen."""

    name: str
    system_prompt: str
    sampling: SamplingSettings
    family: str | None
    model_file: str | None
    variant: bool  # a model-specific variant of the prompt was chosen

    def message(self) -> str:
        """One sentence for the user saying what was applied."""
        text = f"Applied '{self.name}' to the chat"
        if self.variant:
            text += f" (its variant for {self.model_file}, {self.family or 'unknown'} family)"
        elif self.model_file is None:
            text += " (no model is loaded: the default prompt was used)"
        settings = ", ".join(f"{k} {v}" for k, v in self.sampling.as_dict().items())
        return f"{text}. Sampling: {settings or 'unchanged'}."


def applied_preset(preset: Preset, info: ModelInfo | None) -> AppliedPreset:
    """The system prompt variant for ``info``'s model, with {date}, {time} and {model} filled.

    {question} and {context} stay as written: they are known only when a message is sent.
    """
    family = model_family(info)
    architecture = info.architecture if info else None
    model_name = f"{info.file} {info.name}" if info else ""
    system = preset.system_for(family=family, architecture=architecture, model_name=model_name)
    filled = preset.fill(
        system, question="{question}", context="{context}", model=info.file if info else ""
    )
    return AppliedPreset(
        name=preset.name,
        system_prompt=filled,
        sampling=preset.sampling,
        family=family,
        model_file=info.file if info else None,
        variant=system != preset.system,
    )


class PresetService:
    """The Presets tab's actions over the store, with the loaded model for variants."""

    def __init__(self, store: PresetStore, engine: Engine) -> None:
        self.store = store
        self._engine = engine
        self._export_dir: Path | None = None

    def builtin_names(self) -> set[str]:
        """Case-folded names of the presets shipped with the package."""
        names = set()
        for path in sorted(self.store.builtin_dir.glob("*.y*ml")):
            try:
                names.add(parse_preset(path.read_text("utf-8"), source=path.name).name.casefold())
            except (PresetError, OSError):
                continue  # store.errors() reports it
        return names

    def table(self) -> list[list[str]]:
        """Rows of (name, description, kind) for the list of presets."""
        builtins = self.builtin_names()
        rows = []
        for preset in self.store.list():
            if preset.builtin:
                kind = "built-in"
            elif preset.name.casefold() in builtins:
                kind = "mine (edited built-in)"
            else:
                kind = "mine"
            rows.append([preset.name, preset.description, kind])
        return rows

    def names(self) -> list[str]:
        return [p.name for p in self.store.list()]

    def errors(self) -> list[str]:
        return self.store.errors()

    def get(self, name: str) -> Preset:
        return self.store.get(name)

    def apply(self, name: str) -> AppliedPreset:
        """Preset ``name`` resolved for the model loaded now."""
        return applied_preset(self.store.get(name), self._engine.info)

    def save(
        self,
        original: str | None,
        *,
        name: str,
        description: str,
        system: str,
        sampling: SamplingSettings,
    ) -> tuple[Preset, str]:
        """Save the editor's fields over ``original`` (None: a new preset); returns a message.

        Variants of the original are kept: the editor does not show them. A built-in is never
        written to: the store saves the user's copy, which the message says.
        """
        name = (name or "").strip()
        if not name:
            raise PresetError("give the preset a name")
        source = self.store.get(original) if original else None
        renamed_or_new = source is None or source.name.casefold() != name.casefold()
        if renamed_or_new and name.casefold() in {n.casefold() for n in self.names()}:
            raise PresetError(f"a preset named '{name}' already exists: choose another name")
        fields_ = dict(name=name, description=description.strip(), system=system.strip("\n"),
                       sampling=sampling)
        draft = dataclasses.replace(source, **fields_) if source else Preset(**fields_)
        saved = self.store.save(draft)
        if source is not None and source.builtin:
            return saved, (
                f"'{source.name}' is built in, so your changes were saved as your own copy"
                f" ({saved.path.name if saved.path else name}); the original is untouched."
            )
        return saved, f"Saved '{saved.name}'."

    def duplicate(self, name: str) -> Preset:
        """A user copy of preset ``name`` under the first free 'name (copy)'."""
        source = self.store.get(name)
        return self.store.duplicate(source.name, copy_name(source.name, self.names()))

    def delete(self, name: str) -> str:
        """Delete a user preset; returns the message (a deleted copy brings its built-in back)."""
        preset = self.store.get(name)
        self.store.delete(preset.name)
        if preset.name.casefold() in self.builtin_names():
            return f"Deleted your copy of '{preset.name}': the built-in one is back."
        return f"Deleted '{preset.name}'."

    def import_text(self, text: str, *, source: str = "pasted YAML") -> Preset:
        """Validate and save pasted or uploaded YAML as a new user preset."""
        if not (text or "").strip():
            raise PresetError(f"{source}: nothing to import")
        parse_preset(text, source=source)  # so an error names the file, not "imported preset"
        return self.store.import_yaml(text)

    def import_file(self, path: Path) -> Preset:
        """Import an uploaded .yaml file."""
        path = Path(path)
        if path.stat().st_size > MAX_PRESET_IMPORT_BYTES:
            raise PresetError(f"{path.name}: too large to be a preset ({path.stat().st_size} bytes)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"{path.name}: cannot be read as UTF-8 text ({exc})") from exc
        return self.import_text(text, source=path.name)

    def export_file(self, name: str) -> Path:
        """Write preset ``name``'s YAML to a temp file for the browser to download."""
        text = self.store.export_yaml(name)
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="webui-presets-"))
        target = self._export_dir / f"{file_stem(self.store.get(name).name)}.yaml"
        target.write_text(text, encoding="utf-8")  # a throwaway copy: no atomic write needed
        return target


@dataclass(frozen=True)
class CompletionUpdate:
    """The notebook's continuation so far, then the stats (or an error)."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    error: str | None = None


class NotebookService:
    """Raw completion with no chat template, with a Stop per browser session."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cancels = CancelRegistry()

    def complete(
        self, session_key: str, prompt: str, sampling: SamplingParams
    ) -> Iterator[CompletionUpdate]:
        """Stream the continuation of ``prompt`` (the text so far is the continuation alone)."""
        if not prompt.strip():
            yield CompletionUpdate(text="", done=True, error="Type some text for the model to continue.")
            return
        cancel = self._cancels.start(session_key)
        text = ""
        try:
            for chunk in self._engine.stream_completion(prompt, sampling, cancel=cancel):
                if chunk.stats is not None:
                    yield CompletionUpdate(text=text, done=True, stats=chunk.stats)
                    return
                text += chunk.text
                yield CompletionUpdate(text=text)
        except EngineError as exc:
            log.warning("notebook completion failed: %s", exc)
            yield CompletionUpdate(text=text, done=True, error=str(exc))
        finally:
            self._cancels.finish(session_key, cancel)

    def stop(self, session_key: str) -> bool:
        """Ask this session's running completion to stop; True if one was running."""
        return self._cancels.stop(session_key)


# --- documents: the library behind the Documents tab and document answers in chat (issue 5) ------
import re  # noqa: E402

from webui.prompts.presets import unknown_variables  # noqa: E402
from webui.rag import CollectionInfo, DocumentInfo, FileOutcome, IngestProgress  # noqa: E402

RAG_PRESET_NAME = "Document answers (RAG)"
DEFAULT_PASSAGES = 4
CONTEXT_MARGIN_TOKENS = 16  # passages counted alone vs inside the template differ by a few tokens
MIN_PASSAGE_TOKENS = 256  # below this the passages would be too cut to answer: drop history instead
_CONTEXT_PLACEHOLDER = re.compile(r"(?<!\{)\{context\}(?!\})")
_PASSAGES_ONLY = "Passages:\n{context}"  # used when the document preset is gone or has no {context}


@dataclass(frozen=True)
class DocumentQuery:
    """Which collections a chat message is answered from, and how many passages to retrieve."""

    collections: tuple[str, ...]
    k: int = DEFAULT_PASSAGES
    min_score: float = DEFAULT_MIN_SCORE


def fill_system_prompt(text: str, **values: str) -> str:
    """``{question}``, ``{context}``, ``{date}``... filled by the presets module.

    A hand-typed prompt may contain braces that are not variables ("reply as {answer}"); those are
    kept as written instead of refusing to send.
    """
    for name in dict.fromkeys(unknown_variables(text)):
        text = text.replace("{" + name + "}", "{{" + name + "}}")
    return Preset(name="system prompt").fill(text, **values)


def rag_system_template(system_prompt: str, preset_system: str | None) -> str:
    """The system prompt for a document answer, still holding ``{context}``.

    The chat's own prompt is used when it already places ``{context}`` (the RAG preset was
    applied); otherwise the document preset's prompt follows the chat's, so its instructions
    (language, tone) still hold.
    """
    if _CONTEXT_PLACEHOLDER.search(system_prompt):
        return system_prompt
    rag = preset_system if preset_system and _CONTEXT_PLACEHOLDER.search(preset_system) else _PASSAGES_ONLY
    own = system_prompt.strip()
    return f"{own}\n\n{rag}" if own else rag


def passage_budget(
    n_ctx: int,
    max_tokens: int,
    *,
    with_history: int,
    newest_only: int,
    margin: int = CONTEXT_MARGIN_TOKENS,
    min_passage_tokens: int = MIN_PASSAGE_TOKENS,
) -> int:
    """Tokens left for passages: passages are trimmed first, history is dropped only after.

    ``with_history``/``newest_only`` are the prompt's tokens (without passages) with the whole
    conversation / with the newest message only. The reply keeps at most half the window, since a
    reply with no room for its sources is worth less than a shorter one.
    """
    reply = min(max_tokens, n_ctx // 2)
    room = n_ctx - reply - with_history - margin
    if room >= min_passage_tokens:
        return room
    return max(0, n_ctx - reply - newest_only - margin)


def sources_meta(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """The passages as saved in a reply's meta (JSON), so its sources show when it is reopened."""
    return [
        {
            "number": p.number, "file_name": p.file_name, "page": p.page, "heading": p.heading,
            "collection": p.collection, "score": round(p.score, 4), "citation": p.citation, "text": p.text,
        }
        for p in passages
    ]


def format_size(size_bytes: int) -> str:
    """'812 B', '14.2 KB', '3.1 MB': sizes as people read them."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # unreachable; keeps type checkers content


def document_rows(documents: Sequence[DocumentInfo]) -> list[list[str | int]]:
    """Rows of (file, pages, passages, size, added) for the Documents tab's table."""
    return [
        [d.file_name, d.pages, d.chunks, format_size(d.size_bytes), d.added_at.replace("T", " ")[:16]]
        for d in documents
    ]


_OUTCOME_MARKS = {"added": "added", "replaced": "replaced", "unchanged": "unchanged", "failed": "**failed**"}


def outcome_report(outcomes: Sequence[FileOutcome]) -> str:
    """One Markdown line per file saying what happened to it, with a count first."""
    if not outcomes:
        return "No files were chosen."
    failed = sum(not o.ok for o in outcomes)
    head = f"**{len(outcomes) - failed} of {len(outcomes)} files added or already there.**"
    if failed:
        head += f" {failed} could not be added."
    lines = [f"- {_OUTCOME_MARKS[o.status]}: {o.message}" for o in outcomes]
    return "\n".join([head, "", *lines])


def progress_line(progress: IngestProgress) -> tuple[float, str]:
    """A fraction done and a caption (files, pages, passages) for the ingest progress bar."""
    total = max(progress.files_total, 1)
    caption = (
        f"File {min(progress.files_done + 1, total)} of {total}"
        + (f" ({progress.current_file})" if progress.current_file else "")
        + f" · {progress.pages_done} pages · {progress.chunks_done} passages"
    )
    return progress.files_done / total, caption


class DocumentService:
    """The document library, opened on first use: Chroma and the embedding model are slow to load."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        """``embedder`` lets several libraries (tests, tools) share one loaded model."""
        self._settings = settings
        self._embedder = embedder
        self._library: DocumentLibrary | None = None
        self._guard = threading.Lock()

    @property
    def max_upload_mb(self) -> int:
        return self._settings.max_upload_mb

    @property
    def opened(self) -> bool:
        return self._library is not None

    @property
    def library(self) -> DocumentLibrary:
        with self._guard:
            if self._library is None:
                self._library = DocumentLibrary(
                    self._settings.data_dir,
                    embedding_model=self._settings.embedding_model,
                    max_file_mb=self._settings.max_upload_mb,
                    embedder=self._embedder,
                )
            return self._library

    def _never_used(self) -> bool:
        """No collection was ever made here, so listing can skip opening Chroma (page loads stay cheap)."""
        return self._library is None and not self._settings.chroma_dir.exists()

    def collections(self, owner: str) -> list[CollectionInfo]:
        return [] if self._never_used() else self.library.collections(owner)

    def collection_names(self, owner: str) -> list[str]:
        """Names the user can pick in the chat: their own, then the shared ones."""
        return list(dict.fromkeys(c.name for c in self.collections(owner)))

    def create(self, user: User, name: str, *, shared: bool = False) -> CollectionInfo:
        """A new empty collection; only an admin may share one with the whole team."""
        if shared and not user.is_admin:
            raise NotAuthorized("Only an admin can share a collection with the team.")
        return self.library.create_collection(user.name, name, shared=shared)

    def rename(self, owner: str, old: str, new: str) -> CollectionInfo:
        return self.library.rename_collection(owner, old, new)

    def delete(self, owner: str, name: str) -> None:
        self.library.delete_collection(owner, name)

    def documents(self, owner: str, collection: str) -> list[DocumentInfo]:
        return self.library.documents(owner, collection)

    def delete_document(self, owner: str, collection: str, file_name: str) -> None:
        self.library.delete_document(owner, collection, file_name)

    def ingest(
        self,
        owner: str,
        collection: str,
        files: Sequence[Path],
        *,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> list[FileOutcome]:
        """Add files to a collection; every file gets an outcome, one bad file stops nothing."""
        return self.library.ingest(owner, collection, [Path(f) for f in files], progress=progress)
