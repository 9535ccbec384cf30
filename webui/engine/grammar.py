"""Output formats as grammars: OpenAI's response_format and Ollama's format, turned into GBNF.

llama-cpp-python ships both the JSON grammar and the JSON-schema converter; this only picks. The
grammar is checked against the model's vocabulary once, in the prepare step.
"""

from __future__ import annotations

import json
from typing import Any

from llama_cpp import llama_grammar

from webui.engine.errors import InvalidGrammar


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """GBNF text for an OpenAI ``response_format`` (text, json_object, json_schema); None for plain text."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return llama_grammar.JSON_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidGrammar("response_format.json_schema.schema must be a JSON schema object.")
        try:
            return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError, RecursionError) as exc:
            raise InvalidGrammar(f"The JSON schema could not be turned into a grammar: {exc}") from exc
    raise InvalidGrammar(f"Unknown response_format type {kind!r}; use text, json_object or json_schema.")
