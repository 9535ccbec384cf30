"""in_own_thread: the work runs in a thread that ends, and its result or exception comes back."""

from __future__ import annotations

import threading

import pytest

from webui.rag.torch_threads import in_own_thread


def test_the_work_runs_in_another_thread_that_has_ended_when_its_result_comes_back() -> None:
    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 42

    assert in_own_thread(work) == 42
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()


def test_an_exception_in_the_work_is_raised_in_the_callers_thread() -> None:
    def work() -> None:
        raise ValueError("the model folder is empty")

    with pytest.raises(ValueError, match="model folder is empty"):
        in_own_thread(work)
