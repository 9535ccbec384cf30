"""The page's one way to fail and to call handlers: @handled and as_user, with plain values."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import gradio as gr

from webui.errors import UserError
from webui.ui.feedback import as_user, handled


@handled("Doing a thing", lambda message: ("unchanged", f"**Failed:** {message}"))
def refuse(username: str | None, what: str) -> tuple[str, str]:
    if what == "bug":
        raise KeyError("internal detail")
    raise UserError(f"{username} may not {what}.")


@handled("Streaming", lambda message: f"stopped: {message}")
def stream(username: str | None, count: int):
    yield from (f"{username} {i}" for i in range(count))
    raise UserError("The model stopped answering.")


def test_a_user_error_becomes_its_sentence_and_a_bug_a_generic_one_logged(caplog) -> None:
    assert refuse("bob", "delete") == ("unchanged", "**Failed:** bob may not delete.")
    unchanged, message = refuse("bob", "bug")
    assert unchanged == "unchanged" and "internal detail" not in message and message.startswith("**Failed:** ")
    assert "Doing a thing failed unexpectedly" in caplog.text and "KeyError" in caplog.text


def test_a_stream_keeps_what_it_yielded_then_yields_the_fallback() -> None:
    assert list(stream("ann", 2)) == ["ann 0", "ann 1", "stopped: The model stopped answering."]


def test_as_user_passes_the_requests_user_and_keeps_the_name_and_the_inputs() -> None:
    event = as_user(refuse)
    assert event.__name__ == "refuse"
    assert list(inspect.signature(event).parameters) == ["what", "request"]
    assert event.__annotations__["request"] is gr.Request
    assert event("fly", SimpleNamespace(username="carol")) == ("unchanged", "**Failed:** carol may not fly.")
    streamed = as_user(stream)
    assert inspect.isgeneratorfunction(streamed)
    assert list(streamed(1, SimpleNamespace(username="dan"))) == ["dan 0", "stopped: The model stopped answering."]
