"""Document answers in chat: real SmolLM2, real all-MiniLM-L6-v2, real Chroma, in temp dirs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.rag_files import write_good_files
from webui.config import Settings
from webui.web.app import transport_limit_mb
from webui.engine import Engine, LoadSettings, PromptRequest, SamplingParams
from webui.history import HistoryStore
from webui.prompts.presets import PresetStore
from webui.rag import NO_RELEVANT_PASSAGES_MESSAGE, FileOutcome, IngestProgress, Passage, build_context
from webui.rag.embeddings import Embedder
from webui.rag.settings import RetrievalSettings
from webui.auth import User
from webui.services import ChatService, DocumentQuery, DocumentService, NotAuthorized, PresetService, ReplyUpdate
from webui.services.chat import PreparedReply, fill_system_prompt, passage_budget, rag_system_template
from webui.services.documents import outcome_report, progress_line

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, seed=1)
OWNER = "alice"


def prepared_reply(chat: ChatService, conversation_id: str, system_prompt: str,
                   documents: DocumentQuery | None) -> PreparedReply:
    """What the chat's next reply will ask the model, as ``reply_in`` prepares it from the saved chat."""
    saved = [{"role": m.role, "content": m.content} for m in chat.messages(OWNER, conversation_id)]
    return chat.prepare_conversation(OWNER, saved, system_prompt=system_prompt, sampling=GREEDY, documents=documents)


# --- pure decisions, with plain values ----------------------------------------------------------


def test_passage_budget_trims_passages_before_dropping_history() -> None:
    # Room with the whole history: passages get what is left and no turn is dropped.
    assert passage_budget(2048, 512, with_history=900, newest_only=100, margin=16) == 2048 - 512 - 900 - 16
    # The history leaves less than the floor: passages are sized for the newest message only.
    assert passage_budget(2048, 512, with_history=1400, newest_only=100, margin=16) == 2048 - 512 - 100 - 16
    # A reply may take at most half the window, so "max tokens 4096" still leaves room for sources.
    assert passage_budget(2048, 4096, with_history=100, newest_only=100, margin=0) == 1024 - 100
    assert passage_budget(512, 256, with_history=600, newest_only=600) == 0


def test_rag_template_uses_the_chats_own_context_slot_or_adds_the_presets() -> None:
    assert rag_system_template("Use these:\n{context}", "Preset {context}") == "Use these:\n{context}"
    assert rag_system_template("Reply in French.", "Passages:\n{context}") == "Reply in French.\n\nPassages:\n{context}"
    assert rag_system_template("", None) == "Passages:\n{context}"
    assert rag_system_template("Literal {{context}} braces", None).endswith("Passages:\n{context}")


def test_system_prompt_variables_are_filled_and_unknown_braces_kept() -> None:
    filled = fill_system_prompt("On {date}, {model} answers {question}; format {answer}, {{x}}",
                                question="why?", context="", model="m.gguf")
    assert filled == f"On {dt.date.today().isoformat()}, m.gguf answers why?; format {{answer}}, {{x}}"


def test_outcome_report_and_progress_line_read_well() -> None:
    report = outcome_report([
        FileOutcome("a.pdf", True, "Added a.pdf (2 pages, 3 passages).", 3, 2, "added"),
        FileOutcome("b.txt", False, "b.txt is empty.", 0, 0, "failed"),
    ])
    assert report.splitlines()[0] == "**1 of 2 files added or already there.** 1 could not be added."
    assert "- **failed**: b.txt is empty." in report
    assert progress_line(IngestProgress(1, 4, 7, 30, "c.md")) == (0.25, "File 2 of 4 (c.md) · 7 pages · 30 passages")
    assert progress_line(IngestProgress(4, 4, 9, 40, ""))[0] == 1.0


def test_gradio_accepts_somewhat_oversized_files_so_the_library_names_them() -> None:
    assert transport_limit_mb(100) == 400 and transport_limit_mb(0) == 4


# --- the real thing ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Engine:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=2048, n_threads=2))
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture()
def services(tmp_path: Path, engine: Engine, embedder: Embedder) -> tuple[ChatService, DocumentService, PresetStore]:
    settings = Settings(data_dir=tmp_path / "data")
    documents = DocumentService(settings, embedder=embedder)
    presets = PresetStore(settings.presets_dir)
    chat = ChatService(engine, HistoryStore(settings.history_db), documents=documents, presets=presets)
    return chat, documents, presets


def library_with_files(documents: DocumentService, folder: Path) -> None:
    documents.library.create_collection(OWNER, "home")
    outcomes = documents.ingest(OWNER, "home", list(write_good_files(folder).values()))
    assert all(o.ok for o in outcomes)


def ask(chat: ChatService, question: str, query: DocumentQuery | None, *, sampling: SamplingParams = GREEDY,
        conversation_id: str | None = None, system: str = "You are a helpful assistant.") -> tuple[str, ReplyUpdate]:
    conversation_id = chat.add_user_message(OWNER, conversation_id, question)
    updates = list(chat.reply_in(OWNER, "test", conversation_id, system_prompt=system, sampling=sampling,
                                 documents=query))
    return conversation_id, updates[-1]


@pytest.mark.slow
def test_a_question_about_an_ingested_fact_is_answered_with_its_file_and_page(services, tmp_path: Path) -> None:
    chat, documents, _ = services
    library_with_files(documents, tmp_path / "incoming")
    question = "What temperature is the heater set to during frost?"

    conversation_id, final = ask(chat, question, DocumentQuery(("home",)))

    assert final.done and final.error is None and final.text.strip()
    assert (final.sources[0].file_name, final.sources[0].page) == ("greenhouse.pdf", 2)
    [_, reply] = chat.messages(OWNER, conversation_id)
    saved = reply.meta["sources"][0]
    assert (saved["file_name"], saved["page"], saved["citation"]) == ("greenhouse.pdf", 2, "greenhouse.pdf, p. 2")
    assert "twelve degrees" in saved["text"]
    # The passages were in the prompt the model read: it is far longer than the question alone.
    assert reply.meta["stats"]["prompt_tokens"] > chat._engine.count_tokens(build_context(final.sources))


@pytest.mark.slow
def test_nothing_relevant_is_said_plainly_without_asking_the_model(services, tmp_path: Path) -> None:
    chat, documents, _ = services
    library_with_files(documents, tmp_path / "incoming")

    conversation_id, final = ask(chat, "Who won the 1966 football World Cup final?", DocumentQuery(("home",)))

    assert (final.text, final.done, final.error, final.stats) == (NO_RELEVANT_PASSAGES_MESSAGE, True, None, None)
    [_, reply] = chat.messages(OWNER, conversation_id)
    assert reply.content == NO_RELEVANT_PASSAGES_MESSAGE and reply.meta["sources"] == []


@pytest.mark.slow
def test_passages_are_trimmed_to_fit_before_history_is_dropped(services, tmp_path: Path) -> None:
    chat, documents, _ = services
    documents.library.create_collection(OWNER, "manual")
    long_manual = tmp_path / "manual.txt"
    long_manual.write_text("\n\n".join(
        f"Greenhouse rule {n}: the heater in bay {n} is checked every {n + 2} days, and its propane valve "
        f"is closed when the outside temperature rises above {10 + n} degrees, as the frost log explains "
        f"in section {n}. The gardener on duty writes the reading into the blue book before noon."
        for n in range(60)
    ))
    [outcome] = documents.ingest(OWNER, "manual", [long_manual])
    assert outcome.chunks >= 8
    query = DocumentQuery(("manual",), k=12, min_score=0.0)
    question = "When is the greenhouse heater propane valve closed?"
    retrieved = documents.library.retrieve(OWNER, question, ["manual"], k=12, min_score=0.0)
    full = chat._engine.count_tokens(build_context(retrieved))
    assert full > 1500, "the test needs more passages than the window holds"

    def fitted(conversation_id: str):
        """What the reply streams: the prepared prompt fitted by the engine (which drops old turns)."""
        prepared = prepared_reply(chat, conversation_id, "", query)
        messages = ({"role": "system", "content": prepared.system_prompt}, *prepared.conversation)
        return prepared, chat._engine.prepare(PromptRequest(GREEDY, messages=messages))

    # A short earlier exchange fits beside trimmed passages: passages shrink, no turn is dropped.
    short_id = chat.add_user_message(OWNER, None, "Hello, I look after the greenhouse.")
    chat._history.append(OWNER, short_id, "assistant", "Glad to help with the greenhouse.")
    chat.add_user_message(OWNER, short_id, question)
    prepared, fit = fitted(short_id)
    kept = chat._engine.count_tokens(build_context(prepared.sources))
    assert 0 < len(prepared.sources) <= len(retrieved) and 1000 < kept < full
    assert prepared.sources[-1].text.endswith("…"), "the last passage that fits is shortened"
    assert fit.dropped_messages == 0 and len(fit.tokens) + GREEDY.max_tokens <= 2048

    # A history too long to leave a useful share for passages is what gets dropped.
    long_id = chat.add_user_message(OWNER, None, "Tell me about the bays and their plants. " * 110)
    chat._history.append(OWNER, long_id, "assistant", "Each bay holds plants of one kind. " * 130)
    chat.add_user_message(OWNER, long_id, question)
    prepared, fit = fitted(long_id)
    assert chat._engine.count_tokens(build_context(prepared.sources)) > 1000
    assert prepared.sources[0].file_name == "manual.txt"
    assert fit.dropped_messages == 2 and len(fit.tokens) + GREEDY.max_tokens <= 2048


@pytest.mark.slow
def test_the_rag_preset_gets_its_variables_filled_at_send_time(services, tmp_path: Path, engine: Engine) -> None:
    chat, documents, presets = services
    library_with_files(documents, tmp_path / "incoming")
    applied = PresetService(presets, engine).apply("Document answers (RAG)")
    assert "{context}" in applied.system_prompt  # filled only when a message is sent
    question = "How often should I oil the bike chain?"
    conversation_id = chat.add_user_message(OWNER, None, question)

    prepared = prepared_reply(chat, conversation_id, applied.system_prompt + "\nToday: {date}.",
                              DocumentQuery(("home",)))

    assert "{context}" not in prepared.system_prompt and "{date}" not in prepared.system_prompt
    assert dt.date.today().isoformat() in prepared.system_prompt
    assert "[1] (bicycle.md, Bicycle maintenance > Chain care)" in prepared.system_prompt
    assert "Cite them like [1]" in prepared.system_prompt  # the small-model variant of the preset
    assert prepared.conversation[-1] == {"role": "user", "content": question}

    plain = prepared_reply(chat, conversation_id, "Asked: {question} ({model})", None)
    assert plain.system_prompt == f"Asked: {question} ({engine.info.file})" and plain.sources == ()


@pytest.mark.slow
def test_the_library_opens_on_first_use_and_only_an_admin_shares(tmp_path: Path, embedder: Embedder) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    documents = DocumentService(settings, embedder=embedder)
    assert documents.collection_names("bob") == []
    assert not documents.opened and not settings.chroma_dir.exists(), "listing nothing opens nothing"

    admin, bob = User(name="ann", is_admin=True), User(name="bob", is_admin=False)
    documents.create(admin, "Team handbook", shared=True)
    documents.create(bob, "Bob's notes")
    with pytest.raises(NotAuthorized, match="Only an admin"):
        documents.create(bob, "Bob's shared", shared=True)

    assert documents.collection_names("bob") == ["Bob's notes", "Team handbook"]
    assert documents.collection_names("ann") == ["Team handbook"]
    documents.rename("bob", "Bob's notes", "Garden")
    assert documents.collection_names("bob") == ["Garden", "Team handbook"]
    documents.delete("bob", "Garden")
    assert documents.collection_names("bob") == ["Team handbook"]


@pytest.mark.slow
def test_a_chat_query_without_k_or_cut_off_takes_the_collections_own_settings(services, tmp_path: Path) -> None:
    """The Chat tab sends None until the user moves its sliders: the Documents tab's settings rule."""
    chat, documents, _ = services
    library_with_files(documents, tmp_path / "incoming")
    documents.library.update_retrieval_settings(OWNER, "home", RetrievalSettings(k=1, min_score=0.0))
    conversation = [{"role": "user", "content": "What temperature is the heater set to during frost?"}]

    def sources(query: DocumentQuery) -> tuple[Passage, ...]:
        prepared = chat.prepare_conversation(OWNER, conversation, system_prompt="You help.", sampling=GREEDY,
                                             documents=query)
        assert prepared.error is None
        return prepared.sources

    assert len(sources(DocumentQuery(("home",)))) == 1  # the collection's k
    assert len(sources(DocumentQuery(("home",), k=3, min_score=0.0))) == 3  # the sliders, once moved
    documents.library.update_retrieval_settings(OWNER, "home", RetrievalSettings(k=4, min_score=0.99))
    assert sources(DocumentQuery(("home",))) == ()  # the collection's strict cut-off refuses every passage
