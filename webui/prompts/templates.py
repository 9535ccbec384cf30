"""Chat formats: pick the prompt template for a model and render a conversation with it.

Resolution order: the user's override, then the GGUF file's own ``tokenizer.chat_template``, then a
format known for the model's family (from its architecture and name), then ChatML with a visible
note that it was a guess. Rendering goes through llama-cpp-python's ``Jinja2ChatFormatter`` (the
same sandboxed Jinja environment llama.cpp's Python binding uses for GGUF templates), so every
format here is a Jinja string: data in a registry, not code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jinja2
from llama_cpp import llama_chat_format as lcf

from webui.errors import UserError
from webui.prompts.toolcalls import render as tool_render
from webui.prompts.toolcalls.families import reply_family, supports_tools, writes_reasoning
from webui.prompts.toolcalls.grammar import ThinkingPrefix, tool_grammar
from webui.prompts.toolcalls.types import ReplyFormat, ToolPrompt, ToolRequest

GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
GGUF_FORMAT_NAME = "gguf"
GUESS_FORMAT_NAME = "chatml"


class TemplateError(UserError, ValueError):
    """A chat template that cannot be compiled or rendered, or an unknown format name."""


@dataclass(frozen=True)
class FamilyFormat:
    """One entry of the registry: a Jinja template and the strings that end an assistant turn."""

    template: str
    stop: tuple[str, ...]
    description: str


# Why each entry is what it is (checked against each family's official format):
# - chatml, llama-3, mistral-instruct: llama-cpp-python's own template constants, which are the
#   official Hugging Face templates. Its ``format_chatml`` function is not used because it emits an
#   empty system turn when there is no system prompt; ``format_mistral_instruct`` silently drops the
#   system prompt (here the renderer folds it into the first user turn when a template refuses it).
# - gemma: ``format_gemma`` drops the system prompt. Gemma has no system role; its official
#   template puts the system text, then a blank line, at the start of the first user turn.
# - llama-2: ``format_llama2`` misses the blank line after ``<</SYS>>`` and the spaces around
#   ``[INST]``/``[/INST]`` of Meta's format ``<s>[INST] <<SYS>>\n..\n<</SYS>>\n\n{user} [/INST]``.
# - zephyr: ``format_zephyr`` puts an extra newline after each role tag.
# - vicuna: ``format_vicuna`` always uses its default system prompt and ignores the user's one.
# - alpaca: ``format_alpaca`` never adds the ``### Response:`` line the model must continue from.
# - phi-3: llama-cpp-python has no Phi-3 format.
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(prefix='') %}"
    "{% for message in messages if message['role'] == 'system' %}"
    "{% set ns.prefix = ns.prefix + (message['content'] | trim) + '\n\n' %}"
    "{% endfor %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}{% set role = 'user' %}"
    "{% elif message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{{ raise_exception('Gemma has no ' + message['role'] + ' role') }}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + (ns.prefix if loop.first else '')"
    " + (message['content'] | trim) + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_LLAMA2_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] | trim %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' }}"
    "{% if loop.first and system %}{{ '<<SYS>>\n' + system + '\n<</SYS>>\n\n' }}{% endif %}"
    "{{ (message['content'] | trim) + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + (message['content'] | trim) + ' ' + eos_token }}"
    "{% else %}{{ raise_exception('Llama 2 has no ' + message['role'] + ' role here') }}{% endif %}"
    "{% endfor %}"
)

_PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] in ('system', 'user', 'assistant') %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% else %}{{ raise_exception('Phi-3 has no ' + message['role'] + ' role') }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_ZEPHYR_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] in ('system', 'user', 'assistant') %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ raise_exception('Zephyr has no ' + message['role'] + ' role') }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# FastChat's vicuna_v1.1 conversation: "{system} USER: {u} ASSISTANT: {a}</s>USER: ..."
_VICUNA_TEMPLATE = (
    '{% set ns = namespace(system="A chat between a curious user and an artificial intelligence'
    " assistant. The assistant gives helpful, detailed, and polite answers to the user's"
    ' questions.") %}'
    "{% for message in messages if message['role'] == 'system' %}"
    "{% set ns.system = message['content'] %}{% endfor %}"
    "{{ ns.system + ' ' }}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Vicuna has no ' + message['role'] + ' role') }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Stanford Alpaca's instruction prompt, extended to several turns by repeating the two sections.
_ALPACA_TEMPLATE = (
    "{% set ns = namespace(system='Below is an instruction that describes a task. Write a response"
    " that appropriately completes the request.') %}"
    "{% for message in messages if message['role'] == 'system' %}"
    "{% set ns.system = message['content'] %}{% endfor %}"
    "{{ ns.system + '\n\n' }}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Response:\n' + message['content'] + '\n\n' }}"
    "{% else %}{{ raise_exception('Alpaca has no ' + message['role'] + ' role') }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)

FAMILY_FORMATS: Mapping[str, FamilyFormat] = MappingProxyType(
    {
        "chatml": FamilyFormat(
            lcf.CHATML_CHAT_TEMPLATE, ("<|im_end|>",), "ChatML (Qwen, SmolLM, Hermes, many others)"
        ),
        "gemma": FamilyFormat(_GEMMA_TEMPLATE, ("<end_of_turn>",), "Gemma 1, 2 and 3"),
        "llama-2": FamilyFormat(_LLAMA2_TEMPLATE, ("</s>",), "Llama 2 chat"),
        "llama-3": FamilyFormat(
            lcf.LLAMA3_INSTRUCT_CHAT_TEMPLATE, ("<|eot_id|>",), "Llama 3, 3.1, 3.2 instruct"
        ),
        "mistral-instruct": FamilyFormat(
            lcf.MISTRAL_INSTRUCT_CHAT_TEMPLATE, ("</s>",), "Mistral / Mixtral instruct"
        ),
        "phi-3": FamilyFormat(_PHI3_TEMPLATE, ("<|end|>",), "Phi-3 and Phi-3.5"),
        "zephyr": FamilyFormat(_ZEPHYR_TEMPLATE, ("</s>",), "Zephyr, TinyLlama chat"),
        "vicuna": FamilyFormat(_VICUNA_TEMPLATE, ("</s>", "USER:"), "Vicuna v1.1 and later"),
        "alpaca": FamilyFormat(_ALPACA_TEMPLATE, ("### Instruction:",), "Alpaca instruction"),
    }
)

# Strings that end an assistant turn in common templates; a GGUF or custom template that
# contains one gets it as a stop string (the engine also stops on the model's end-of-generation
# tokens, but a model may spell a marker out as plain text).
_KNOWN_END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")

# Ordered (pattern on the lower-cased "general.name + file name", family) rules. Fine-tune names
# are tried before the architecture because a fine-tune may use another format than its base.
_FINETUNE_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"zephyr|tinyllama", "zephyr"),
    (r"vicuna", "vicuna"),
    (r"alpaca", "alpaca"),
    (r"hermes|dolphin|smollm|qwen", "chatml"),
)
_BASE_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"gemma", "gemma"),
    (r"phi[-_ ]?3", "phi-3"),
    (r"mistral|mixtral", "mistral-instruct"),
    (r"llama[-_ ]?3", "llama-3"),
    (r"llama[-_ ]?2", "llama-2"),
)

# general.architecture prefixes whose chat format does not depend on the fine-tune's name.
_ARCHITECTURE_RULES: tuple[tuple[str, str], ...] = (
    ("gemma", "gemma"),
    ("qwen", "chatml"),
    ("smollm", "chatml"),
    ("phi3", "phi-3"),
    ("mistral", "mistral-instruct"),
)

# Words in a model's name that say it was tuned to chat; a file with no template and none of
# these is probably a base model, which continues text instead of answering.
_CHAT_TUNED = re.compile(
    r"(?:^|[^a-z0-9])(?:it|instruct|chat|sft|dpo|rlhf|orpo|assistant)(?:$|[^a-z0-9])"
    r"|zephyr|vicuna|alpaca|hermes|dolphin"
)

# Only the llama architecture is shared by families with different formats; its pre-tokenizer
# tells Llama 3 (a new BPE vocabulary) apart when the name does not say.
_LLAMA3_PRE_TOKENIZERS = frozenset({"llama-bpe", "llama3"})


@dataclass(frozen=True)
class RenderedPrompt:
    """A conversation turned into the exact text a model receives."""

    text: str  # special tokens included
    stop: tuple[str, ...]  # stop strings for this format
    added_special: bool  # text already starts with BOS: tokenizing must not add another


@dataclass(frozen=True)
class ChatFormat:
    """A resolved chat format: where it came from, what to tell the user, and how to render."""

    name: str  # "chatml", "gemma", "llama-3", "gguf" (the file's own template), "custom"
    source: str  # "override" | "gguf" | "family" | "guess"
    note: str | None  # shown to the user
    template: str = field(repr=False)
    stop: tuple[str, ...] = ()
    bos_token: str = ""
    eos_token: str = ""
    _with_prompt: lcf.Jinja2ChatFormatter = field(init=False, repr=False, compare=False)
    _without_prompt: lcf.Jinja2ChatFormatter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once here so an invalid template fails when it is chosen, not mid-chat.
        for attr, add in (("_with_prompt", True), ("_without_prompt", False)):
            try:
                formatter = lcf.Jinja2ChatFormatter(
                    template=self.template,
                    eos_token=self.eos_token,
                    bos_token=self.bos_token,
                    add_generation_prompt=add,
                )
            except jinja2.TemplateSyntaxError as exc:
                problem = f"{exc.message} (line {exc.lineno})"
                raise TemplateError(
                    f"chat template '{self.name}' is not valid Jinja: {problem}"
                ) from exc
            object.__setattr__(self, attr, formatter)

    def render(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        """Render ``messages`` ({"role", "content"} dicts) into the model's prompt text."""
        formatter = self._with_prompt if add_generation_prompt else self._without_prompt
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        try:
            text = _render(formatter, plain)
        except TemplateError:
            # Many templates (Mistral's, Gemma 1's) refuse a system role; the usual remedy, and
            # what Gemma 3's own template does, is to put the system text at the start of the
            # first user turn.
            folded = fold_system_into_first_user(plain)
            if folded == plain:
                raise
            text = _render(formatter, folded)
        added_special = bool(self.bos_token) and text.startswith(self.bos_token)
        return RenderedPrompt(text=text, stop=self.stop, added_special=added_special)

    def render_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: ToolRequest | None,
        thinking: bool | None,
        *,
        add_generation_prompt: bool = True,
    ) -> ToolPrompt:
        """Render a conversation that may offer tools and hold tool turns, with thinking on, off or as the template likes.

        Templates that render tools get them as their ``tools`` variable; the others get them described
        in the system text. The reply's format and grammar (tool calls held to their schemas) come with it.
        """
        family = reply_family(self.template)
        offered = tools is not None and bool(tools.tools)
        calls_allowed = offered and tools is not None and tools.choice.mode != "none"
        generic_json = calls_allowed and family == "generic"
        variables = tool_render.thinking_variables(self.template, thinking)
        if family == "generic":
            shaped = tool_render.text_tool_turns(messages)
        else:
            shaped = tool_render.template_messages(messages, family)
            if offered and supports_tools(self.template):
                # As OpenAI does, tool_choice "none" still shows the tools; only calls are not parsed.
                variables["tools"] = [t.as_template_tool() for t in tools.tools]  # type: ignore[union-attr]
        if calls_allowed and "tools" not in variables:
            description = tool_render.describe_tools(tools, family, generic_json=generic_json)  # type: ignore[arg-type]
            shaped = tool_render.with_system_text(shaped, description)
        formatter = self._with_prompt if add_generation_prompt else self._without_prompt
        text = _render_tool_turns(formatter, shaped, variables)
        thinking_open = tool_render.ends_in_thinking(text)
        reasoning = writes_reasoning(self.template)
        reply_format = ReplyFormat(
            family=family,
            tool_names=tools.names() if calls_allowed and tools is not None else (),
            reasoning=reasoning,
            thinking_open=thinking_open,
            generic_json=generic_json,
            tool_schemas=tools.schemas_as_text() if calls_allowed and tools is not None else (),
        )
        added_special = bool(self.bos_token) and text.startswith(self.bos_token)
        prompt = ToolPrompt(text=text, stop=self.stop, added_special=added_special, reply_format=reply_format)
        if not calls_allowed or tools is None:
            return prompt
        # A whole-reply grammar lets the model think first when it may (rather than forcing thinking off).
        prefix: ThinkingPrefix = "off"
        if thinking_open:
            prefix = "open"
        elif reasoning and (thinking is not False or family == "gpt-oss"):
            prefix = "optional"
        grammar = tool_grammar(family, tools, generic_json=generic_json, thinking=prefix)
        if grammar is None:
            return prompt
        return ToolPrompt(
            text=text,
            stop=self.stop,
            added_special=added_special,
            reply_format=reply_format,
            grammar=grammar.gbnf,
            grammar_lazy=grammar.lazy,
            grammar_triggers=grammar.trigger_patterns,
            grammar_trigger_tokens=grammar.trigger_tokens,
        )


def _render_tool_turns(
    formatter: lcf.Jinja2ChatFormatter, messages: list[dict[str, Any]], variables: dict[str, Any]
) -> str:
    """Render, retrying the way templates differ: empty text for a call's missing content, then no system role."""
    attempts = [messages]
    blanked = [
        {**m, "content": ""} if m.get("role") == "assistant" and m.get("content") is None else m for m in messages
    ]
    if blanked != messages:
        attempts.append(blanked)
    folded = fold_system_into_first_user(blanked)
    if folded != blanked:
        attempts.append(folded)
    for attempt in attempts[:-1]:
        try:
            return _render(formatter, attempt, **variables)
        except TemplateError:
            continue
    return _render(formatter, attempts[-1], **variables)


def _render(formatter: lcf.Jinja2ChatFormatter, messages: list[dict[str, Any]], **variables: Any) -> str:
    try:
        return formatter(messages=messages, **variables).prompt  # type: ignore[arg-type]
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template failed to render: {exc}") from exc
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # raise_exception() inside a template raises ValueError with the template's own message.
        raise TemplateError(f"the chat template refused this conversation: {exc}") from exc


def fold_system_into_first_user(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Put the system text at the start of the first user turn, for formats with no system role."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for message in rest:
        if message["role"] == "user":
            message["content"] = f"{system}\n\n{message['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def format_names() -> list[str]:
    """Names the user may pick as an override: the file's own template, then every family format."""
    return [GGUF_FORMAT_NAME, *FAMILY_FORMATS]


def looks_like_base_model(metadata: Mapping[str, str], model_name: str) -> bool:
    """True for a file with no chat template whose names never say it was tuned to chat."""
    if metadata.get(GGUF_TEMPLATE_KEY, "").strip():
        return False
    keys = ("general.name", "general.basename", "general.finetune")
    names = " ".join([*(metadata.get(k, "") for k in keys), model_name]).lower()
    return _CHAT_TUNED.search(names) is None


def family_from_metadata(metadata: Mapping[str, str], model_name: str) -> str | None:
    """The chat-format family of a model from its GGUF metadata and file name; None if unknown."""
    architecture = metadata.get("general.architecture", "").lower()
    keys = ("general.name", "general.basename")
    names = " ".join([*(metadata.get(k, "") for k in keys), model_name]).lower()
    for pattern, family in _FINETUNE_NAME_RULES:
        if re.search(pattern, names):
            return family
    for prefix, family in _ARCHITECTURE_RULES:
        if architecture.startswith(prefix):
            return family
    for pattern, family in _BASE_NAME_RULES:
        if re.search(pattern, names):
            return family
    if architecture == "llama" and metadata.get("tokenizer.ggml.pre", "") in _LLAMA3_PRE_TOKENIZERS:
        return "llama-3"
    return None


def resolve_chat_format(
    metadata: Mapping[str, str],
    *,
    model_name: str,
    bos_token: str,
    eos_token: str,
    override: str | None = None,
) -> ChatFormat:
    """Choose the chat format: override > the GGUF's template > the family's > a ChatML guess."""
    tokens = {"bos_token": bos_token, "eos_token": eos_token}
    gguf_template = metadata.get(GGUF_TEMPLATE_KEY, "").strip()

    if override and override.strip():
        return _resolve_override(override.strip(), gguf_template, tokens)

    note_prefix = ""
    if gguf_template:
        try:
            return ChatFormat(
                GGUF_FORMAT_NAME,
                "gguf",
                None,
                gguf_template,
                _stops_for(gguf_template, eos_token),
                **tokens,
            )
        except TemplateError as exc:
            note_prefix = f"The file's chat template cannot be used ({exc}). "

    base_hint = (
        " Its name does not say 'instruct', 'it' or 'chat': if it is a base model it will continue"
        " text rather than answer, and the Raw preset suits it better."
        if looks_like_base_model(metadata, model_name)
        else ""
    )
    family = family_from_metadata(metadata, model_name)
    if family is not None:
        entry = FAMILY_FORMATS[family]
        where = "" if note_prefix else "No chat template in the file: "
        note = f"{note_prefix}{where}using the {family} format for this model family.{base_hint}"
        return ChatFormat(
            family, "family", note, entry.template, _with_eos(entry.stop, eos_token), **tokens
        )

    entry = FAMILY_FORMATS[GUESS_FORMAT_NAME]
    where = "" if note_prefix else "No template in the file and no known family: "
    note = (
        f"{note_prefix}{where}guessed ChatML. Pick the right format in the model settings if"
        f" replies look wrong.{base_hint}"
    )
    return ChatFormat(
        GUESS_FORMAT_NAME, "guess", note, entry.template, _with_eos(entry.stop, eos_token), **tokens
    )


def _resolve_override(override: str, gguf_template: str, tokens: dict[str, str]) -> ChatFormat:
    eos = tokens["eos_token"]
    name = override.lower()
    if name == GGUF_FORMAT_NAME:
        if not gguf_template:
            raise TemplateError("this model file has no chat template of its own; pick a format")
        stops = _stops_for(gguf_template, eos)
        return ChatFormat(GGUF_FORMAT_NAME, "override", None, gguf_template, stops, **tokens)
    if name in FAMILY_FORMATS:
        entry = FAMILY_FORMATS[name]
        stops = _with_eos(entry.stop, eos)
        return ChatFormat(name, "override", None, entry.template, stops, **tokens)
    if "{{" in override or "{%" in override:
        return ChatFormat("custom", "override", None, override, _stops_for(override, eos), **tokens)
    known = ", ".join(format_names())
    raise TemplateError(f"unknown chat format '{override}': use one of {known} or a Jinja template")


# Harmony (gpt-oss) ends each message with <|end|>, and a reply holds several (thinking, then the answer):
# only <|return|> and <|call|> end the reply.
_HARMONY_END_MARKERS = ("<|return|>", "<|call|>")


def _stops_for(template: str, eos_token: str) -> tuple[str, ...]:
    if reply_family(template) == "gpt-oss":
        return _with_eos(tuple(m for m in _HARMONY_END_MARKERS if m in template), eos_token)
    return _with_eos(tuple(m for m in _KNOWN_END_MARKERS if m in template), eos_token)


def _with_eos(stops: tuple[str, ...], eos_token: str) -> tuple[str, ...]:
    if eos_token and eos_token not in stops:
        return (*stops, eos_token)
    return stops
