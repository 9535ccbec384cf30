"""What every tool is, built-in or from an MCP server: its spec for the model, who may use it, and how it runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webui.errors import UserError
from webui.prompts.toolcalls import ToolSpec

BUILT_IN = "built-in"  # the source of the tools this app ships


class ToolFailed(UserError):
    """A tool could not give a result (bad arguments, an error it raised, a server gone); str() says why."""


# A runner gets the call's arguments and a flag set when the call is abandoned (Stop or its timeout),
# and returns the result as text for the model; it raises ToolFailed with a sentence when it cannot.
ToolRunner = Callable[[Mapping[str, Any], threading.Event], str]


@dataclass(frozen=True)
class Tool:
    """One function the model may call, with where it comes from and whether it may run without asking."""

    spec: ToolSpec
    run: ToolRunner
    source: str = BUILT_IN  # "built-in" or the MCP server's name
    trusted: bool = False  # runs without asking the user first

    @property
    def name(self) -> str:
        return self.spec.name
