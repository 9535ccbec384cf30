"""The one admission path of every reply, from the page or the API: sampling from a request, then the checks.

``sampling_from`` is the one place a request's sampling values become ``SamplingParams``; ``admit``
checks a request in one order (message size, sampling bounds, then the engine's prepare step: the
context window and the grammar) and returns the prompt the stream runs. Each failure is one error
type, whose sentence the page shows and the API sends with its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from webui.engine import FittedPrompt, PromptRequest, SamplingParams, grammar_for
from webui.errors import UserError

MAX_MESSAGE_CHARS = 100_000  # about 25,000 tokens: more than most context windows hold
# Every stop sequence is looked for after every token of the reply, in the engine's one thread: a
# long list would slow everyone's replies. OpenAI allows 4; agents send a handful.
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 100
MAX_TOP_K = 1000  # as a preset may set; a few hundred already keeps every likely token
SEED_RANGE = (-1, 2**32 - 1)  # llama.cpp's seed is 32 bits; -1: a new random seed each time


class MessageTooLong(UserError, ValueError):
    """A chat message (or a text to continue) over MAX_MESSAGE_CHARS; refused before anything is saved or tokenized."""


class SamplingOutOfBounds(UserError, ValueError):
    """A sampling value the engine must not take (too many or too long stop sequences, top_k, seed)."""


class Preparer(Protocol):
    """What admission needs of the engine: its one prepare step (the local engine or the router)."""

    def prepare(self, request: PromptRequest) -> FittedPrompt: ...


@dataclass(frozen=True)
class SamplingRequest:
    """Sampling values as a request states them; a value left out (None) takes the face's default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | Sequence[str] | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None  # OpenAI's shape; Ollama's ``format`` is turned into it
    logprobs: int | None = None  # top alternatives per token to return


_SAME_NAMED = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty",
               "seed", "max_tokens", "logprobs")


def sampling_from(asked: SamplingRequest, defaults: SamplingParams = SamplingParams()) -> SamplingParams:
    """The request's sampling values over ``defaults``; a ``response_format`` becomes its grammar.

    Empty stop strings are dropped; InvalidGrammar when the format cannot be a grammar.
    """
    values: dict[str, Any] = {name: getattr(asked, name) for name in _SAME_NAMED if getattr(asked, name) is not None}
    if asked.stop is not None:
        stops = [asked.stop] if isinstance(asked.stop, str) else list(asked.stop)
        values["stop"] = tuple(s for s in stops if s)
    grammar = grammar_for(asked.response_format)
    if grammar:
        values["grammar"] = grammar
    return replace(defaults, **values)


def check_message_size(text: str, *, noun: str = "message") -> None:
    """Refuse a message over the cap at once, by length alone (a 20 MB paste never reaches the tokenizer).

    A fixed cap rather than one from the context window: it holds for every model and for the
    API, and the engine already drops old turns that do not fit.
    """
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(
            f"Your {noun} is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it, or add long text as a document in the Documents tab and ask about it."
        )


def sampling_problem(sampling: SamplingParams) -> str | None:
    """Why the engine should not take these sampling settings, or None."""
    if len(sampling.stop) > MAX_STOP_SEQUENCES:
        return f"stop holds {len(sampling.stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed."
    longest = max(map(len, sampling.stop), default=0)
    if longest > MAX_STOP_CHARS:
        return f"A stop sequence is {longest} characters long; at most {MAX_STOP_CHARS} are allowed."
    if not 0 <= sampling.top_k <= MAX_TOP_K:
        return f"top_k is {sampling.top_k}; it must be between 0 (off) and {MAX_TOP_K}."
    if not SEED_RANGE[0] <= sampling.seed <= SEED_RANGE[1]:
        return (f"seed is {sampling.seed}; it must be between 0 and {SEED_RANGE[1]} "
                "(or -1 for a new random seed each time).")
    return None


def admit(engine: Preparer, request: PromptRequest) -> FittedPrompt:
    """``request`` checked and prepared once, for the page and the API alike.

    MessageTooLong, SamplingOutOfBounds, then from the engine ContextExceeded (prompt plus reply
    budget over the context window), InvalidGrammar or NoModelLoaded.
    """
    for message in request.messages:
        check_message_size(message["content"])
    if request.text is not None:
        check_message_size(request.text, noun="text")
    problem = sampling_problem(request.sampling)
    if problem:
        raise SamplingOutOfBounds(problem)
    return engine.prepare(request)
