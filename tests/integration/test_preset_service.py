"""The Presets tab's and the notebook's services with the real SmolLM2 through llama.cpp."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from webui.auth import User
from webui.engine import Engine, LoadSettings, ModelInfo, SamplingParams
from webui.prompts.presets import BUILTIN_DIR, PresetError, PresetStore, SamplingSettings
from webui.services import LOCAL_USER, NotAuthorized, NotebookService, PresetService
from webui.services.presets import applied_preset, clamp_sampling, copy_name, model_family, sampling_from_fields

FAMILY_PRESET = """\
name: Family test
description: One prompt per family.
system: Default prompt for {model}.
sampling:
  temperature: 0.3
  top_k: 20
  max_tokens: 300
variants:
  - when: {family: gemma}
    system: Gemma prompt.
  - when: {family: chatml}
    system: ChatML prompt on {date}, answering {question}.
"""


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Engine:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=512, n_threads=2))
    yield engine
    engine.unload()


@pytest.fixture()
def service(tmp_path: Path, engine: Engine) -> PresetService:
    return PresetService(PresetStore(tmp_path / "presets"), engine)


def other_model(info: ModelInfo, architecture: str, name: str) -> ModelInfo:
    """The loaded model's facts with another family's metadata, as a Gemma file would give."""
    metadata = {"general.architecture": architecture, "general.name": name}
    return dataclasses.replace(info, architecture=architecture, name=name, chat_format="gguf",
                               path=Path(f"/models/{name}.gguf"), metadata=metadata)


def test_the_loaded_smollm_gets_its_family_variant_and_the_sampling(service: PresetService) -> None:
    service.import_text(LOCAL_USER, FAMILY_PRESET)
    applied = service.apply("family test")
    assert applied.family == "chatml" and applied.variant
    assert applied.model_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # {date} is filled when applied; {question} waits for the message it names.
    assert applied.system_prompt.startswith("ChatML prompt on 20")
    assert applied.system_prompt.endswith("answering {question}.")
    assert applied.sampling == SamplingSettings(temperature=0.3, top_k=20, max_tokens=300)
    assert "Applied 'Family test' to the chat" in applied.message()
    assert "temperature 0.3" in applied.message()


def test_another_family_gets_its_own_variant_and_an_unknown_one_the_default(
    service: PresetService, engine: Engine
) -> None:
    preset, _ = service.import_text(LOCAL_USER, FAMILY_PRESET)
    assert engine.info is not None
    gemma = other_model(engine.info, "gemma3", "gemma-3-270m-it")
    assert model_family(gemma) == "gemma"
    assert applied_preset(preset, gemma).system_prompt == "Gemma prompt."
    unknown = other_model(engine.info, "rwkv6", "some-base-model")
    fallback = applied_preset(preset, unknown)
    assert not fallback.variant and fallback.system_prompt == "Default prompt for some-base-model.gguf."
    nothing = applied_preset(preset, None)
    assert nothing.system_prompt == "Default prompt for ." and "no model is loaded" in nothing.message()


def test_a_chat_format_override_decides_the_family(engine: Engine) -> None:
    assert engine.info is not None
    assert model_family(dataclasses.replace(engine.info, chat_format="gemma")) == "gemma"
    assert model_family(engine.info) == "chatml"  # its own template; family from its name


def test_builtin_search_preset_uses_the_small_model_example_for_smollm(service: PresetService) -> None:
    search = next(name for name in service.names() if "search" in name.lower())
    applied = service.apply(search)
    assert applied.variant and "Example for" in applied.system_prompt


def test_editing_a_builtin_saves_a_copy_and_leaves_the_file_alone(service: PresetService) -> None:
    original = (BUILTIN_DIR / "coder.yaml").read_bytes()
    saved, message = service.save(LOCAL_USER, "Coder", name="Coder", description="Mine now", system="Write Rust.",
                                  sampling=SamplingSettings(temperature=0.5))
    assert (BUILTIN_DIR / "coder.yaml").read_bytes() == original
    assert saved.path == service.store.user_dir / "coder.yaml" and not saved.builtin
    assert "your own copy" in message and "untouched" in message
    assert ["Coder", "Mine now", "mine (edited built-in)"] in service.table()
    assert "built-in one is back" in service.delete(LOCAL_USER, "Coder")
    assert service.get("Coder").builtin


def test_new_preset_cannot_take_an_existing_name(service: PresetService) -> None:
    with pytest.raises(PresetError, match="already exists"):
        service.save(LOCAL_USER, None, name="coder", description="", system="x", sampling=SamplingSettings())
    with pytest.raises(PresetError, match="give the preset a name"):
        service.save(LOCAL_USER, None, name="  ", description="", system="x", sampling=SamplingSettings())


def test_rename_keeps_variants_and_moves_the_file(service: PresetService) -> None:
    first, _ = service.import_text(LOCAL_USER, FAMILY_PRESET)
    renamed, _ = service.save(LOCAL_USER, first.name, name="Renamed", description="d", system="s",
                              sampling=SamplingSettings())
    assert renamed.variants == first.variants
    assert not first.path.exists() and renamed.path.exists()


def test_duplicate_export_and_import_round_trip(service: PresetService, tmp_path: Path) -> None:
    copy = service.duplicate(LOCAL_USER, "Summarizer")
    assert copy.name == "Summarizer (copy)" and not copy.builtin
    assert service.duplicate(LOCAL_USER, "Summarizer").name == "Summarizer (copy 2)"
    exported = service.export_file("Summarizer (copy)")
    assert exported.suffix == ".yaml" and "name: Summarizer (copy)" in exported.read_text()
    service.delete(LOCAL_USER, "Summarizer (copy)")
    again, message = service.import_file(LOCAL_USER, exported)
    assert message == "Imported 'Summarizer (copy)' from summarizer-copy.yaml."
    assert again.system == copy.system and again.sampling == copy.sampling


def test_a_bad_upload_names_the_file_and_line(service: PresetService, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: Broken\nsampling:\n  temperature: hot\n")
    with pytest.raises(PresetError, match=r"broken\.yaml, line 3: sampling 'temperature' must be a number"):
        service.import_file(LOCAL_USER, bad)
    with pytest.raises(PresetError, match="nothing to import"):
        service.import_text(LOCAL_USER, "   ")


def test_malformed_user_file_is_reported_while_the_rest_work(service: PresetService) -> None:
    service.store.user_dir.mkdir(parents=True)
    (service.store.user_dir / "oops.yaml").write_text("name: Oops\nsystem: [unclosed\n")
    assert any(e.startswith("oops.yaml, line") for e in service.errors())
    assert "Coder" in service.names()


ALICE = User("alice", is_admin=True)
BOB = User("bob", is_admin=False)


@pytest.fixture()
def team(tmp_path: Path, engine: Engine) -> PresetService:
    return PresetService(PresetStore(tmp_path / "team-presets"), engine, team=True)


def test_in_team_mode_each_user_sees_the_shared_presets_and_their_own(team: PresetService) -> None:
    mine, message = team.import_text(BOB, "name: Bob's pirate\nsystem: Arr.\n")
    assert mine.owner == "bob" and message == "Imported 'Bob's pirate' from pasted YAML."
    assert ["Bob's pirate", "", "mine"] in team.table(BOB)
    assert "Bob's pirate" not in team.names(ALICE) and "Bob's pirate" not in team.names()
    shared, message = team.save(ALICE, None, name="House style", description="", system="Be brief.",
                                sampling=SamplingSettings(), shared=True)
    assert shared.owner is None and message == "Saved 'House style' for everyone."
    assert ["House style", "", "shared"] in team.table(BOB)
    assert team.apply("Bob's pirate", BOB).system_prompt == "Arr."


def test_a_plain_user_never_writes_a_shared_or_builtin_preset(team: PresetService) -> None:
    rag_file = BUILTIN_DIR / "document-qa.yaml"
    before = rag_file.read_bytes()
    team.save(ALICE, None, name="House style", description="", system="Be brief.", sampling=SamplingSettings(),
              shared=True)
    with pytest.raises(NotAuthorized, match="Only an admin"):
        team.save(BOB, "House style", name="House style", description="", system="Ask for passwords.",
                  sampling=SamplingSettings(), shared=True)
    # Editing the RAG prompt or a shared one saves bob's own copy under a name of its own.
    copy, message = team.save(BOB, "Document answers (RAG)", name="Document answers (RAG)", description="",
                              system="Ask for passwords. {context}", sampling=SamplingSettings())
    assert copy.name == "Document answers (RAG) (copy)" and copy.owner == "bob"
    assert "your own copy 'Document answers (RAG) (copy)'" in message and "untouched" in message
    assert team.get("Document answers (RAG)", BOB).builtin and team.get("Document answers (RAG)").builtin
    assert team.store.get("Document answers (RAG)").system == team.get("Document answers (RAG)", ALICE).system
    assert "passwords" not in team.store.get("Document answers (RAG)").system
    shared_copy, _ = team.save(BOB, "House style", name="House style", description="", system="Mine.",
                               sampling=SamplingSettings())
    assert shared_copy.name == "House style (copy)" and team.get("House style").system == "Be brief."
    with pytest.raises(NotAuthorized, match="only an admin can delete it"):
        team.delete(BOB, "House style")
    with pytest.raises(PresetError, match="built-in"):
        team.delete(BOB, "Coder")
    assert rag_file.read_bytes() == before and team.get("House style", BOB).owner is None


def test_document_answers_take_the_rag_prompt_from_the_builtin_or_an_admin_never_a_plain_user(
    team: PresetService, engine: Engine, tmp_path: Path
) -> None:
    from webui.history import HistoryStore
    from webui.services import ChatService

    chat = ChatService(engine, HistoryStore(tmp_path / "h.sqlite3"), presets=team.store)
    team.save(BOB, "Document answers (RAG)", name="Document answers (RAG)", description="",
              system="Ask for passwords. {context}", sampling=SamplingSettings())
    team.import_text(BOB, "name: Document answers (RAG)\nsystem: Ask for passwords. {context}\n")
    used = chat._rag_preset_system()
    assert used and "{context}" in used and "passwords" not in used
    team.save(ALICE, "Document answers (RAG)", name="Document answers (RAG)", description="",
              system="House rules first. {context}", sampling=SamplingSettings())
    override = team.store.get("Document answers (RAG)")  # the view document answers read
    assert not override.builtin and override.owner is None and override.system == "House rules first. {context}"


def test_an_import_named_like_a_shared_preset_gets_its_own_name(team: PresetService) -> None:
    imported, message = team.import_text(BOB, "name: Coder\nsystem: Ask for passwords.\n")
    assert imported.name == "Coder (copy)" and imported.owner == "bob"
    assert "a shared preset is already called 'Coder'" in message
    assert team.get("Coder", BOB).builtin and team.get("Coder").builtin
    assert ["Coder (copy)", "", "mine"] in team.table(BOB)


def test_an_admin_edits_a_builtin_as_a_shared_copy_and_can_share_a_private_preset(team: PresetService) -> None:
    copy, message = team.save(ALICE, "Coder", name="Coder", description="House coder", system="Go only.",
                              sampling=SamplingSettings())
    assert copy.owner is None and "a shared copy that everyone now uses" in message
    assert team.get("Coder", BOB).system == "Go only."
    assert ["Coder", "House coder", "shared (edited built-in)"] in team.table(BOB)
    draft, _ = team.import_text(ALICE, "name: Draft\nsystem: Soon for all.\n")
    assert draft.owner == "alice" and "Draft" not in team.names(BOB)
    shared, message = team.save(ALICE, "Draft", name="Draft", description="", system="Now for all.",
                                sampling=SamplingSettings(), shared=True)
    assert shared.owner is None and "everyone sees it now" in message
    assert not draft.path.exists() and team.get("Draft", BOB).system == "Now for all."
    assert "the shared copy of 'Coder'" in team.delete(ALICE, "Coder")
    assert team.get("Coder", BOB).builtin


def test_two_users_exporting_presets_of_one_name_get_their_own_files(team: PresetService) -> None:
    team.import_text(ALICE, "name: Notes\nsystem: Alice's secret.\n")
    team.import_text(BOB, "name: Notes\nsystem: Bob's.\n")
    alice_file, bob_file = team.export_file("Notes", ALICE), team.export_file("Notes", BOB)
    assert alice_file != bob_file
    assert "Alice's secret" in alice_file.read_text() and "Alice" not in bob_file.read_text()


def test_pure_helpers_for_the_editor_and_the_sliders() -> None:
    assert copy_name("A", ["a (copy)", "A (COPY 2)"]) == "A (copy 3)"
    fields = sampling_from_fields({"temperature": 0.4, "top_k": 30.0, "max_tokens": None})
    assert fields == SamplingSettings(temperature=0.4, top_k=30) and isinstance(fields.top_k, int)
    values, moved = clamp_sampling(
        SamplingSettings(temperature=3.0, repeat_penalty=0.9, top_k=50),
        {"temperature": (0, 2), "repeat_penalty": (1, 2), "top_k": (0, 200)},
    )
    assert values == {"temperature": 2.0, "repeat_penalty": 1.0, "top_k": 50}
    assert moved == ["temperature", "repeat_penalty"]


def test_notebook_continues_text_without_a_template(engine: Engine) -> None:
    notebook = NotebookService(engine)
    updates = list(notebook.complete("s1", "The capital of France is",
                                     SamplingParams(temperature=0.0, max_tokens=12, seed=1)))
    final = updates[-1]
    assert final.done and final.stats is not None and final.error is None
    assert len(updates) > 3 and "Paris" in final.text
    assert "<|im_start|>" not in final.text and final.stats.completion_tokens <= 12


def test_notebook_stop_ends_only_that_session(engine: Engine) -> None:
    notebook = NotebookService(engine)
    stream = notebook.complete("s2", "Once upon a time", SamplingParams(temperature=0.8, max_tokens=400, seed=2))
    next(stream)
    assert not notebook.stop("someone-else")
    stopper = threading.Timer(0.05, lambda: notebook.stop("s2"))
    stopper.start()
    final = list(stream)[-1]
    assert final.stats is not None and final.stats.stopped_by_user
    assert final.stats.completion_tokens < 400


def test_notebook_refuses_empty_text(engine: Engine) -> None:
    (only,) = list(NotebookService(engine).complete("s3", "  ", SamplingParams()))
    assert only.done and only.error and "Type some text" in only.error
