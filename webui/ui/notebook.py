"""The Notebook tab: raw completion with no chat template, for base models and prompt experiments."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from webui.engine import SamplingParams
from webui.services import CompletionUpdate, NotAuthorized, Services
from webui.ui.chat import GENERATE_QUEUE, generation_slots, stats_line

INTRO = (
    "Type any text and press **Generate**: the model continues it word for word, with no chat "
    "template and no system prompt. Useful for base models, few-shot prompts and prompt experiments."
)


def build_notebook_tab(services: Services) -> None:
    gr.Markdown(INTRO)
    text = gr.Textbox(label="Text", lines=18, max_lines=40, elem_id="notebook-text",
                      placeholder="Once upon a time,")
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="notebook-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="notebook-stop")
    defaults = SamplingParams()
    with gr.Row():
        max_tokens = gr.Slider(1, 4096, value=200, step=1, label="Max new tokens", elem_id="notebook-max-tokens")
        temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature",
                                elem_id="notebook-temperature")
        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", elem_id="notebook-seed")
    stats = gr.Markdown(elem_id="notebook-stats")

    def caller(request: gr.Request) -> str:
        """The signed-in user's name, through the one helper every handler uses; refused otherwise."""
        try:
            return services.user(request.username).name
        except NotAuthorized as exc:
            raise gr.Error(str(exc)) from exc

    def run(prompt: str, max_new: float, temp: float, seed_value: float | None,
            request: gr.Request) -> Iterator[tuple[str, str]]:
        caller(request)
        prompt = prompt or ""
        sampling = SamplingParams(
            temperature=float(temp), max_tokens=int(max_new),
            seed=int(seed_value) if seed_value is not None else -1,
        )
        update: CompletionUpdate | None = None
        for update in services.notebook.complete(request.session_hash, prompt, sampling):
            if not update.done:
                yield prompt + update.text, "Generating…"
        if update is None:
            return
        if update.error:
            gr.Warning(update.error)
            yield prompt + update.text, f"**Error:** {update.error}"
            return
        yield prompt + update.text, stats_line(update.stats.as_dict()) if update.stats else ""

    generate.click(run, [text, max_tokens, temperature, seed], [text, stats],
                   concurrency_id=GENERATE_QUEUE, concurrency_limit=generation_slots(services))

    def stop_generation(request: gr.Request) -> None:
        caller(request)
        services.notebook.stop(request.session_hash)

    stop.click(stop_generation, None, None, queue=False)
