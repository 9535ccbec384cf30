"""GBNF grammars that hold a reply to the tool-call syntax of its model family and to each tool's schema.

Each tool's parameters go through llama-cpp-python's own ``json_schema_to_gbnf``; its rules are renamed
per tool (``t0-``, ``t1-``...) so several tools live in one grammar, and this module only writes the
family's frame around them (``<tool_call>...</tool_call>``, ``[TOOL_CALLS]``, harmony's channels...).

Lazy grammars (tool_choice ``auto`` on a native family) start where a trigger matches. The patterns
follow llama.cpp's lazy-grammar convention: each matches the whole text generated so far (the bundled
llama.cpp searches for a pattern unless it is written ``^...$``, so each is written to find the same
start either way), and its first capture group marks where the constrained part begins, so the
grammar's root starts with the opener the group captured. When the model may think, the patterns look
past its thinking block. Trigger tokens are the openers' texts; the engine keeps those that are one
token in the model's vocabulary.

Qwen 3.5 / Qwen3-Coder (``hermes-xml``) write each argument as ``<parameter=KEY>`` text, not JSON: their
string values are raw text and only the other values go through the converter.
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
    "hermes-xml": ("<tool_call>",),
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
    rules: list[str] = [_WS, *_thinking_text(_THINKING.get(family, _THINK_TAGS)[1])]
    if family == "hermes-xml":
        rules.append(_XML_TEXT)
    for index, tool in enumerate(tools):
        if family == "hermes-xml":
            rules.extend(_xml_call_rules(index, tool))
        else:
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
        patterns = tuple(p for o in openers for p in _trigger_patterns(family, _regex_literal(o), thinking))
        if family == "llama3":
            # Llama 3.2/3.3 write a bare JSON object as the whole reply: only a leading one is a call.
            patterns = (*patterns, '^\\s*(\\{\\s*"name")[\\s\\S]*')
        # A trigger token fires wherever it comes, inside thinking too: only patterns when the model may think.
        tokens = tuple(o for o in openers if not o.startswith(" ")) if _skips_thinking(family, thinking) is None else ()
        return ToolGrammar("\n".join(rules) + "\n", lazy=True, trigger_patterns=patterns, trigger_tokens=tokens)
    rules.append(_root(family, "tc-calls", thinking))
    return ToolGrammar("\n".join(rules) + "\n", lazy=False)


def _skips_thinking(family: ToolFamily, thinking: ThinkingPrefix) -> tuple[str, str] | None:
    """The thinking block's (opener, closer) as regexes when a lazy trigger must look past it; None when
    the model does not think here (harmony's calls are in message headers, never inside its analysis)."""
    if thinking == "off" or family == "gpt-oss":
        return None
    opener, closer = _THINKING.get(family, _THINK_TAGS)
    return _regex_literal(opener), _regex_literal(closer)


def _trigger_patterns(family: ToolFamily, opener: str, thinking: ThinkingPrefix) -> tuple[str, ...]:
    """Patterns (whole text so far, group 1 = the opener) that find a call's opener outside thinking.

    "open": the prompt opened the thinking block, so its closer must come before the call. "optional":
    a reply that starts with a thinking block must close it first; one that does not may call anywhere.
    These are written ``^...$``: llama.cpp then matches them against the whole text (otherwise it
    searches, and a search could start past the reply's opening ``<think>``; a search that begins with
    ``[\\s\\S]*?`` is also quadratic in the reply's length, and it is run after every token).
    """
    anywhere = f"[\\s\\S]*?({opener})[\\s\\S]*"
    markers = _skips_thinking(family, thinking)
    if markers is None:
        return (f"^{anywhere}$",)
    think_open, think_close = markers
    after_thinking = f"[\\s\\S]*?{think_close}{anywhere}"
    if thinking == "open":
        return (f"^{after_thinking}$",)
    return (f"^\\s*{think_open}{after_thinking}$", f"^(?!\\s*{think_open}){anywhere}$")


def _chosen_tools(request: ToolRequest) -> tuple[ToolSpec, ...]:
    """The tools a reply may call (ToolRequest has checked that a named one is offered)."""
    if request.choice.mode != "named":
        return request.tools
    return tuple(t for t in request.tools if t.name == request.choice.name)


def _thinking_text(closer: str) -> list[str]:
    """``tc-text``: thinking that cannot hold its own closer, so the first closer ends it (as the parser reads it).

    Text may end inside a partial closer (``tc-text-<k>``: the first k characters of it seen) before the
    real closer comes. A closer whose first character comes back later (harmony's ``<|end|><|start|>...``)
    is cut before that point: its head alone may not appear in the thinking.
    """
    head = closer[0]
    banned = closer[: closer.find(head, 1)] if head in closer[1:] else closer
    first = _class_char(head)
    rules = [f"tc-text ::= [^{first}]* ({_literal(head)} tc-text-1)?"]
    for seen in range(1, len(banned)):
        nxt = banned[seen]
        others = f"[^{_class_char(nxt)}{first}] tc-text | {_literal(head)} tc-text-1"
        more = f" | {_literal(nxt)} tc-text-{seen + 1}" if seen + 1 < len(banned) else ""
        rules.append(f"tc-text-{seen} ::= ({others}{more})?")
    return rules


def _class_char(char: str) -> str:
    """``char`` inside a GBNF character class."""
    return "\\" + char if char in "]\\^-[" else char


def _root(family: ToolFamily, body: str, thinking: ThinkingPrefix) -> str:
    if thinking == "off":
        return f"root ::= {body}"
    opener, closer = _THINKING.get(family, _THINK_TAGS)
    if thinking == "open":
        return f"root ::= tc-text {_literal(closer)} tc-ws {body}"
    return f"root ::= ({_literal(opener)} tc-text {_literal(closer)} tc-ws)? {body}"


def _argument_rules(index: int, tool: ToolSpec, *, gemma: bool) -> str:
    """The converter's grammar for one tool's parameters, its rules renamed ``t<index>-...``."""
    prefix = f"t{index}-"
    renamed = _converted(tool.parameters, prefix, tool.name)  # an object schema: ToolRequest refuses any other
    return _gemma_strings(renamed, prefix) if gemma else renamed


def _converted(schema: Mapping[str, Any], prefix: str, tool_name: str) -> str:
    """llama-cpp-python's grammar for a JSON value of ``schema``, every rule renamed ``<prefix>...``."""
    try:
        converted = json_schema_to_gbnf(json.dumps(dict(schema)))
    except Exception as exc:  # the converter raises assertions, KeyErrors, ValueErrors... on schemas it cannot take
        raise ToolCallError(
            f"The parameters schema of tool '{tool_name}' cannot be used to constrain replies: {exc}"
        ) from exc
    return _GBNF_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in '"[{' else prefix + m.group(0), converted)


# A <parameter=...> string value: raw text, which cannot hold "</p" (where its closing tag starts).
_XML_TEXT = 'tc-xml-text ::= ([^<] | "<" [^/] | "</" [^p])*'


def _xml_call_rules(index: int, tool: ToolSpec) -> list[str]:
    """Qwen 3.5's ``<function=NAME>`` block for tool ``index``: one ``<parameter=KEY>`` per argument, in the
    schema's order (the required ones always). Strings are raw text, as the template writes them; other
    values are JSON by their schema (``$defs`` of the tool's schema still resolve)."""
    schema = tool.parameters
    properties = schema.get("properties")
    required = set(schema.get("required") or ())
    shared = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
    rules = []
    parts = []
    if isinstance(properties, Mapping) and properties:
        for number, (key, prop) in enumerate(properties.items()):
            value = _xml_value_rule(prop, shared, f"t{index}-p{number}-", tool.name)
            rules.append(value.rules)
            rule = f"t{index}-p{number}"
            rules.append(f'{rule} ::= {_literal(f"<parameter={key}>")} "\\n"? {value.body} "\\n"? "</parameter>" tc-ws')
            parts.append(rule if key in required else f"{rule}?")
    elif schema.get("additionalProperties", True) is not False:
        # No declared parameters: any names, text values.
        rules.append(f't{index}-any ::= "<parameter=" [A-Za-z0-9_.-]+ ">" "\\n"? tc-xml-text "\\n"? "</parameter>" tc-ws')
        parts.append(f"t{index}-any*")
    params = " ".join(parts)
    rules.append(f'tc-call-{index} ::= {_literal(f"<function={tool.name}>")} tc-ws {params} "</function>"')
    return [r for r in rules if r]


class _ValueRule(NamedTuple):
    rules: str  # the rules it needs ("" when none)
    body: str  # what stands for the value in the parameter's rule


def _xml_value_rule(prop: Any, shared: Mapping[str, Any], prefix: str, tool_name: str) -> _ValueRule:
    prop = prop if isinstance(prop, Mapping) else {}
    values = prop.get("enum", [prop["const"]] if "const" in prop else None)
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        return _ValueRule("", "(" + " | ".join(_literal(v) for v in values) + ")")
    if prop.get("type") == "string":
        return _ValueRule("", "tc-xml-text")
    return _ValueRule(_converted({**prop, **shared}, prefix, tool_name), f"{prefix}root")


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


def _hermes_xml(tools: tuple[ToolSpec, ...], parallel: bool) -> list[str]:
    # The tc-call-<i> rules (the <function=...> blocks) come from _xml_call_rules.
    rules = [f'tc-block ::= "<tool_call>" tc-ws ({_alternatives(tools)}) tc-ws "</tool_call>"']
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
    "hermes-xml": _hermes_xml,
    "llama3": _llama3,
    "mistral": _mistral,
    "gemma4": _gemma4,
    "gpt-oss": _gpt_oss,
    "deepseek": _deepseek,
}
