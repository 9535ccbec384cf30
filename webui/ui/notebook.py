"""The Notebook tab: raw completion with no chat template, for base models and prompt experiments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.services import CompletionUpdate, Services
from webui.services.types import SamplingParams, SamplingRequest, sampling_from
from webui.ui.chat import GENERATE_QUEUE, generation_slots, new_page_key
from webui.ui.chat_view import stats_line
from webui.ui.feedback import as_user, handled
from webui.ui.forms import form_components, with_form

INTRO = (
    "Type any text and press **Generate**: the model continues it word for word, with no chat "
    "template and no system prompt. Useful for base models, few-shot prompts and prompt experiments."
)
GENERATING = "Generating…"


@dataclass(frozen=True)
class NotebookForm:
    """The text to continue and how: values as the page's components hold them (an empty seed is None)."""

    prompt: str | None
    max_tokens: float
    temperature: float
    seed: float | None

    def sampling(self) -> SamplingParams:
        return sampling_from(SamplingRequest(temperature=float(self.temperature), max_tokens=int(self.max_tokens),
                                             seed=int(self.seed) if self.seed is not None else -1))


class NotebookHandlers:
    """Generate and Stop, for a user name and the page's key (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @handled("Generating text", lambda message: (gr.update(), f"**Error:** {message}"))
    def run(self, username: str | None, page_key: str, form: NotebookForm) -> Iterator[tuple[str, str]]:
        """The text with its continuation appended as it streams, then the stats line (or the error)."""
        self.services.user(username)
        prompt = form.prompt or ""
        update: CompletionUpdate | None = None
        for update in self.services.notebook.complete(page_key, prompt, form.sampling()):
            if not update.done:
                yield prompt + update.text, GENERATING
        if update is None:
            return
        if update.error:
            gr.Warning(update.error)
            yield prompt + update.text, f"**Error:** {update.error}"
            return
        yield prompt + update.text, stats_line(update.stats.as_dict()) if update.stats else ""

    @handled("Stopping the generation", lambda message: None)
    def stop_generation(self, username: str | None, page_key: str) -> None:
        self.services.user(username)
        self.services.notebook.stop(page_key)


def build_notebook_tab(services: Services) -> None:
    gr.Markdown(INTRO)
    page_key = gr.State(new_page_key)
    text = gr.Textbox(label="Text", lines=18, max_lines=40, elem_id="notebook-text",
                      placeholder="Once upon a time,")
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="notebook-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="notebook-stop")
    with gr.Row():
        max_tokens = gr.Slider(1, 4096, value=200, step=1, label="Max new tokens", elem_id="notebook-max-tokens")
        temperature = gr.Slider(0, 2, value=SamplingParams().temperature, step=0.05, label="Temperature",
                                elem_id="notebook-temperature")
        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", elem_id="notebook-seed")
    stats = gr.Markdown(elem_id="notebook-stats")

    handlers = NotebookHandlers(services)
    form: list[Any] = form_components(NotebookForm, prompt=text, max_tokens=max_tokens, temperature=temperature,
                                      seed=seed)
    generate.click(as_user(with_form(handlers.run, NotebookForm)), [page_key, *form], [text, stats],
                   concurrency_id=GENERATE_QUEUE, concurrency_limit=generation_slots(services))
    stop.click(as_user(handlers.stop_generation), [page_key], None, queue=False)
