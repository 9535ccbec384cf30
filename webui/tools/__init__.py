"""Tools the model may call: the built-in ones (calculator, clock) and those of the configured MCP servers."""

from webui.tools.calculator import CALCULATOR, CalculationRefused, calculate
from webui.tools.clock import CLOCK, describe_time
from webui.tools.mcp_client import McpServers, McpServerStatus, result_text, spaced_tool_name
from webui.tools.mcp_config import McpConfigError, McpServerConfig, parse_mcp_config, read_mcp_config
from webui.tools.types import BUILT_IN, Tool, ToolFailed, ToolRunner

__all__ = [
    "BUILT_IN", "CALCULATOR", "CLOCK", "CalculationRefused", "McpConfigError", "McpServerConfig", "McpServerStatus",
    "McpServers", "Tool", "ToolFailed", "ToolRunner", "calculate", "describe_time", "parse_mcp_config",
    "read_mcp_config", "result_text", "spaced_tool_name",
]
