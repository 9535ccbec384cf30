"""Form dataclasses for handlers: Gradio passes one value per component, a handler takes one form.

A handler with many settings (a reply's sampling values, documents, ...) takes them as one frozen
dataclass. ``form_components`` lists the components in the form's field order, named like the
fields so none is swapped; ``with_form`` makes the event function that builds the form from them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any


def form_components(form_type: type, **components: Any) -> list[Any]:
    """The components for ``form_type``'s fields, in field order; each field named exactly once."""
    names = [f.name for f in dataclasses.fields(form_type)]
    if set(components) != set(names):
        missing, extra = set(names) - set(components), set(components) - set(names)
        raise TypeError(f"{form_type.__name__} components: missing {sorted(missing)}, unknown {sorted(extra)}")
    return [components[name] for name in names]


def with_form(handler: Callable[..., Any], form_type: type) -> Callable[..., Any]:
    """``handler(*leading, form)`` as a function of ``(*leading, *form fields)``, keeping its name.

    The result's signature lists the leading parameters and then the form's fields, so
    ``as_user`` (which reads it) and Gradio see one parameter per input component.
    """
    parameters = list(inspect.signature(handler).parameters.values())
    leading = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters[:-1]]
    count = len(leading)

    if inspect.isgeneratorfunction(handler):
        def stream(*args: Any) -> Iterator[Any]:
            yield from handler(*args[:count], form_type(*args[count:]))

        event: Callable[..., Any] = stream
    else:
        def call(*args: Any) -> Any:
            return handler(*args[:count], form_type(*args[count:]))

        event = call
    fields = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for f in dataclasses.fields(form_type)]
    event.__name__ = event.__qualname__ = handler.__name__  # the page's events are found by name
    event.__doc__ = handler.__doc__
    event.__signature__ = inspect.Signature(leading + fields)  # type: ignore[attr-defined]
    return event
