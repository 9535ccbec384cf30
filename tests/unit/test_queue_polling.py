"""Gradio's queue polls for new events; the app slows that poll from every 1 ms to every 10 ms."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import gradio as gr
import pytest

from webui.ui.app import PROGRESS_POLL_S, QUEUE_POLL_S, calm_queue_polling


def test_the_installed_gradio_queue_takes_the_slower_poll() -> None:
    """Fails when a Gradio upgrade renames what the app sets (the app would then only log a warning)."""
    with gr.Blocks() as blocks:
        gr.Markdown("x")
    blocks.queue()
    assert blocks._queue.sleep_when_free < QUEUE_POLL_S, "Gradio's own poll is the fast one this replaces"
    calm_queue_polling(blocks)
    assert (blocks._queue.sleep_when_free, blocks._queue.progress_update_sleep_when_free) == (QUEUE_POLL_S, PROGRESS_POLL_S)


def test_a_gradio_without_that_queue_is_left_alone_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    changed = SimpleNamespace(_queue=SimpleNamespace(poll_s=0.001))  # as if a Gradio release renamed it
    with caplog.at_level(logging.WARNING):
        calm_queue_polling(changed)  # type: ignore[arg-type]
    assert changed._queue == SimpleNamespace(poll_s=0.001)
    assert "polling interval is left as Gradio sets it" in caplog.text
