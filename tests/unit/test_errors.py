"""Errors, one way: every error the app defines is a UserError, and one helper turns any failure into a message."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

import gradio as gr
import pytest

import webui
from webui.errors import UserError, unexpected_message
from webui.history import ConversationNotFound
from webui.models.embedded import EmbeddedModelMissing
from webui.prompts.presets import PresetNotFoundError
from webui.rag.errors import CollectionNotFoundError
from webui.services.access import NotAuthorized
from webui.services.chat import EditRefused
from webui.ui.feedback import user_message, warn


def exception_classes_defined_in_webui() -> list[type[BaseException]]:
    """Every exception class defined at the top of a module of the webui package (imports all of them)."""
    found = []
    for module_info in pkgutil.walk_packages(webui.__path__, "webui."):
        module = importlib.import_module(module_info.name)
        found += [value for value in vars(module).values()
                  if inspect.isclass(value) and issubclass(value, BaseException)
                  and value.__module__ == module.__name__]
    return found


def test_every_exception_class_of_the_app_is_a_user_error():
    classes = exception_classes_defined_in_webui()
    names = {cls.__qualname__ for cls in classes}
    # the sweep really reached the areas: engine, documents, models, presets, history, auth, API, page
    assert {"EngineError", "RagError", "DownloadError", "PresetError", "HistoryError", "AuthError",
            "ApiProblem", "LoginLocked", "UploadRejected", "NotAuthorized"} <= names
    assert [cls.__module__ + "." + cls.__qualname__ for cls in classes if not issubclass(cls, UserError)] == []


def test_re_rooted_errors_keep_the_builtins_their_callers_catch():
    assert issubclass(NotAuthorized, PermissionError)
    assert issubclass(EmbeddedModelMissing, FileNotFoundError)
    assert issubclass(PresetNotFoundError, KeyError)
    assert issubclass(EditRefused, ValueError)
    assert str(NotAuthorized("Only an admin can do this.")) == "Only an admin can do this."
    assert str(PresetNotFoundError("No preset named 'x'.")) == "No preset named 'x'."


def test_a_missing_conversation_reads_as_a_sentence_not_its_id():
    error = ConversationNotFound("0123abcd")
    assert str(error) == "That conversation no longer exists."
    assert "0123abcd" in repr(error)  # the id is still there for the log


def test_a_user_error_becomes_its_sentence_and_a_warning_line(caplog):
    error = CollectionNotFoundError("No collection named 'notes'.")
    with caplog.at_level(logging.DEBUG, logger="webui.ui.feedback"):
        message = user_message(error, "Deleting a collection")
    assert message == "No collection named 'notes'."
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "Deleting a collection: No collection named 'notes'. (CollectionNotFoundError)"
    assert record.exc_info is None  # a refusal, not a bug: no traceback


def test_a_sentence_that_hides_its_id_logs_the_id(caplog):
    with caplog.at_level(logging.WARNING, logger="webui.ui.feedback"):
        message = user_message(ConversationNotFound("0123abcd"), "Saving a summary")
    assert message == "That conversation no longer exists."
    assert "0123abcd" in caplog.records[0].getMessage()


def test_an_unexpected_error_becomes_a_generic_sentence_and_a_logged_traceback(caplog):
    def broken() -> None:
        {}["missing"]

    try:
        broken()
    except KeyError as exc:
        with caplog.at_level(logging.DEBUG, logger="webui.ui.feedback"):
            message = user_message(exc, "Listing the documents")
    assert message == unexpected_message(KeyError()) == (
        "Something went wrong (KeyError); the server log has the details.")
    assert "missing" not in message  # internals stay in the log
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Listing the documents failed unexpectedly"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "in broken" in caplog.text  # the traceback reached the log


def test_a_gradio_error_raised_on_purpose_passes_through():
    shown = gr.Error("Sign in first.")
    with pytest.raises(gr.Error) as caught:
        user_message(shown, "Opening the tab")
    assert caught.value is shown


def test_warn_shows_the_sentence_as_a_toast_and_returns_it(caplog):
    # Outside a Gradio event, gr.Warning falls back to Python's warnings: that is the toast here.
    with caplog.at_level(logging.WARNING, logger="webui.ui.feedback"), pytest.warns(UserWarning) as toasts:
        message = warn(NotAuthorized("Only an admin can do this."), "Creating a shared collection")
    assert message == "Only an admin can do this."
    assert [str(t.message) for t in toasts] == ["Only an admin can do this."]
    assert "Creating a shared collection: Only an admin can do this." in caplog.text


def test_the_api_answers_any_user_error_with_its_sentence_as_a_4xx(caplog):
    from webui.api.common import problem_from

    with caplog.at_level(logging.WARNING, logger="webui.api.common"):
        refused = problem_from(CollectionNotFoundError("No collection named 'notes'."))
        failed = problem_from(RuntimeError("internal detail"))
    assert (refused.status, refused.message, refused.code) == (400, "No collection named 'notes'.", "invalid_request")
    assert (failed.status, failed.code, failed.message) == (500, "internal_error", unexpected_message(RuntimeError()))
    assert "internal detail" not in failed.message
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
