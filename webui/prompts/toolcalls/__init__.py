"""Tool calls and reasoning in each model family's own format: rendering, grammars, parsing."""

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

__all__ = ["MAX_TOOLS", "ReplyEvent", "ReplyFormat", "ReplyParser", "ToolCall", "ToolCallError", "ToolChoice",
           "ToolFamily", "ToolPrompt", "ToolRequest", "ToolSpec"]
