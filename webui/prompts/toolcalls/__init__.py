"""Tool calls and reasoning in each model family's own format: rendering, grammars, parsing."""

from webui.prompts.toolcalls.families import (
    THINK_CLOSE,
    THINK_OPEN,
    has_thinking_switch,
    reply_family,
    supports_tools,
    writes_reasoning,
)
from webui.prompts.toolcalls.parsers import parser_for
from webui.prompts.toolcalls.types import (
    MAX_TOOLS,
    ReplyEvent,
    ReplyFormat,
    ReplyParser,
    ToolCall,
    ToolCallError,
    ToolChoice,
    ToolFamily,
    ToolPrompt,
    ToolRequest,
    ToolSpec,
)

__all__ = ["THINK_CLOSE", "THINK_OPEN", "has_thinking_switch", "parser_for", "reply_family", "supports_tools",
           "writes_reasoning",
           "MAX_TOOLS", "ReplyEvent", "ReplyFormat", "ReplyParser", "ToolCall", "ToolCallError", "ToolChoice",
           "ToolFamily", "ToolPrompt", "ToolRequest", "ToolSpec"]
