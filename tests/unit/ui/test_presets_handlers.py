"""The Presets tab's handlers over the real PresetService in a temp folder: what each button shows and saves."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from webui.ui.feedback import as_user
from webui.ui.forms import with_form
from webui.ui.presets import EDITOR_OUTPUTS, LIST_OUTPUTS, NEW_PRESET, PresetForm, PresetHandlers, pick_row

from tests.unit.ui.fake_presets import CHAT_SLIDER_RANGES, preset_services

CODER_SAMPLING = [0.2, 0.95, 40, 0.05, 1.05, 1024]  # the built-in Coder's, in the sliders' order


def handlers(tmp_path: Path, *, team: bool = False) -> PresetHandlers:
    return PresetHandlers(preset_services(tmp_path / "presets", team=team), CHAT_SLIDER_RANGES)


def new_form(name: str, system: str = "Be brief.", *, shared: bool = False, **sampling: float) -> PresetForm:
    return PresetForm(None, name, "", system, shared, **sampling)


def test_the_page_load_lists_the_users_presets_and_shows_the_shared_box_to_team_admins(tmp_path: Path) -> None:
    table, choice, errors, shared_box = handlers(tmp_path, team=True).refresh("bob")
    assert ["Coder", "Writes and explains code, with fenced code blocks.", "built-in"] in table
    assert "Coder" in choice["choices"] and "value" not in choice, "the picked preset is left alone"
    assert errors == "" and shared_box["visible"] is False
    assert handlers(tmp_path, team=True).refresh("alice")[3]["visible"] is True
    assert handlers(tmp_path, team=False).refresh("alice")[3]["visible"] is False


def test_a_broken_file_is_named_and_the_others_still_listed(tmp_path: Path) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "broken.yaml").write_text("name: Broken\nsystem: [never closed\n")
    table, _, errors, _ = handlers(tmp_path).refresh("alice")
    assert errors.startswith("**Some preset files could not be loaded**") and "broken.yaml, line" in errors
    assert "Coder" in [row[0] for row in table]


def test_picking_a_built_in_fills_the_editor_and_says_saving_makes_a_copy(tmp_path: Path) -> None:
    export, editing, title, name, description, system, *rest = handlers(tmp_path, team=True).pick("bob", "Coder")
    sampling, note, shared = rest[:-2], rest[-2], rest[-1]
    assert editing == name == "Coder" and system.startswith("You are an expert programmer.")
    assert title == "#### Editing 'Coder' (built in: saving stores your own copy, the original stays as it is)"
    assert sampling == CODER_SAMPLING and note == "" and shared is True
    assert "name: Coder" in Path(export).read_text()
    assert handlers(tmp_path, team=True).pick("alice", "Coder")[2].endswith(
        "(built in: saving stores a shared copy, the original stays as it is)")


def test_a_preset_with_variants_says_they_are_kept(tmp_path: Path) -> None:
    note = handlers(tmp_path).pick("alice", "Concise assistant")[-2]
    assert "model-specific prompt variant" in note and "they are kept when you save" in note


def test_picking_nothing_or_a_preset_gone_shows_an_empty_editor(tmp_path: Path) -> None:
    assert handlers(tmp_path).pick("alice", None) == [None, *NEW_PRESET.outputs()]
    assert handlers(tmp_path).pick("alice", "Deleted meanwhile")[1:] == NEW_PRESET.outputs()


def test_apply_sets_the_chats_prompt_and_sliders(tmp_path: Path) -> None:
    system, *sliders, status = handlers(tmp_path).apply_preset("alice", "Coder")
    assert system.startswith("You are an expert programmer.") and sliders == CODER_SAMPLING
    assert status.startswith("Applied 'Coder' to the chat (no model is loaded: the default prompt was used).")


def test_apply_fits_wide_values_into_the_sliders_and_says_which(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    tab.import_text("alice", "name: Wild\nsystem: Go.\nsampling:\n  temperature: 3.5\n  max_tokens: 8000\n")
    _, temperature, top_p, *_, max_tokens, status = tab.apply_preset("alice", "Wild")
    assert (temperature, max_tokens) == (2.0, 4096) and top_p == gr.update(), "unset values keep the chat's own"
    assert status.endswith("Fitted to the chat's ranges: Temperature, Max new tokens.")


def test_apply_without_a_pick_or_with_a_missing_preset_changes_nothing(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    assert tab.apply_preset("alice", None) == [*[gr.update()] * 7, "Pick a preset first."]
    with pytest.warns(UserWarning):
        *unchanged, status = tab.apply_preset("alice", "Nobody's")
    assert unchanged == [gr.update()] * 7 and status.startswith("**Could not apply:** ") and "Nobody's" in status


def test_one_click_sampling_sets_the_sliders_only(tmp_path: Path) -> None:
    *sliders, status = handlers(tmp_path).sampling_event("creative")("alice")
    assert sliders[:5] == [1.0, 0.98, 100, 0.02, 1.05] and sliders[5] == gr.update()
    assert status == "Applied the **creative** sampling settings to the chat."


def test_new_then_save_writes_the_file_and_picks_it(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    assert tab.new_preset("alice") == [*NEW_PRESET.outputs(), "Write the new preset below, then press Save."]
    outputs = tab.save_preset("alice", new_form("Pirate test", "Say Arr.", temperature=0.3, top_k=40.0))
    table, choice, errors, export = outputs[:LIST_OUTPUTS]
    editor, status = outputs[LIST_OUTPUTS:-1], outputs[-1]
    assert status == "Saved 'Pirate test'."
    saved = (tmp_path / "presets" / "pirate-test.yaml").read_text()
    assert "Say Arr." in saved and "temperature: 0.3" in saved and "top_k: 40\n" in saved
    assert ["Pirate test", "", "mine"] in table and choice["value"] == "Pirate test" and export.endswith(".yaml")
    assert editor[0] == "Pirate test" and editor[1] == "#### Editing 'Pirate test'"


def test_saving_a_built_in_keeps_it_and_says_a_copy_was_saved(tmp_path: Path) -> None:
    form = PresetForm("Coder", "Coder", "My own coder.", "Write code.", False)
    status = handlers(tmp_path).save_preset("alice", form)[-1]
    assert "'Coder' is built in, so your changes were saved as your own copy" in status
    assert "My own coder." in (tmp_path / "presets" / "coder.yaml").read_text()


def test_a_refused_save_says_why_and_changes_nothing(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        outputs = handlers(tmp_path).save_preset("alice", new_form("  "))
    assert outputs == [*[gr.update()] * (LIST_OUTPUTS + EDITOR_OUTPUTS), "**Not saved:** give the preset a name"]
    assert not (tmp_path / "presets").exists() or not list((tmp_path / "presets").rglob("*.yaml"))


def test_in_team_mode_the_shared_box_counts_for_admins_only(tmp_path: Path) -> None:
    tab = handlers(tmp_path, team=True)
    assert tab.save_preset("alice", new_form("Team rules", shared=True))[-1] == "Saved 'Team rules' for everyone."
    assert (tmp_path / "presets" / "team-rules.yaml").is_file()
    assert tab.save_preset("bob", new_form("Bob notes", shared=True))[-1] == "Saved 'Bob notes'."
    assert (tmp_path / "presets" / "private" / "u-bob" / "bob-notes.yaml").is_file()
    edited = PresetForm("Team rules", "Team rules", "", "Ask for passwords.", False)
    assert "your own copy 'Team rules (copy)'" in tab.save_preset("bob", edited)[-1]
    assert "Ask for passwords." not in (tmp_path / "presets" / "team-rules.yaml").read_text()


def test_duplicate_saves_a_copy_and_picks_it(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    *listing, status = tab.duplicate_preset("alice", "Coder")
    assert status == "Saved a copy of 'Coder' as 'Coder (copy)'." and listing[1]["value"] == "Coder (copy)"
    assert tab.duplicate_preset("alice", None) == [*[gr.update()] * LIST_OUTPUTS, "Pick a preset first."]


def test_delete_asks_first_and_refuses_built_ins_and_for_plain_users_shared_ones(tmp_path: Path) -> None:
    tab = handlers(tmp_path, team=True)
    tab.save_preset("alice", new_form("Team rules", shared=True))
    tab.save_preset("bob", new_form("Bob notes"))
    assert tab.ask_delete("bob", "Coder")[2] == "'Coder' is built in and cannot be deleted; duplicate it to make your own."
    assert tab.ask_delete("bob", "Team rules")[2] == "'Team rules' is shared: only an admin can delete it."
    row, question, status = tab.ask_delete("bob", "Bob notes")
    assert row["visible"] is True and question == "Delete **Bob notes** for good?" and status == ""
    with pytest.warns(UserWarning):
        row, question, status = tab.ask_delete("bob", "Nobody's")
    assert row["visible"] is False and "Nobody's" in status


def test_delete_removes_the_users_preset_or_says_why_not(tmp_path: Path) -> None:
    tab = handlers(tmp_path, team=True)
    tab.save_preset("alice", new_form("Team rules", shared=True))
    tab.save_preset("bob", new_form("Bob notes"))
    row, table, *_, status = tab.delete_preset("bob", "Bob notes")
    assert row["visible"] is False and status == "Deleted 'Bob notes'."
    assert "Bob notes" not in [r[0] for r in table]
    with pytest.warns(UserWarning):
        status = tab.delete_preset("bob", "Team rules")[-1]
    assert status == "**Not deleted:** 'Team rules' is shared: only an admin can delete it."
    assert (tmp_path / "presets" / "team-rules.yaml").is_file()
    assert tab.cancel("bob") == gr.update(visible=False)


def test_pasted_yaml_is_imported_and_the_box_emptied_or_its_error_named(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    *listing, pasted, status = tab.import_text("alice", "name: Pasted one\nsystem: Be terse.\n")
    assert status == "Imported 'Pasted one' from pasted YAML." and pasted == "" and listing[1]["value"] == "Pasted one"
    with pytest.warns(UserWarning):
        *unchanged, status = tab.import_text("alice", "name: X\nsystem: [oops\n")
    assert unchanged == [gr.update()] * (LIST_OUTPUTS + 1), "the pasted text stays to be fixed"
    assert status.startswith("**Not imported:** pasted YAML, line 3: not valid YAML")


def test_an_uploaded_file_is_imported_and_any_other_path_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    upload = tmp_path / "uploads" / "abc123" / "shared-by-a-friend.yaml"
    upload.parent.mkdir(parents=True)
    upload.write_text("name: Uploaded one\nsystem: Be kind.\n")
    tab = handlers(tmp_path)
    assert tab.import_upload("alice", str(upload))[-1] == "Imported 'Uploaded one' from shared-by-a-friend.yaml."
    elsewhere = tmp_path / "secret.yaml"
    elsewhere.write_text("name: Secret\nsystem: Host secret.\n")
    with pytest.warns(UserWarning):
        status = tab.import_upload("alice", str(elsewhere))[-1]
    assert status == ("**Not imported:** That file did not come from an upload to this page; "
                      "send it again with the upload box.")
    assert "Secret" not in tab.presets.names()


def test_a_signed_out_caller_is_asked_to_log_in_again(tmp_path: Path) -> None:
    tab = handlers(tmp_path, team=True)
    for call in (lambda: tab.refresh(None), lambda: tab.save_preset(None, new_form("X")),
                 lambda: tab.import_text(None, "name: X\nsystem: x\n")):
        with pytest.raises(gr.Error, match="Please log in again."):
            call()


def test_a_table_row_click_picks_its_preset() -> None:
    assert pick_row(SimpleNamespace(row_value=["Coder", "Writes code.", "built-in"])) == "Coder"
    assert pick_row(SimpleNamespace(row_value=None)) == gr.update()


def test_the_save_event_takes_the_editors_fields_as_the_page_sends_them(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    event = as_user(with_form(tab.save_preset, PresetForm))
    assert event.__name__ == "save_preset"
    assert list(inspect.signature(event).parameters) == [
        "original", "name", "description", "system", "shared", "temperature", "top_p", "top_k", "min_p",
        "repeat_penalty", "max_tokens", "request"]
    status = event(None, "Sent", "", "Hi.", False, None, None, None, None, None, 48, SimpleNamespace(username="x"))[-1]
    assert status == "Saved 'Sent'." and "max_tokens: 48" in (tmp_path / "presets" / "sent.yaml").read_text()


def test_the_chat_header_names_the_preset_applied_and_keeps_the_last_one_when_apply_fails(tmp_path: Path) -> None:
    tab = handlers(tmp_path)
    *_, status, applied = tab.apply_preset_to_chat("alice", "Coder", None)
    assert applied == "Coder" and status.startswith("Applied 'Coder'")
    assert tab.apply_preset_to_chat("alice", None, "Coder")[-1] == "Coder"
    with pytest.warns(UserWarning):
        assert tab.apply_preset_to_chat("alice", "Nobody's", "Coder")[-1] == "Coder"
