"""One way for the page to report a failure: a UserError's own sentence, anything else a generic one.

Handlers are decorated with :func:`handled`, which catches ``Exception`` and passes it here with
what they were doing. A
UserError is something the user can act on: its sentence is shown and logged at warning. Anything
else is a bug: the user gets a generic sentence, the log the traceback. A ``gr.Error`` a handler
raised on purpose passes through, so Gradio still shows it as before.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gradio as gr

from webui.errors import UserError, unexpected_message

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def user_message(exc: Exception, action: str) -> str:
    """The sentence to show for ``exc``, raised while ``action`` (e.g. "Deleting a collection"); logged."""
    if isinstance(exc, gr.Error):
        raise exc
    if isinstance(exc, UserError):
        # The repr keeps what was raised with (an id) when the sentence leaves it out.
        detail = repr(exc) if exc.args and str(exc) != str(exc.args[0]) else type(exc).__name__
        log.warning("%s: %s (%s)", action, exc, detail)
        return str(exc)
    log.error("%s failed unexpectedly", action, exc_info=exc)
    return unexpected_message(exc)


def warn(exc: Exception, action: str) -> str:
    """``user_message`` shown as a warning toast; returned too, for handlers that also write it out."""
    message = user_message(exc, action)
    gr.Warning(message)
    return message


def handled(action: str, fallback: Callable[[str], Any]) -> Callable[[F], F]:
    """Decorate a handler so that a failure becomes a warning toast and ``fallback(message)`` outputs.

    The one ``try/except -> [gr.update()] * N`` of the page: *action* says what was being done ("Making
    an API key") for the log, *fallback* turns the sentence shown into the handler's outputs (usually
    ``gr.update()`` for what must not change and the sentence where the tab writes its results).
    Generator handlers (streams) yield the fallback after what they had already yielded.
    """

    def decorate(handler: F) -> F:
        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from handler(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
                    yield fallback(warn(exc, action))

            return stream  # type: ignore[return-value]

        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
                return fallback(warn(exc, action))

        return call  # type: ignore[return-value]

    return decorate


def as_user(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A Gradio event function calling ``handler(username, *inputs)`` for the signed-in user.

    Handlers take the user name, not a ``gr.Request``, so unit tests call them with plain values; the
    event keeps the handler's name (the page's events are found by it) and streams when it streams.
    Gradio passes the request by position, after the inputs, to the parameter annotated with it, so
    the event's signature lists the handler's inputs and then that parameter.
    """
    inputs = list(inspect.signature(handler).parameters.values())[1:]  # all but the user name
    if inspect.isgeneratorfunction(handler):
        def stream(*args: Any) -> Iterator[Any]:
            yield from handler(args[-1].username, *args[:-1])

        event: Callable[..., Any] = stream
    else:
        def call(*args: Any) -> Any:
            return handler(args[-1].username, *args[:-1])

        event = call
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
    event.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in inputs] + [request])
    event.__annotations__ = {"request": gr.Request}  # Gradio reads the annotation from here too
    event.__name__ = event.__qualname__ = getattr(handler, "__name__", "event")
    event.__doc__ = handler.__doc__
    return event
