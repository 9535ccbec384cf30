"""The Notebook's and the model picker's handlers with a fake Services: what the text, stats and picker show."""

from __future__ import annotations

import pytest

from webui.errors import UserError
from webui.ui.model_picker import ModelPickerHandlers
from webui.ui.notebook import GENERATING, NotebookForm, NotebookHandlers

from tests.unit.ui.fake_chat import FakeChatServices

PAGE = "page-1"


def test_generate_appends_the_streamed_continuation_then_shows_the_stats() -> None:
    fake = FakeChatServices()
    steps = list(NotebookHandlers(fake).run("bob", PAGE, NotebookForm("The sky is", 40.0, 0.0, None)))
    assert steps[:-1] == [("The sky is green", GENERATING), ("The sky is green and", GENERATING),
                          ("The sky is green and blue.", GENERATING)]
    text, stats = steps[-1]
    assert text == "The sky is green and blue." and stats.startswith("3 tokens · ")
    key, prompt, sampling = fake.notebook.calls[-1]
    assert (key, prompt, sampling.max_tokens, sampling.temperature, sampling.seed) == (PAGE, "The sky is", 40, 0.0, -1)


def test_an_empty_text_or_a_failure_is_said_under_the_text_which_is_kept() -> None:
    fake = FakeChatServices()
    with pytest.warns(UserWarning, match="Type some text"):
        assert list(NotebookHandlers(fake).run("bob", PAGE, NotebookForm(None, 40.0, 0.7, 1.0))) == [
            ("", "**Error:** Type some text for the model to continue.")]
    fake.notebook.error = "The model stopped answering."
    with pytest.warns(UserWarning, match="stopped answering"):
        text, stats = list(NotebookHandlers(fake).run("bob", PAGE, NotebookForm("Once", 40.0, 0.7, 1.0)))[-1]
    assert text == "Once green and blue." and stats == "**Error:** The model stopped answering."


def test_a_signed_out_page_generates_nothing_and_stop_stops_only_this_pages_text() -> None:
    fake = FakeChatServices()
    with pytest.warns(UserWarning, match="Please log in again."):
        assert list(NotebookHandlers(fake).run(None, PAGE, NotebookForm("Once", 40.0, 0.7, 1.0)))[-1][1] == (
            "**Error:** Please log in again.")
    assert fake.notebook.calls == []
    NotebookHandlers(fake).stop_generation("bob", PAGE)
    assert fake.notebook.stopped == [PAGE]


def test_the_picker_shows_the_loaded_model_switchable_by_admins_only() -> None:
    fake = FakeChatServices()
    admin = ModelPickerHandlers(fake).current("alice")
    assert admin.value == "tiny.gguf" and admin.interactive is True and admin.label == "Model in use"
    assert [c[0] for c in admin.choices] == ["tiny.gguf", "small.gguf"]
    user = ModelPickerHandlers(fake).current("bob")
    assert user.interactive is False and user.label == "Model in use (only an admin can switch it)"
    fake.models.loaded_model = None
    assert ModelPickerHandlers(fake).current("alice").label == "Model (none loaded): pick one to load it"


def test_an_admins_switch_says_it_waits_then_which_model_is_in_use() -> None:
    fake = FakeChatServices()
    fake.models.waits = [2]
    steps = list(ModelPickerHandlers(fake).switch("alice", "small.gguf"))
    lines = [line for _, line in steps]
    assert lines[0] == "Loading small.gguf…"
    assert "Waiting for the current reply to finish before loading small.gguf (position 2)…" in lines
    picker, last = steps[-1]
    assert last == "Now using **small.gguf**." and picker.value == "small.gguf"


def test_a_refused_or_failed_switch_keeps_the_model_and_says_why() -> None:
    fake = FakeChatServices()
    picker, line = list(ModelPickerHandlers(fake).switch("bob", "small.gguf"))[-1]
    assert line == "Only an admin can switch the model." and picker.value == "tiny.gguf"
    fake.models.load_error = UserError("Not enough memory for small.gguf.")
    with pytest.warns(UserWarning, match="Not enough memory"):
        picker, line = list(ModelPickerHandlers(fake).switch("alice", "small.gguf"))[-1]
    assert line == "**Not switched:** Not enough memory for small.gguf." and picker.value == "tiny.gguf"


def test_picking_the_model_already_in_use_changes_nothing() -> None:
    fake = FakeChatServices()
    assert list(ModelPickerHandlers(fake).switch("alice", "tiny.gguf")) == [({"__type__": "update"},) * 2]
