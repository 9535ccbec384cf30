"""Every test that drives Chromium carries the e2e mark, so ``-m "not e2e"`` really leaves the browser out.

tests/conftest.py calls :func:`refuse_unmarked_browser_tests` on every collection: a browser test
without the mark stops the run before anything starts, with its name and the fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import pytest

BROWSER_FIXTURES = frozenset({"page", "browser"})  # tests/conftest.py: Playwright's Chromium


def _from_playwright(value: object) -> bool:
    name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None) or ""
    return name.split(".")[0] == "playwright"


def drives_chromium(item: pytest.Item) -> bool:
    """The test asks for a browser fixture (directly or through another fixture) or its module imports Playwright."""
    if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(
        _from_playwright(value) for value in vars(module).values()
        if inspect.ismodule(value) or inspect.isclass(value) or inspect.isfunction(value)
    )


def browser_tests_without_e2e_mark(items: Sequence[pytest.Item]) -> list[str]:
    """The node ids of the tests that drive Chromium but are not marked e2e (on the test, its class or module)."""
    return [item.nodeid for item in items if drives_chromium(item) and item.get_closest_marker("e2e") is None]


def refuse_unmarked_browser_tests(items: Sequence[pytest.Item]) -> None:
    """Stop the run, naming each browser test that lacks the mark."""
    unmarked = browser_tests_without_e2e_mark(items)
    if unmarked:
        raise pytest.UsageError(
            "These tests drive Chromium but are not marked e2e; add @pytest.mark.e2e "
            "(or pytestmark = pytest.mark.e2e in the module):\n  " + "\n  ".join(unmarked)
        )
