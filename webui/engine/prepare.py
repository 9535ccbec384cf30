"""The one prepare step: a request rendered (the model's own template), tokenized, fitted and checked once.

The page and the API both come through here (through ``Engine.prepare``), and the stream then runs
exactly what it returns: nothing is rendered or tokenized twice for one request.
"""

from __future__ import annotations

from dataclasses import replace

from webui.engine.fitting import MIN_REPLY_TOKENS, choose_messages_to_keep, reply_budget, reply_room_wanted
from webui.engine.sampling import check_sampling
from webui.engine.scheduler import LoadedModel
from webui.engine.errors import InvalidGrammar
from webui.engine.types import FittedPrompt, Message, PromptRequest, SamplingParams
from webui.prompts.toolcalls import ToolPrompt


def prepare_for(model: LoadedModel, request: PromptRequest, load_number: int) -> FittedPrompt:
    """``request`` made ready for ``model``; ContextExceeded, InvalidGrammar or InvalidSampling when it cannot be."""
    fitted = _fit_text(model, request) if request.text is not None else _fit_chat(model, request)
    check_sampling(model.vocab, fitted.sampling)
    return replace(fitted, load_number=load_number)


def _fit_chat(model: LoadedModel, request: PromptRequest) -> FittedPrompt:
    """The chat rendered and tokenized once when it fits; otherwise again for each shorter try."""
    n_ctx = model.info.n_ctx
    asked = request.sampling.max_tokens
    tried: list[tuple[list[Message], ToolPrompt, list[int]]] = []

    def tokens_of(candidate: list[Message]) -> list[int]:
        rendered = model.chat_format.render_tools(candidate, request.tools, request.thinking)
        tokens = model.tokenize(rendered.text, add_bos=not rendered.added_special, special=True)
        tried.append((candidate, rendered, tokens))
        return tokens

    if request.strict:  # the client decides what to send: nothing is dropped, it fits or is refused
        kept, dropped = list(request.messages), 0
        tokens_of(kept)
    else:
        wanted = reply_room_wanted(n_ctx, asked)
        kept, dropped = choose_messages_to_keep(request.messages, lambda c: len(tokens_of(c)) + wanted <= n_ctx)
    candidate, rendered, tokens = tried[-1]
    assert candidate is kept, "choose_messages_to_keep asks about the list it returns last"
    budget = reply_budget(n_ctx, len(tokens), asked, strict=request.strict)
    return FittedPrompt(
        request=request, tokens=tokens, prompt_tokens=len(tokens),
        sampling=replace(with_reply_grammar(request.sampling, rendered), max_tokens=budget),
        stop=(*rendered.stop, *request.sampling.stop),
        messages=tuple(kept), dropped_messages=dropped, reply_format=rendered.reply_format,
    )


def with_reply_grammar(sampling: SamplingParams, prompt: ToolPrompt) -> SamplingParams:
    """The request's sampling constrained by the tools' grammar, when the tools bring one.

    One reply has one grammar: a response_format cannot also shape a reply whose tool calls are constrained.
    """
    if prompt.grammar is None:
        return sampling
    if sampling.grammar:
        raise InvalidGrammar("response_format cannot be combined with tools here: send one or the other.")
    return replace(sampling, grammar=prompt.grammar, grammar_lazy=prompt.grammar_lazy,
                   grammar_triggers=prompt.grammar_triggers, grammar_trigger_tokens=prompt.grammar_trigger_tokens)


def _fit_text(model: LoadedModel, request: PromptRequest) -> FittedPrompt:
    """A raw text tokenized once; on the page, one too long for the context loses its start, not its end."""
    n_ctx = model.info.n_ctx
    tokens = model.tokenize(request.text or "", add_bos=True, special=True)
    asked = request.sampling.max_tokens
    if not request.strict and n_ctx - len(tokens) < MIN_REPLY_TOKENS:
        tokens = tokens[:1] + tokens[-(n_ctx - MIN_REPLY_TOKENS - 1):]
    budget = reply_budget(n_ctx, len(tokens), asked, strict=request.strict)
    return FittedPrompt(request=request, tokens=tokens, prompt_tokens=len(tokens),
                        sampling=replace(request.sampling, max_tokens=budget), stop=request.sampling.stop)
