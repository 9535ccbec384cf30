"""GBNF grammars that hold a reply to the tool-call syntax of its model family and to each tool's schema.

Each tool's parameters go through llama-cpp-python's own ``json_schema_to_gbnf``; its rules are renamed
per tool (``t0-``, ``t1-``...) so several tools live in one grammar, and this module only writes the
family's frame around them (``<tool_call>...</tool_call>``, ``[TOOL_CALLS]``, harmony's channels...).

Lazy grammars (tool_choice ``auto`` on a native family) start where a trigger matches. The patterns
follow llama.cpp's lazy-grammar convention: each must match the whole text generated so far
(``std::regex_match``), and its first capture group marks where the constrained part begins, so
the grammar's root starts with the opener the group captured. Trigger tokens are the openers'
texts; the engine keeps those that are one token in the model's vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from llama_cpp.llama_grammar import json_schema_to_gbnf

from webui.prompts.toolcalls.types import ToolCallError, ToolFamily, ToolRequest, ToolSpec

# What the grammar allows before the call when the model thinks: "off" (nothing), "optional" (a whole
# thinking block may come first), "open" (the prompt already opened one: its rest and its close come first).
ThinkingPrefix = Literal["off", "optional", "open"]


class ToolGrammar(NamedTuple):
    """A reply grammar and, when lazy, what starts it."""

    gbnf: str
    lazy: bool
    trigger_patterns: tuple[str, ...] = ()
    trigger_tokens: tuple[str, ...] = ()


# The text a call starts with, per native family: the trigger of a lazy grammar.
_OPENERS: Mapping[ToolFamily, tuple[str, ...]] = {
    "hermes": ("<tool_call>",),
    "mistral": ("[TOOL_CALLS]",),
    "gemma4": ("<|tool_call>",),
    "gpt-oss": (" to=functions.",),
    "deepseek": ("<｜tool▁calls▁begin｜>",),
    "llama3": ("<|python_tag|>",),
}

# How each family writes its thinking: (opener, closer). Harmony's analysis message ends the message,
# and the call follows in a new assistant message.
_THINKING: Mapping[ToolFamily, tuple[str, str]] = {
    "gemma4": ("<|channel>thought", "<channel|>"),
    "gpt-oss": ("<|channel|>analysis<|message|>", "<|end|><|start|>assistant"),
}
_THINK_TAGS = ("<think>", "</think>")

_WS = "tc-ws ::= [ \\t\\n]{0,20}"
# Free text (thinking). Ambiguous with the closer that follows it, which llama.cpp's grammar engine
# resolves by keeping both readings alive until one fails.
_FREE_TEXT = "tc-text ::= [^\\x00]*"

_GBNF_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{[0-9,\s]*\}|[A-Za-z0-9_-]+')


def tool_grammar(
    family: ToolFamily,
    request: ToolRequest,
    *,
    generic_json: bool,
    thinking: ThinkingPrefix = "off",
) -> ToolGrammar | None:
    """The grammar for a reply to ``request`` in ``family``'s syntax; None when nothing is constrained.

    ``required``/``named``: the whole reply is the call(s), so the grammar is not lazy. ``auto``: lazy
    on the family's opener; the generic fallback (``generic_json``) is one JSON object either way.
    """
    mode = request.choice.mode
    if mode == "none" or not request.tools:
        return None
    tools = _chosen_tools(request)
    rules: list[str] = [_WS, _FREE_TEXT]
    for index, tool in enumerate(tools):
        rules.append(_argument_rules(index, tool, gemma=family == "gemma4"))
    if generic_json or family == "generic":
        rules.extend(_generic_rules(tools, request, allow_text=mode == "auto"))
        rules.append(_root(family, "tc-reply", thinking))
        return ToolGrammar("\n".join(rules) + "\n", lazy=False)
    frame = _FRAMES[family]
    rules.extend(frame(tools, request.parallel))
    if mode == "auto":
        # The lazy grammar starts at the opener: no thinking prefix (thinking happens before the trigger).
        rules.append("root ::= tc-calls")
        openers = _OPENERS[family]
        patterns = tuple(f"[\\s\\S]*?({_regex_literal(o)})[\\s\\S]*" for o in openers)
        if family == "llama3":
            # Llama 3.2/3.3 write a bare JSON object as the whole reply: only a leading one is a call.
            patterns = (*patterns, '^\\s*(\\{\\s*"name")[\\s\\S]*')
        tokens = tuple(o for o in openers if not o.startswith(" "))
        return ToolGrammar("\n".join(rules) + "\n", lazy=True, trigger_patterns=patterns, trigger_tokens=tokens)
    rules.append(_root(family, "tc-calls", thinking))
    return ToolGrammar("\n".join(rules) + "\n", lazy=False)


def _chosen_tools(request: ToolRequest) -> tuple[ToolSpec, ...]:
    """The tools a reply may call (ToolRequest has checked that a named one is offered)."""
    if request.choice.mode != "named":
        return request.tools
    return tuple(t for t in request.tools if t.name == request.choice.name)


def _root(family: ToolFamily, body: str, thinking: ThinkingPrefix) -> str:
    if thinking == "off":
        return f"root ::= {body}"
    opener, closer = _THINKING.get(family, _THINK_TAGS)
    if thinking == "open":
        return f"root ::= tc-text {_literal(closer)} tc-ws {body}"
    return f"root ::= ({_literal(opener)} tc-text {_literal(closer)} tc-ws)? {body}"


def _argument_rules(index: int, tool: ToolSpec, *, gemma: bool) -> str:
    """The converter's grammar for one tool's parameters, its rules renamed ``t<index>-...``."""
    schema = tool.parameters  # an object schema: ToolRequest refuses any other
    try:
        converted = json_schema_to_gbnf(json.dumps(dict(schema)))
    except Exception as exc:  # the converter raises assertions, KeyErrors, ValueErrors... on schemas it cannot take
        raise ToolCallError(
            f"The parameters schema of tool '{tool.name}' cannot be used to constrain replies: {exc}"
        ) from exc
    prefix = f"t{index}-"
    renamed = _GBNF_TOKEN.sub(
        lambda m: m.group(0) if m.group(0)[0] in '"[{' else prefix + m.group(0), converted
    )
    return _gemma_strings(renamed, prefix) if gemma else renamed


def _gemma_strings(rules: str, prefix: str) -> str:
    """Gemma 4 writes ``{city:<|"|>Paris<|"|>}``: bare keys, strings between ``<|"|>`` marks, no escapes."""
    quote = '<|\\"|>'
    rules = re.sub(r'"\\"((?:[^"\\]|\\\\)*)\\"" (\S*space ":")', r'"\1" \2', rules)  # object keys
    rules = re.sub(r'"\\"((?:[^"\\]|\\\\)+)\\""', lambda m: f'"{quote}{m.group(1)}{quote}"', rules)  # enum, const
    rules = rules.replace('"\\""', f'"{quote}"')  # the string rules' own quotes
    # A string ends at the <|"|> mark; nothing inside is escaped.
    return re.sub(rf"^{prefix}char ::= .*$", f'{prefix}char ::= [^<] | "<" [^|]', rules, flags=re.M)


def _regex_literal(text: str) -> str:
    """``text`` as an ECMAScript regex (llama.cpp's std::regex): only metacharacters escaped, unlike re.escape."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", text)


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _json_call(index: int, tool: ToolSpec, *, argument_keys: tuple[str, ...] = ("arguments",), extra: str = "") -> str:
    """``{"name": "<tool>", "arguments": {...}}`` for tool ``index`` (its arguments rule ``t<index>-root``)."""
    keys = " | ".join(_literal(json.dumps(k)) for k in argument_keys)
    name = _literal(json.dumps(tool.name, ensure_ascii=False))
    return (
        f'tc-call-{index} ::= "{{" tc-ws "\\"name\\"" tc-ws ":" tc-ws {name} tc-ws "," tc-ws'
        f" ({keys}) tc-ws \":\" tc-ws t{index}-root{extra} tc-ws \"}}\""
    )


def _several(rule: str, separator: str, parallel: bool) -> str:
    return f"{rule} ({separator} {rule})*" if parallel else rule


def _alternatives(tools: tuple[ToolSpec, ...], name: str = "tc-call") -> str:
    return " | ".join(f"{name}-{i}" for i in range(len(tools)))


def _generic_rules(tools: tuple[ToolSpec, ...], request: ToolRequest, *, allow_text: bool) -> list[str]:
    rules = [_json_call(i, t) for i, t in enumerate(tools)]
    calls = _several("tc-call", 'tc-ws "," tc-ws', request.parallel)
    rules.append(f"tc-call ::= {_alternatives(tools)}")
    rules.append(f'tc-tool-calls ::= "{{" tc-ws "\\"tool_calls\\"" tc-ws ":" tc-ws "[" tc-ws {calls} tc-ws "]" tc-ws "}}"')
    if allow_text:
        # {"response": "..."}: a JSON string, by the converter's own string rule.
        response = _GBNF_TOKEN.sub(
            lambda m: m.group(0) if m.group(0)[0] in '"[{' else "resp-" + m.group(0),
            json_schema_to_gbnf(json.dumps({"type": "string"})),
        )
        rules.append(response)
        rules.append('tc-response ::= "{" tc-ws "\\"response\\"" tc-ws ":" tc-ws resp-root tc-ws "}"')
        rules.append("tc-reply ::= tc-tool-calls | tc-response")
    else:
        rules.append("tc-reply ::= tc-tool-calls")
    return rules


def _hermes(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    rules = [_json_call(i, t) for i, t in enumerate(tools)]
    rules.append(f'tc-block ::= "<tool_call>" tc-ws ({_alternatives(tools)}) tc-ws "</tool_call>"')
    rules.append(f"tc-calls ::= {_several('tc-block', 'tc-ws', parallel)}")
    return rules


def _llama3(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    rules = [_json_call(i, t, argument_keys=("parameters", "arguments")) for i, t in enumerate(tools)]
    rules.append(f"tc-call ::= {_alternatives(tools)}")
    several = _several("tc-call", '(";" | "\\n") tc-ws', parallel)
    rules.append(f'tc-calls ::= ("<|python_tag|>" tc-ws)? {several}')
    return rules


def _mistral(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    # Nemo: [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "abcdefghi"}]; Small 3.2 / Devstral:
    # [TOOL_CALLS]name[ARGS]{...}, repeated. Both are accepted: the family holds both generations.
    call_id = ' ("," tc-ws "\\"id\\"" tc-ws ":" tc-ws "\\"" [a-zA-Z0-9]{9} "\\"")?'
    rules = [_json_call(i, t, extra=call_id) for i, t in enumerate(tools)]
    for i, tool in enumerate(tools):
        rules.append(
            f'tc-named-{i} ::= {_literal(tool.name)} ("[CALL_ID]" [a-zA-Z0-9]{{9}})? "[ARGS]" t{i}-root'
        )
    array = _several(f"({_alternatives(tools)})", 'tc-ws "," tc-ws', parallel)
    named = _several(f"({_alternatives(tools, 'tc-named')})", '"[TOOL_CALLS]"', parallel)
    rules.append(f'tc-calls ::= "[TOOL_CALLS]" ("[" tc-ws {array} tc-ws "]" | {named})')
    return rules


def _gemma4(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    rules = [
        f'tc-call-{i} ::= "<|tool_call>call:" {_literal(t.name)} t{i}-root "<tool_call|>"'
        for i, t in enumerate(tools)
    ]
    rules.append(f"tc-calls ::= {_several(f'({_alternatives(tools)})', '', parallel)}")
    return rules


def _gpt_oss(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    # A call: "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}<|call|>", or with
    # " to=functions.f" before the channel. A lazy grammar starts at " to=functions.", so both shapes
    # are written from there; a whole-reply grammar adds what may come before it.
    rules = []
    for i, tool in enumerate(tools):
        rules.append(
            f'tc-call-{i} ::= " to=functions." {_literal(tool.name)} ("<|channel|>commentary")?'
            f' (" " "<|constrain|>"? "json")? "<|message|>" t{i}-root "<|call|>"'
        )
    rules.append(f"tc-call ::= {_alternatives(tools)}")
    rules.append('tc-calls ::= ("<|start|>assistant")? ("<|channel|>commentary")? tc-call')
    return rules  # harmony ends the reply at <|call|>: one call per reply whatever ``parallel`` says


def _deepseek(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    # R1: "function<｜tool▁sep｜>f\n```json\n{...}\n```"; V3.1: "f<｜tool▁sep｜>{...}".
    rules = []
    for i, tool in enumerate(tools):
        name = _literal(tool.name)
        rules.append(
            f'tc-call-{i} ::= "<｜tool▁call▁begin｜>" ("function<｜tool▁sep｜>" {name} "\\n```json\\n" t{i}-root'
            f' "\\n```" | {name} "<｜tool▁sep｜>" t{i}-root) "<｜tool▁call▁end｜>"'
        )
    several = _several(f"({_alternatives(tools)})", "tc-ws", parallel)
    rules.append(f'tc-calls ::= "<｜tool▁calls▁begin｜>" {several} "<｜tool▁calls▁end｜>"')
    return rules


_FRAMES: Mapping[ToolFamily, Any] = {
    "hermes": _hermes,
    "llama3": _llama3,
    "mistral": _mistral,
    "gemma4": _gemma4,
    "gpt-oss": _gpt_oss,
    "deepseek": _deepseek,
}
