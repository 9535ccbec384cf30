"""The engine's errors: each names one failure, and its message is one sentence a user can act on."""

from __future__ import annotations

from webui.errors import UserError


class EngineError(UserError):
    """Base of the engine's errors."""


class ModelLoadError(EngineError):
    """The file could not be loaded as a model; whatever was loaded before is still loaded."""


class NoModelLoaded(EngineError):
    """A request arrived while no model is loaded."""


class ContextExceeded(EngineError):
    """The prompt, with the room its reply needs, does not fit the model's context window."""


class InvalidGrammar(EngineError):
    """A requested output format (JSON schema, GBNF) could not be turned into a grammar."""


class InvalidSampling(EngineError):
    """A sampling setting the model cannot take (a logit bias on a token outside its vocabulary)."""
