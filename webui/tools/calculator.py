"""The calculator tool: arithmetic read with ``ast`` (never eval), with bounds so a huge power is refused at once."""

from __future__ import annotations

import ast
import math
import operator
import threading
from collections.abc import Callable, Mapping
from typing import Any

from webui.prompts.toolcalls import ToolSpec
from webui.tools.types import Tool, ToolFailed

MAX_EXPRESSION_CHARS = 500
MAX_MAGNITUDE = 1e300  # beyond what a float holds, a result is refused rather than shown as inf
MAX_INT_DIGITS = 1000  # integers stay exact up to this size (Python's own cap on printing is 4300)
MAX_EXPONENT = 10_000  # a**b with |b| over this is refused before it is computed

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
    "log": math.log, "log10": math.log10, "log2": math.log2, "exp": math.exp, "factorial": math.factorial,
    "min": min, "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
MAX_FACTORIAL = 400  # 400! has 869 digits

SPEC = ToolSpec(
    "calculator",
    "Evaluate an arithmetic expression exactly: numbers, + - * / // % **, parentheses, and the functions "
    + ", ".join(sorted(_FUNCTIONS)) + " and constants pi, e, tau. Use it for any arithmetic.",
    {"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. (17 * 23) / 4"}},
     "required": ["expression"]},
)


class CalculationRefused(ToolFailed, ValueError):
    """An expression that is not plain arithmetic, or whose result would be too large to compute."""


def calculate(expression: str) -> int | float:
    """The value of ``expression``; CalculationRefused with the reason when it cannot be computed safely."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise CalculationRefused("The expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationRefused(f"The expression is {len(text)} characters long; at most {MAX_EXPRESSION_CHARS}.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise CalculationRefused(f"{expression!r} is not an arithmetic expression.") from None
    try:
        return _checked(_value(tree.body))
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        if isinstance(exc, CalculationRefused):
            raise
        reason = "division by zero" if isinstance(exc, ZeroDivisionError) else str(exc) or type(exc).__name__
        raise CalculationRefused(f"{expression!r} cannot be computed: {reason}.") from None


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise CalculationRefused("The result is not a real number.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalculationRefused("Only numbers can be computed.")
    if isinstance(value, int) and value.bit_length() > MAX_INT_DIGITS * 3.33:
        raise CalculationRefused(f"The result has more than {MAX_INT_DIGITS} digits.")
    if isinstance(value, float) and (math.isinf(value) or abs(value) > MAX_MAGNITUDE):
        raise CalculationRefused("The result is too large.")
    return value


def _value(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _checked(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_value(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and not node.keywords:
        args = [_value(arg) for arg in node.args]
        if node.func.id == "factorial" and args and (not float(args[0]).is_integer() or args[0] > MAX_FACTORIAL):
            raise CalculationRefused(f"factorial takes a whole number up to {MAX_FACTORIAL}.")
        if node.func.id == "factorial":
            args = [int(args[0])]
        return _checked(_FUNCTIONS[node.func.id](*args))
    shown = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise CalculationRefused(f"{shown!r} is not allowed: use numbers, + - * / // % **, parentheses and "
                             f"the functions {', '.join(sorted(_FUNCTIONS))}.")


def _check_power(base: int | float, exponent: int | float) -> None:
    """Refuse a power whose result would be huge before computing it (9**9**9 would take minutes)."""
    if abs(exponent) > MAX_EXPONENT and abs(base) != 1 and base != 0:
        raise CalculationRefused(f"The exponent {exponent:g} is too large (at most {MAX_EXPONENT}).")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        digits = exponent * math.log10(abs(base))
        if digits > MAX_INT_DIGITS:
            raise CalculationRefused(f"The result would have about {digits:,.0f} digits; at most {MAX_INT_DIGITS}.")


def format_number(value: int | float) -> str:
    """A result as the model should read it: integers exact, floats without float noise."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return repr(round(value, 12))
    return str(value)


def run_calculator(arguments: Mapping[str, Any], _abandoned: threading.Event) -> str:
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        raise CalculationRefused('The calculator needs {"expression": "..."}, a text like "2 * (3 + 4)".')
    return format_number(calculate(expression))


CALCULATOR = Tool(SPEC, run_calculator, trusted=True)
