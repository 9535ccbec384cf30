"""The base class of errors meant for the user: ``str(error)`` is the sentence the page or API shows.

Each area keeps its own named errors (``RagError``, ``EngineError``, ``PresetError``...) rooted here,
so a front end needs one ``except UserError`` instead of a list of every area's base class. A class
may also inherit the builtin its callers already catch (``ValueError``, ``PermissionError``...).
Nothing here imports from ``webui``, so every module can import it.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can understand and act on; its ``str()`` is one sentence fit to show them.

    Anything else that escapes a handler is a bug: the front ends show ``unexpected_message`` for it
    and log its traceback.
    """


def unexpected_message(exc: BaseException) -> str:
    """The one sentence page and API show for a failure that is not a UserError; the type helps find it in the log."""
    return f"Something went wrong ({type(exc).__name__}); the server log has the details."
