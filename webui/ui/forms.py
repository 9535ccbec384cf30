"""Forms as events: a handler takes one form dataclass, the page sends each of its fields as one component.

Gradio calls an event with one argument per input component, so a form of eleven boxes would be a
handler of eleven parameters. :func:`form_event` lets the handler take the dataclass instead: the
event it makes takes the fields one by one, in the dataclass's order, and builds the form.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any


def form_event(handler: Callable[..., Any], form_type: type) -> Callable[..., Any]:
    """``handler(username, *inputs, form)`` as a function of ``(username, *inputs, *form's fields)``.

    Wrap the result with ``as_user``; the inputs are then wired as ``[*inputs, *the form's components]``.
    The event keeps the handler's name and streams when the handler streams.
    """
    parameters = list(inspect.signature(handler).parameters.values())[:-1]  # all but the form
    fields = [f.name for f in dataclasses.fields(form_type) if f.init]
    count = len(fields)
    if inspect.isgeneratorfunction(handler):
        def stream(*args: Any) -> Iterator[Any]:
            yield from handler(*args[:-count], form_type(*args[-count:]))

        event: Callable[..., Any] = stream
    else:
        def call(*args: Any) -> Any:
            return handler(*args[:-count], form_type(*args[-count:]))

        event = call
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    event.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=positional, annotation=inspect.Parameter.empty) for p in parameters]
        + [inspect.Parameter(name, positional) for name in fields])
    event.__name__ = event.__qualname__ = getattr(handler, "__name__", "event")
    event.__doc__ = handler.__doc__
    return event
