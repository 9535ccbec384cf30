"""Presets: YAML files in tmp dirs, built-ins kept intact, clear errors, variants and variables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from webui.prompts.presets import (
    BUILTIN_DIR,
    SAMPLING_PRESETS,
    Preset,
    PresetError,
    PresetNotFoundError,
    PresetStore,
    SamplingSettings,
    Variant,
    parse_preset,
)
from webui.quarantine import set_aside_files

GOOD = """\
name: Pirate
description: Talks like a pirate.
system: |-
  You are a pirate.
  Today is {date}.
sampling:
  temperature: 0.9
  max_tokens: 200
variants:
  - when: {family: gemma}
    system: Arr. Short answers.
  - when: {architecture: [llama, qwen2], name_contains: 135M}
    system: Tiny pirate.
"""


@pytest.fixture()
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path / "presets")


def _builtin_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(BUILTIN_DIR.glob("*.yaml"))}


def test_builtins_load_cleanly_and_cover_the_advertised_jobs(store: PresetStore) -> None:
    names = [p.name for p in store.list()]
    assert store.errors() == []
    assert all(p.builtin and p.path is not None and p.path.parent == BUILTIN_DIR for p in store.list())
    lowered = " ".join(names).lower()
    for job in ("concise", "summar", "translat", "coder", "search", "document", "raw"):
        assert job in lowered, job


def test_search_preset_asks_for_three_numbered_questions(store: PresetStore) -> None:
    search = next(p for p in store.list() if "search" in p.name.lower())
    assert "three search queries similar to the user's question" in search.system
    assert "question mark" in search.system and "1." in search.system


def test_document_preset_uses_context_and_citations(store: PresetStore) -> None:
    rag = store.get("Document answers (RAG)")
    filled = rag.fill(rag.system, context="[1] Paris is in France.\n[2] Rome is in Italy.")
    assert "[1] Paris is in France.\n[2] Rome is in Italy." in filled
    words = " ".join(filled.split())
    assert "[1], [2]" in words and "do not contain the answer" in words
    assert "{context}" not in filled


def test_crud_round_trip_through_files(store: PresetStore) -> None:
    created = store.import_yaml(GOOD)
    assert created.path == store.user_dir / "pirate.yaml" and not created.builtin
    assert store.get("pirate") == created  # lookups ignore case
    assert created.sampling == SamplingSettings(temperature=0.9, max_tokens=200)

    edited = store.save(replace(created, description="Arr!", system="Yo ho."))
    assert store.get("Pirate").description == "Arr!"
    assert "Yo ho." in (store.user_dir / "pirate.yaml").read_text(encoding="utf-8")

    renamed = store.save(replace(edited, name="Old Pirate"))
    assert renamed.path == store.user_dir / "old-pirate.yaml"
    assert not (store.user_dir / "pirate.yaml").exists()

    copy = store.duplicate("Old Pirate", "Young Pirate")
    assert copy.system == "Yo ho." and copy.path == store.user_dir / "young-pirate.yaml"

    store.delete("Old Pirate")
    with pytest.raises(PresetNotFoundError, match="no preset named 'Old Pirate'"):
        store.get("Old Pirate")
    assert [p.name for p in store.list() if not p.builtin] == ["Young Pirate"]
    assert list(store.user_dir.glob(".*")) == []  # no temp files left behind


def test_editing_a_builtin_saves_a_user_copy_and_leaves_the_builtin_untouched(
    store: PresetStore,
) -> None:
    before = _builtin_files()
    builtin = store.get("Coder")
    assert builtin.builtin

    saved = store.save(replace(builtin, system="Only Rust, please."))
    assert not saved.builtin and saved.path is not None and saved.path.parent == store.user_dir
    assert store.get("Coder").system == "Only Rust, please."
    assert [p.name for p in store.list()].count("Coder") == 1
    assert _builtin_files() == before

    store.delete("Coder")  # deleting the user copy brings the built-in back
    assert store.get("Coder").system == builtin.system and store.get("Coder").builtin


def test_builtins_cannot_be_deleted(store: PresetStore) -> None:
    with pytest.raises(PresetError, match="built-in"):
        store.delete("Summarizer")
    assert store.get("Summarizer").builtin


def test_names_must_be_unique(store: PresetStore) -> None:
    store.import_yaml(GOOD)
    with pytest.raises(PresetError, match="already exists"):
        store.import_yaml(GOOD)
    with pytest.raises(PresetError, match="already exists"):
        store.duplicate("Coder", "pirate")
    with pytest.raises(PresetError, match="already exists"):
        store.save(Preset(name="PIRATE"))


@pytest.mark.parametrize("owner", [None, "bob"])
def test_saving_over_a_file_that_did_not_load_keeps_that_file_aside(store: PresetStore, owner: str | None) -> None:
    folder = store.shared_dir if owner is None else store.private_dir(owner)
    folder.mkdir(parents=True)
    garbage = b"name: Pirate\nsystem: [unclosed\n\xff"
    (folder / "pirate.yaml").write_bytes(garbage)
    assert store.errors(owner) and "Pirate" not in {p.name for p in store.list(owner)}
    saved = store.import_yaml(GOOD, owner)  # a preset named Pirate goes to pirate.yaml
    assert saved.path == folder / "pirate.yaml" and store.get("Pirate", owner).system.startswith("You are a pirate")
    [kept] = set_aside_files(store.user_dir)
    assert kept.parent == folder and kept.name.startswith("pirate.yaml.corrupt-") and kept.read_bytes() == garbage
    assert store.errors(owner) == []  # the kept file is no longer read as a preset


def test_malformed_file_reports_file_and_line_and_others_still_load(store: PresetStore) -> None:
    store.user_dir.mkdir(parents=True)
    (store.user_dir / "broken.yaml").write_text(
        "name: Broken\nsystem: fine\nsampling:\n  temperature: [0.5\n", encoding="utf-8"
    )
    (store.user_dir / "bad-value.yaml").write_text(
        "name: Hot\nsystem: hi\nsampling:\n  temperature: 9\n", encoding="utf-8"
    )
    (store.user_dir / "typo.yaml").write_text(
        "name: Typo\nsytem: hi\n", encoding="utf-8"
    )
    store.import_yaml(GOOD)

    errors = store.errors()
    assert len(errors) == 3
    assert any(e.startswith("broken.yaml, line 5: not valid YAML") for e in errors), errors
    assert "bad-value.yaml, line 4: sampling 'temperature' must be between 0.0 and 5.0, not 9" in errors
    assert any(e.startswith("typo.yaml, line 2: unknown key 'sytem'") for e in errors), errors
    names = {p.name for p in store.list()}
    assert "Pirate" in names and "Coder" in names
    assert not names & {"Broken", "Hot", "Typo"}


def test_unknown_variable_in_a_file_names_the_line() -> None:
    text = "name: X\nvariants:\n  - when: {family: gemma}\n    system: Hello {user_name}\n"
    with pytest.raises(PresetError, match=r"x\.yaml, line 4: unknown variable \{user_name\}"):
        parse_preset(text, source="x.yaml")


def test_fill_replaces_variables_and_rejects_unknown_ones() -> None:
    preset = Preset(name="P")
    text = "Q: {question} / C: {context} / D: {date} / M: {model} / literal {{date}} / json {\"a\": 1}"
    filled = preset.fill(text, question="why?", date="2024-05-01", model="gemma.gguf")
    assert filled == 'Q: why? / C:  / D: 2024-05-01 / M: gemma.gguf / literal {date} / json {"a": 1}'
    with pytest.raises(PresetError, match=r"unknown variable \{colour\}"):
        preset.fill("Pick {colour}")
    with pytest.raises(PresetError, match="unknown variable\\(s\\) colour"):
        preset.fill("Hi", colour="red")


def test_fill_defaults_date_to_today() -> None:
    import datetime as dt

    assert Preset(name="P").fill("{date}") == dt.date.today().isoformat()


def test_variant_chosen_for_family_architecture_or_name(store: PresetStore) -> None:
    preset = store.import_yaml(GOOD)
    assert preset.system_for(family="gemma", architecture="gemma3", model_name="g.gguf") == (
        "Arr. Short answers."
    )
    assert preset.system_for(
        family="chatml", architecture="llama", model_name="SmolLM2-135M-Instruct.Q4_1.gguf"
    ) == "Tiny pirate."
    # Both conditions of the second variant must hold.
    assert preset.system_for(family=None, architecture="llama", model_name="big.gguf") == (
        "You are a pirate.\nToday is {date}."
    )
    assert preset.system_for(family=None, architecture=None, model_name="") == preset.system


def test_builtin_variant_for_small_models() -> None:
    store = PresetStore(Path("/nonexistent-user-dir"))
    concise = store.get("Concise assistant")
    small = concise.system_for(family="gemma", architecture="gemma3", model_name="gemma-3-270m-q4_k_m.gguf")
    large = concise.system_for(family="llama-3", architecture="llama", model_name="Llama-3-8B.gguf")
    assert small != large and large == concise.system


def test_export_then_import_elsewhere_round_trips(store: PresetStore, tmp_path: Path) -> None:
    store.import_yaml(GOOD)
    text = store.export_yaml("Pirate")
    other = PresetStore(tmp_path / "other")
    imported = other.import_yaml(text)
    original = store.get("Pirate")
    assert (imported.name, imported.system, imported.sampling, imported.variants) == (
        original.name,
        original.system,
        original.sampling,
        original.variants,
    )
    assert imported.variants[1] == Variant(
        system="Tiny pirate.", architecture=("llama", "qwen2"), name_contains=("135M",)
    )
    assert "system: |-\n  You are a pirate.\n  Today is {date}.\n" in text  # multi-line prompts stay readable


def test_import_validates_before_writing(store: PresetStore) -> None:
    with pytest.raises(PresetError, match="imported preset, line 1: 'name' must be a non-empty text"):
        store.import_yaml("name: ''\nsystem: hi\n")
    with pytest.raises(PresetError, match="imported preset, line 2: not valid YAML"):
        store.import_yaml("name: x\n  bad: [\n")
    assert not store.user_dir.exists() or list(store.user_dir.iterdir()) == []


def test_sampling_may_name_a_sampling_preset() -> None:
    preset = parse_preset("name: X\nsampling: creative\n", source="x.yaml")
    assert preset.sampling == SAMPLING_PRESETS["creative"]
    assert set(SAMPLING_PRESETS) == {"precise", "balanced", "creative"}
    with pytest.raises(PresetError, match="x.yaml, line 2: unknown sampling preset 'wild'"):
        parse_preset("name: X\nsampling: wild\n", source="x.yaml")


def test_sampling_types_are_checked() -> None:
    with pytest.raises(PresetError, match="'top_k' must be a whole number"):
        parse_preset("name: X\nsampling:\n  top_k: 4.5\n", source="x.yaml")
    with pytest.raises(PresetError, match="'temperature' must be a number"):
        parse_preset("name: X\nsampling:\n  temperature: true\n", source="x.yaml")
    assert parse_preset("name: X\nsampling:\n  temperature: 1\n", source="x").sampling.temperature == 1.0


# --- owners: shared presets and private ones --------------------------------------------------------


def test_private_presets_are_seen_only_by_their_owner(store: PresetStore) -> None:
    mine = store.import_yaml(GOOD, owner="bob")
    assert mine.owner == "bob" and mine.path == store.user_dir / "private" / "bob" / "pirate.yaml"
    assert store.get("Pirate", "bob") == mine
    assert "Pirate" not in [p.name for p in store.list("alice")]
    assert "Pirate" not in [p.name for p in store.list()]  # the shared view
    with pytest.raises(PresetNotFoundError):
        store.get("Pirate", "alice")
    # both see the built-ins and the shared ones
    shared = store.import_yaml(GOOD.replace("name: Pirate", "name: Team pirate"))
    assert shared.owner is None and shared.path == store.user_dir / "team-pirate.yaml"
    for viewer in ("alice", "bob", None):
        names = [p.name for p in store.list(viewer)]
        assert "Team pirate" in names and "Coder" in names


def test_a_private_preset_may_not_take_a_shared_or_builtin_name(store: PresetStore) -> None:
    store.import_yaml(GOOD)  # shared "Pirate"
    with pytest.raises(PresetError, match="'Coder' is the name of a built-in preset"):
        store.import_yaml("name: coder\nsystem: Ask for passwords.\n", owner="bob")
    with pytest.raises(PresetError, match="'Pirate' is the name of a shared preset"):
        store.save(Preset(name="PIRATE", system="x"), owner="bob")
    assert store.get("Coder", "bob").builtin and store.get("Pirate", "bob").owner is None
    assert not (store.user_dir / "private" / "bob").exists()


def test_an_owner_deletes_only_their_own_files(store: PresetStore) -> None:
    store.import_yaml(GOOD)  # shared, e.g. made by an admin
    store.import_yaml("name: Alice notes\nsystem: hi\n", owner="alice")
    with pytest.raises(PresetError, match="not yours to delete"):
        store.delete("Pirate", owner="bob")
    with pytest.raises(PresetNotFoundError):
        store.delete("Alice notes", owner="bob")
    with pytest.raises(PresetError, match="built-in"):
        store.delete("Document answers (RAG)", owner="bob")
    assert store.get("Pirate").owner is None and store.get("Alice notes", "alice").owner == "alice"
    store.delete("Alice notes", owner="alice")
    assert "Alice notes" not in [p.name for p in store.list("alice")]


def test_a_private_copy_of_a_shared_preset_gets_saved_apart(store: PresetStore) -> None:
    shared = store.import_yaml(GOOD)
    copy = store.duplicate("Pirate", "My pirate", owner="bob")
    assert copy.owner == "bob" and copy.system == shared.system
    assert store.get("Pirate").path == shared.path and store.get("My pirate", "bob").path.parent.name == "bob"


def test_owner_names_that_are_not_user_names_are_refused(store: PresetStore) -> None:
    for bad in ("..", "a/b", "", "x" * 65, "ali ce"):
        with pytest.raises(PresetError, match="cannot own presets"):
            store.list(bad)


def test_files_from_before_owners_stay_shared(store: PresetStore) -> None:
    store.user_dir.mkdir(parents=True)
    (store.user_dir / "old.yaml").write_text("name: Old one\nsystem: From before.\n", encoding="utf-8")
    old = store.get("Old one", "bob")
    assert old.owner is None and not old.builtin
    assert store.get("Old one").path == store.user_dir / "old.yaml"
