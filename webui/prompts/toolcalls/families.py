"""Which family's conventions a chat template follows, read from the template text itself.

The markers are the ones each family's own template writes for tool calls and thinking (see the real
templates in tests/fixtures/chat_templates); a template that writes none gets the generic fallback.
"""

from __future__ import annotations

import re

from webui.prompts.toolcalls.types import ToolFamily

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# In detection order: the first family whose marker the template writes wins (harmony and Gemma 4
# templates also mention other families' words in prose, so the most specific markers come first).
_FAMILY_MARKERS: tuple[tuple[ToolFamily, tuple[str, ...]], ...] = (
    ("gpt-oss", ("<|channel|>",)),
    ("gemma4", ("<|tool_call>",)),
    ("deepseek", ("tool▁calls▁begin", "tool▁call▁begin")),
    ("mistral", ("[TOOL_CALLS]",)),
    ("hermes-xml", ("<function=",)),  # Qwen 3.5, Qwen3-Coder: <tool_call> around <function=NAME> blocks
    ("hermes", ("<tool_call>",)),
    ("llama3", ("<|python_tag|>",)),
)
_USES_TOOLS = re.compile(r"\btools\b")


def reply_family(template: str) -> ToolFamily:
    """The family whose tool-call format this template writes; "generic" when it knows no tools."""
    for family, markers in _FAMILY_MARKERS:
        if any(marker in template for marker in markers):
            return family
    if "<|start_header_id|>" in template and _USES_TOOLS.search(template):
        return "llama3"  # Llama 3.2/3.3: JSON calls, no python tag
    return "generic"


def writes_reasoning(template: str) -> bool:
    """Whether replies in this template's format may start with thinking to split out."""
    family = reply_family(template)
    return family in ("gpt-oss", "gemma4") or THINK_OPEN in template or "<|think|>" in template


def has_thinking_switch(template: str) -> bool:
    """Whether the template reads ``enable_thinking`` (Qwen 3, SmolLM 3, Gemma 4...) so thinking can be turned off."""
    return "enable_thinking" in template or "reasoning_effort" in template


def supports_tools(template: str) -> bool:
    """Whether the template renders a ``tools`` list natively (otherwise the generic fallback describes them)."""
    return reply_family(template) != "generic" and _USES_TOOLS.search(template) is not None
