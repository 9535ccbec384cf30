"""A test that drives Chromium without the e2e mark stops the run, naming itself; marked ones run."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The suite's own hook and fixture names, in a throwaway project: a stand-in "page" fixture, no browser.
CONFTEST = """
import pytest

from tests.support.e2e_marks import refuse_unmarked_browser_tests


@pytest.fixture()
def page():
    return "a page"


@pytest.fixture()
def signed_in(page):
    return page


def pytest_collection_modifyitems(items):
    refuse_unmarked_browser_tests(items)
"""


@pytest.fixture()
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    e2e: drives Chromium\n")
    return pytester


def test_a_browser_test_without_the_mark_stops_the_run_with_its_name(project: pytest.Pytester) -> None:
    project.makepyfile(test_pages="""
        import pytest

        def test_unmarked(page):
            pass

        def test_through_another_fixture(signed_in):
            pass

        @pytest.mark.e2e
        def test_marked(page):
            pass

        def test_no_browser():
            pass
    """)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert "drive Chromium but are not marked e2e" in errors
    assert "test_pages.py::test_unmarked" in errors and "test_pages.py::test_through_another_fixture" in errors
    assert "test_marked" not in errors and "test_no_browser" not in errors


def test_a_module_marked_e2e_runs_and_not_e2e_leaves_it_out(project: pytest.Pytester) -> None:
    project.makepyfile(test_pages="""
        import pytest

        pytestmark = pytest.mark.e2e

        def test_in_the_page(page):
            assert page == "a page"
    """)
    project.runpytest().assert_outcomes(passed=1)
    assert project.runpytest("-m", "not e2e").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_module_that_imports_playwright_counts_as_a_browser_test(project: pytest.Pytester) -> None:
    pytest.importorskip("playwright.sync_api")
    project.makepyfile(test_direct="""
        from playwright.sync_api import sync_playwright

        def test_own_browser():
            assert sync_playwright
    """)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_direct.py::test_own_browser" in result.stderr.str()
