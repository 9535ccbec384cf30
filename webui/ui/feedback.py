"""One way for the page to report a failure: a UserError's own sentence, anything else a generic one.

Handlers catch ``Exception`` around a service call and pass it here with what they were doing. A
UserError is something the user can act on: its sentence is shown and logged at warning. Anything
else is a bug: the user gets a generic sentence, the log the traceback. A ``gr.Error`` a handler
raised on purpose passes through, so Gradio still shows it as before.
"""

from __future__ import annotations

import logging

import gradio as gr

from webui.errors import UserError, unexpected_message

log = logging.getLogger(__name__)


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
