"""The Models tab's handlers with a fake Services: what an admin sees and does, and what everyone else is refused."""

from __future__ import annotations

import inspect
import threading
from types import SimpleNamespace

import gradio as gr
import pytest

from webui.services.models import ModelEntry, ModelLoadOptions, ModelManagerError, RemoteModelFile
from webui.ui.feedback import as_user
from webui.ui.forms import with_form
from webui.ui.models import DEFAULT_FORM, LoadSettingsForm, ModelHandlers

from tests.unit.ui.fake_models import MODELS_DIR, local_model, model_services

A, B = "alpha-1b-Q4_K_M.gguf", "beta-1b-Q4_K_M.gguf"


def test_an_admin_opens_the_tab_on_the_folder_and_the_loaded_model() -> None:
    where, rows, pick, loaded = ModelHandlers(model_services(A, B, loaded=B)).on_load("alice")
    assert str(MODELS_DIR) in where
    assert [(row[0], row[1]) for row in rows] == [(A, ""), (B, "● loaded")]
    assert pick["choices"] == [A, B] and pick["value"] == B
    assert loaded.startswith(f"**Loaded:** {B}")


def test_a_plain_user_gets_an_empty_tab_without_the_folder() -> None:
    assert ModelHandlers(model_services(A, loaded=A)).on_load("bob") == ("", [], gr.update(choices=[], value=None), "")


@pytest.mark.parametrize("call", [
    lambda h: h.refresh_all("bob", A),
    lambda h: h.fill_form("bob", A),
    lambda h: list(h.do_load("bob", A, False, LoadSettingsForm())),
    lambda h: h.do_unload("bob"),
    lambda h: h.do_save("bob", A, LoadSettingsForm()),
    lambda h: h.do_delete("bob", A),
    lambda h: h.do_list("bob", "org/repo"),
    lambda h: h.do_download("bob", "org/repo", A),
    lambda h: h.poll("bob", "job1", A),
    lambda h: h.do_cancel("bob", "job1"),
])
def test_every_management_event_fails_for_a_plain_user_and_changes_nothing(call) -> None:
    fake = model_services(A, loaded=A)
    with pytest.raises(gr.Error, match="Only an admin can manage models."):
        call(ModelHandlers(fake))
    assert fake.models.loaded() is not None and [m.file_name for m in fake.models.local] == [A]
    assert fake.models.settings == {} and fake.models.jobs == {} and fake.models.calls == []


def test_a_signed_out_caller_is_asked_to_log_in_again() -> None:
    with pytest.raises(gr.Error, match="Please log in again."):
        ModelHandlers(model_services(A)).do_unload(None)


def test_picking_a_model_fills_its_saved_settings_and_the_memory_warning() -> None:
    fake = model_services(A, B)
    fake.models.settings[B] = ModelLoadOptions(n_ctx=2048, n_gpu_layers=-1, flash_attn=True, chat_format="chatml")
    fake.models.memory_warning = f"{B} needs about 9 GB, more than this machine has."
    *form, draft, memory = ModelHandlers(fake).fill_form("alice", B)
    assert form == [2048, "-1", None, 512, "on", "f16", True, False, "chatml", True]
    assert draft["value"] == "" and draft["choices"][0] == "" and B in draft["choices"], "any file on disk can draft"
    assert memory == f"⚠️ {B} needs about 9 GB, more than this machine has."
    assert ModelHandlers(fake).fill_form("alice", None) == (*DEFAULT_FORM, "")


def test_a_model_on_a_server_has_no_load_settings_here() -> None:
    fake = model_services(A)
    fake.models.remote_entries = [ModelEntry(name="big-70b", loaded=False, size_bytes=0, modified=0.0, architecture=None,
                                             parameters="", quant=None, context_length=32768, where="10.0.0.5:8080")]
    assert ModelHandlers(fake).fill_form("alice", "big-70b")[-1] == "Runs on a model server: its load settings are the server's."
    _, rows, pick, loaded = ModelHandlers(fake).on_load("alice")
    assert pick["choices"] == [A, "big-70b"] and "runs at 10.0.0.5:8080" in loaded


def test_a_wrong_box_is_named_while_typing_and_nothing_is_checked() -> None:
    fake = model_services(A)
    with pytest.warns(UserWarning, match="GPU layers"):
        shown = ModelHandlers(fake).check_memory("alice", A, LoadSettingsForm(gpu_layers="lots"))
    assert shown == "⚠️ GPU layers must be 'auto' or a whole number, not 'lots'."
    assert fake.models.calls == []
    assert ModelHandlers(fake).check_memory("alice", A, LoadSettingsForm(n_ctx=4096)) == ""
    assert fake.models.calls == [f"memory_check {A} n_ctx=4096"]


def test_load_says_it_waits_for_a_reply_then_shows_the_new_model() -> None:
    fake = model_services(A, B, loaded=A)
    fake.models.waits, fake.models.released = [1], threading.Event()
    steps = []
    for step in ModelHandlers(fake).do_load("alice", B, True, LoadSettingsForm(n_ctx=2048)):
        steps.append(step)
        if step[0].startswith("Waiting"):  # the reply ahead finishes
            fake.models.released.set()
    statuses = [step[0] for step in steps]
    assert statuses[0] == f"Loading {B}…"
    assert f"Waiting for the current reply to finish before loading {B} (position 1)…" in statuses
    status, rows, pick, loaded = steps[-1]
    assert status == f"Loaded {B}: llama, context 4096, GPU layers 0."
    assert pick["value"] == B and loaded.startswith(f"**Loaded:** {B}")
    assert [row[1] for row in rows] == ["", "● loaded"]
    assert fake.models.calls == [f"load {B} n_ctx=2048 ignore=True"]


def test_a_failed_load_says_why_and_that_the_old_model_is_still_loaded() -> None:
    fake = model_services(A, B, loaded=A)
    fake.models.load_error = ModelManagerError(f"{B} needs more memory than this machine has.")
    with pytest.warns(UserWarning, match="needs more memory"):
        status, rows, pick, _ = list(ModelHandlers(fake).do_load("alice", B, False, LoadSettingsForm()))[-1]
    assert status == f"**Not loaded:** {B} needs more memory than this machine has. {A} is still loaded."
    assert pick["value"] == B and [row[1] for row in rows] == ["● loaded", ""]


def test_a_load_with_a_wrong_box_or_no_model_changes_nothing() -> None:
    fake = model_services(A, B, loaded=A)
    with pytest.warns(UserWarning):
        steps = list(ModelHandlers(fake).do_load("alice", B, False, LoadSettingsForm(gpu_layers="lots")))
    assert steps == [("**Not loaded:** GPU layers must be 'auto' or a whole number, not 'lots'.",
                      gr.update(), gr.update(), gr.update())]
    with pytest.warns(UserWarning):
        assert list(ModelHandlers(fake).do_load("alice", None, False, LoadSettingsForm()))[0][0] == \
            "Pick a model to load first."
    assert fake.models.calls == []


def test_unload_empties_the_loaded_line() -> None:
    fake = model_services(A, loaded=A)
    status, rows, _, loaded = ModelHandlers(fake).do_unload("alice")
    assert status == "Unloaded. Chats answer only after a model is loaded again."
    assert rows[0][1] == "" and loaded.startswith("**No model is loaded.**")


def test_save_keeps_the_settings_for_the_next_load_or_names_the_wrong_box() -> None:
    fake = model_services(A)
    handlers = ModelHandlers(fake)
    assert handlers.do_save("alice", A, LoadSettingsForm(n_ctx=2048, flash_attn="off")) == \
        f"Saved the load settings of {A}; they apply on its next load."
    assert fake.models.settings[A] == ModelLoadOptions(n_ctx=2048, flash_attn=False)
    with pytest.warns(UserWarning):
        assert handlers.do_save("alice", A, LoadSettingsForm(gpu_layers="lots")).startswith("**Not saved:** GPU layers")
    assert handlers.do_save("alice", None, LoadSettingsForm()) == "Pick a model first."


def test_delete_asks_first_then_removes_the_file_from_the_list() -> None:
    fake = model_services(A, B, loaded=A)
    row, question, status = ModelHandlers.ask_delete(B)
    assert row["visible"] is True and question == f"Delete **{B}** from disk? This cannot be undone."
    assert ModelHandlers.ask_delete(None)[2] == "Pick a model to delete first."
    row, status, rows, pick, _ = ModelHandlers(fake).do_delete("alice", B)
    assert row["visible"] is False and status == f"Deleted {B}."
    assert [r[0] for r in rows] == [A] and pick["value"] == A


def test_a_refused_delete_says_why_and_keeps_the_list() -> None:
    fake = model_services(A, loaded=A)
    fake.models.delete_error = ModelManagerError(f"{A} is the loaded model: unload it before deleting it.")
    with pytest.warns(UserWarning):
        row, status, rows, pick, _ = ModelHandlers(fake).do_delete("alice", A)
    assert status == f"**Not deleted:** {A} is the loaded model: unload it before deleting it."
    assert [r[0] for r in rows] == [A] and pick["value"] == A


def test_listing_a_repository_offers_its_files_with_the_first_picked() -> None:
    fake = model_services()
    fake.models.repos["org/tiny-GGUF"] = [
        RemoteModelFile("tiny-Q4_K_M.gguf", 1, 2**29, "Q4_K_M", "yes", False),
        RemoteModelFile("tiny-Q8_0.gguf", 1, 2**30, "Q8_0", "tight", True)]
    rows, pick, status = ModelHandlers(fake).do_list("alice", "org/tiny-GGUF")
    assert status == "2 GGUF models in org/tiny-GGUF."
    assert rows[1] == ["tiny-Q8_0.gguf", 1, "1.0 GB", "Q8_0", "tight", "yes"]
    assert pick["value"] == "tiny-Q4_K_M.gguf"
    assert pick["choices"][0] == ("tiny-Q4_K_M.gguf · 512 MB · Q4_K_M · fits: yes", "tiny-Q4_K_M.gguf")
    fake.models.repos["org/empty"] = []
    assert ModelHandlers(fake).do_list("alice", "org/empty")[2] == "org/empty has no GGUF model files."


def test_a_repository_that_cannot_be_listed_empties_the_file_list() -> None:
    with pytest.warns(UserWarning):
        rows, pick, status = ModelHandlers(model_services()).do_list("alice", "org/missing")
    assert rows == [] and pick == gr.update(choices=[], value=None)
    assert status == "**Cannot list files:** There is no repository org/missing on the hub."


def test_a_download_shows_its_progress_then_its_outcome_and_the_new_file() -> None:
    fake = model_services(A)
    handlers = ModelHandlers(fake)
    job_id, progress, status, timer = handlers.do_download("alice", "org/tiny-GGUF", "tiny-Q4_K_M.gguf")
    assert job_id == "job1" and "starting…" in progress and timer == gr.update(active=True)
    assert status == "Downloading tiny-Q4_K_M.gguf…"
    job = fake.models.jobs[job_id]
    job.done, job.total = 2**28, 2**29
    progress, *unchanged = handlers.poll("alice", job_id, A)
    assert 'value="50.0"' in progress and "256 MB of 512 MB" in progress
    assert unchanged == [gr.update()] * 5
    job.state, job.message = "done", "Downloaded tiny-Q4_K_M.gguf."
    fake.models.local.append(local_model("tiny-Q4_K_M.gguf"))
    progress, status, timer, rows, pick, _ = handlers.poll("alice", job_id, A)
    assert "100% · done" in progress and status == "Downloaded tiny-Q4_K_M.gguf."
    assert timer == gr.update(active=False) and "tiny-Q4_K_M.gguf" in [r[0] for r in rows] and pick["value"] == A


def test_poll_without_a_job_stops_the_timer_and_cancel_says_whether_one_ran() -> None:
    fake = model_services(A)
    handlers = ModelHandlers(fake)
    assert handlers.poll("alice", None, A)[2] == gr.update(active=False)
    assert handlers.do_cancel("alice", None) == "No download is running."
    job_id = handlers.do_download("alice", "org/tiny-GGUF", "tiny.gguf")[0]
    assert handlers.do_cancel("alice", job_id) == "Cancelling… the data so far is kept, so a new Download resumes."
    assert fake.models.jobs[job_id].state == "cancelled"


def test_the_form_and_the_options_round_trip() -> None:
    options = ModelLoadOptions(n_ctx=8192, n_gpu_layers=20, n_threads=6, n_batch=256, flash_attn=None,
                               kv_cache_type="q8_0", use_mmap=False, use_mlock=True, chat_format="gemma")
    assert LoadSettingsForm.from_options(options).options() == options
    assert LoadSettingsForm().options() == ModelLoadOptions()


def test_the_load_event_takes_each_box_as_the_page_sends_it() -> None:
    fake = model_services(A, B, loaded=A)
    event = as_user(with_form(ModelHandlers(fake).do_load, LoadSettingsForm))
    assert event.__name__ == "do_load" and inspect.isgeneratorfunction(event)
    assert list(inspect.signature(event).parameters) == ["name", "ignore_memory", "n_ctx", "gpu_layers", "threads",
                                                         "n_batch", "flash_attn", "kv_cache_type", "use_mmap",
                                                         "use_mlock", "chat_format", "prompt_lookup", "draft_model", "request"]
    boxes = [1024, "auto", None, 512, "auto", "f16", True, False, "", True, ""]
    steps = list(event(B, False, *boxes, SimpleNamespace(username="alice")))
    assert steps[-1][0].startswith(f"Loaded {B}") and fake.models.calls == [f"load {B} n_ctx=1024 ignore=False"]


# -- the tab for a user who is not an admin: the models listed read-only, and who can change them ----------


def test_a_plain_user_sees_the_models_read_only_and_who_can_change_them() -> None:
    fake = model_services(A, loaded=A)
    fake.models.remote_entries = [
        ModelEntry(name=A, loaded=True, size_bytes=800 * 2**20, modified=0.0, architecture="llama", parameters="1B",
                   quant="Q4_K_M", context_length=4096),
        ModelEntry(name="big.gguf @ gpu-box:8080", loaded=False, size_bytes=0, modified=0.0, architecture=None,
                   parameters="", quant=None, context_length=8192, where="gpu-box:8080")]
    fake.user_actions = SimpleNamespace(admin_names=lambda: ["alice"])
    handlers = ModelHandlers(fake)
    assert handlers.panels("bob") == (gr.update(visible=False), gr.update(visible=True))
    note, rows = handlers.shared_listing("bob")
    assert note == ("These are the models on this server. Only an admin can load, download or change them: "
                    "ask **alice**. Pick the model a chat uses in the Chat tab's model list.")
    assert rows == [[A, "● in use", "this machine", "800 MB", "Q4_K_M", 4096],
                    ["big.gguf @ gpu-box:8080", "", "gpu-box:8080", "", "", 8192]]
    assert str(MODELS_DIR) not in str(rows), "no path for a plain user"


def test_an_admin_gets_the_managing_controls_and_no_read_only_list() -> None:
    handlers = ModelHandlers(model_services(A, loaded=A))
    assert handlers.panels("alice") == (gr.update(visible=True), gr.update(visible=False))
    assert handlers.shared_listing("alice") == ("", [])


def test_the_read_only_list_is_filled_each_time_the_tab_is_opened() -> None:
    from webui.ui.models import build_models_tab

    with gr.Blocks() as blocks, gr.Tabs(), gr.Tab("Models") as tab:
        build_models_tab(model_services(A), tab)
    [opened] = [fn for fn in blocks.fns.values() if fn.targets == [(tab._id, "select")]]
    assert opened.name == "shared_listing"
    assert [c.elem_id for c in opened.outputs] == ["models-shared-note", "models-shared-table"]
