"""How a prompt fits a context window: which turns to keep, and how many tokens the reply may take.

Pure decisions on plain values, so they are tested without a model; ``prepare`` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from webui.engine.errors import ContextExceeded
from webui.engine.types import Message

MIN_REPLY_TOKENS = 64  # a page reply shrinks to fit the context down to this many tokens, never below


def choose_messages_to_keep(
    messages: Sequence[Message], fits: Callable[[list[Message]], bool]
) -> tuple[list[Message], int]:
    """Drop the oldest turns (never system messages, never the newest message) until ``fits``.

    Returns the kept messages and how many were dropped. ``fits`` is always asked about the list it
    returns last, so a caller may keep what it worked out for that list.
    """
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    dropped = 0
    while True:
        candidate = system + turns
        if fits(candidate) or len(turns) <= 1:
            return candidate, dropped
        # Drop a whole user/assistant exchange where possible, so the model never sees a reply
        # whose question was cut away.
        step = 2 if len(turns) > 2 and turns[0]["role"] == "user" and turns[1]["role"] == "assistant" else 1
        turns = turns[step:]
        dropped += step


def reply_room_wanted(n_ctx: int, asked: int | None) -> int:
    """The room a reply asks to keep free when old turns are dropped (None asks for the least useful)."""
    return MIN_REPLY_TOKENS if asked is None else min(asked, n_ctx - 1)


def reply_budget(n_ctx: int, prompt_tokens: int, asked: int | None, *, strict: bool) -> int:
    """How many tokens the reply may take after a prompt of ``prompt_tokens``; ContextExceeded if too few.

    ``asked`` None: as many as the context leaves. ``strict`` (the API) keeps ``asked`` or refuses
    with a sentence naming max_tokens; otherwise (the page) the reply shrinks to the room left, down
    to ``MIN_REPLY_TOKENS`` (or what was asked, if less), before the message is refused.
    """
    room = n_ctx - prompt_tokens
    if strict:
        if asked is not None and asked > n_ctx:
            raise ContextExceeded(f"max_tokens is {asked}, but this model's context window holds {n_ctx} "
                                  "tokens in all (prompt and reply).")
        if room < 1:
            raise ContextExceeded(f"The prompt has {prompt_tokens} tokens, but this model's context window holds "
                                  f"{n_ctx}. Shorten it.")
        if asked is not None and asked > room:
            raise ContextExceeded(f"The prompt has {prompt_tokens} tokens and max_tokens asks for {asked}, "
                                  f"but the context window holds {n_ctx}; ask for at most {room}.")
        return room if asked is None else asked
    if room < max(1, min(reply_room_wanted(n_ctx, asked), MIN_REPLY_TOKENS)):
        raise ContextExceeded(
            f"The message is too long for this model's context window: it needs {prompt_tokens} tokens "
            f"and the context holds {n_ctx}. Shorten it, or load the model with a larger context size."
        )
    return room if asked is None else min(asked, room)
