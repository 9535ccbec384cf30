"""The Chat tab: streaming replies with Send, Stop, Regenerate, Clear and sampling controls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.engine import GenerationStats, SamplingParams
from webui.services import ReplyUpdate, Services

GENERATE_QUEUE = "generate"  # one queue for every event that runs the model, so users see their position


@dataclass
class ChatControls:
    """Components other tabs (presets, documents) read or set."""

    system_prompt: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    min_p: gr.Slider
    repeat_penalty: gr.Slider
    max_tokens: gr.Slider
    seed: gr.Number


def stats_line(stats: GenerationStats) -> str:
    """The small line under each reply: tokens, speed, time to first token."""
    line = (
        f"{stats.completion_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s · "
        f"first token {stats.ttft_s * 1000:.0f} ms"
    )
    if stats.stopped_by_user:
        line += " · stopped"
    return line


def to_display(conversation: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Chatbot messages: each reply followed by its stats line, which the model never sees."""
    shown = []
    for message in conversation:
        content = message["content"]
        if message.get("footer"):
            content = f"{content}\n\n<sub>{message['footer']}</sub>"
        shown.append({"role": message["role"], "content": content})
    return shown


def build_chat_tab(services: Services) -> ChatControls:
    conversation = gr.State([])
    chatbot = gr.Chatbot(
        label="Conversation", height=520, buttons=["copy"], elem_id="chatbot",
        feedback_options=None, placeholder="Type a message below and press Send.",
    )
    notice = gr.Markdown(elem_id="chat-notice")
    with gr.Row():
        message = gr.Textbox(
            label="Message", placeholder="Ask anything…", lines=2, scale=6, elem_id="message", autofocus=True,
        )
        with gr.Column(scale=1, min_width=140):
            send = gr.Button("Send", variant="primary")
            stop = gr.Button("Stop", variant="stop")
    with gr.Row():
        regenerate = gr.Button("Regenerate", size="sm")
        clear = gr.Button("Clear", size="sm")
    with gr.Accordion("System prompt and sampling", open=False):
        system_prompt = gr.Textbox(label="System prompt", lines=3, value="You are a helpful assistant.")
        defaults = SamplingParams()
        with gr.Row():
            temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature")
            top_p = gr.Slider(0, 1, value=defaults.top_p, step=0.01, label="Top-p")
            top_k = gr.Slider(0, 200, value=defaults.top_k, step=1, label="Top-k")
            min_p = gr.Slider(0, 1, value=defaults.min_p, step=0.01, label="Min-p")
        with gr.Row():
            repeat_penalty = gr.Slider(1, 2, value=defaults.repeat_penalty, step=0.01, label="Repeat penalty")
            max_tokens = gr.Slider(16, 4096, value=defaults.max_tokens, step=16, label="Max new tokens")
            seed = gr.Number(value=defaults.seed, precision=0, label="Seed (-1 = random)")

    controls = ChatControls(system_prompt, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed)
    sampling_inputs = [system_prompt, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed]

    def add_user_message(text: str, history: list[dict[str, Any]]):
        text = (text or "").strip()
        if not text:
            return gr.update(), history, to_display(history)
        history = history + [{"role": "user", "content": text}]
        return "", history, to_display(history)

    def generate(history: list[dict[str, Any]], system: str, temp: float, tp: float, tk: float, mp: float,
                 rp: float, max_new: float, seed_value: float, request: gr.Request) -> Iterator[tuple]:
        if not history or history[-1]["role"] != "user":
            yield history, to_display(history), ""
            return
        sampling = SamplingParams(
            temperature=float(temp), top_p=float(tp), top_k=int(tk), min_p=float(mp),
            repeat_penalty=float(rp), max_tokens=int(max_new), seed=int(seed_value if seed_value is not None else -1),
        )
        update: ReplyUpdate | None = None
        for update in services.chat.reply(request.session_hash, history, system_prompt=system, sampling=sampling):
            pending = history + [{"role": "assistant", "content": update.text}]
            if not update.done:
                yield history, to_display(pending), ""
        if update is None:
            return
        if update.error:
            gr.Warning(update.error)
            final = history + ([{"role": "assistant", "content": update.text}] if update.text else [])
            yield final, to_display(final), f"**Error:** {update.error}"
            return
        footer = stats_line(update.stats) if update.stats else None
        final = history + [{"role": "assistant", "content": update.text, "footer": footer}]
        yield final, to_display(final), update.notice or ""

    def drop_last_reply(history: list[dict[str, Any]]):
        while history and history[-1]["role"] == "assistant":
            history = history[:-1]
        return history, to_display(history)

    def stop_reply(request: gr.Request) -> None:
        services.chat.stop(request.session_hash)

    generate_kwargs = dict(
        fn=generate, inputs=[conversation, *sampling_inputs], outputs=[conversation, chatbot, notice],
        concurrency_id=GENERATE_QUEUE, concurrency_limit=1,
    )
    for trigger in (send.click, message.submit):
        trigger(add_user_message, [message, conversation], [message, conversation, chatbot], queue=False).then(
            **generate_kwargs
        )
    regenerate.click(drop_last_reply, [conversation], [conversation, chatbot], queue=False).then(**generate_kwargs)
    clear.click(lambda: ([], [], ""), None, [conversation, chatbot, notice], queue=False)
    stop.click(stop_reply, None, None, queue=False)

    def chat(message: str, system_prompt: str = "", max_tokens: int = 512, temperature: float = 0.7,
             seed: int = -1, request: gr.Request = None) -> Iterator[str]:
        """Stream a reply to one message, without history: the endpoint scripts and benchmarks call."""
        sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
        key = request.session_hash if request is not None and request.session_hash else "api"
        for update in services.chat.reply(key, [{"role": "user", "content": message}],
                                          system_prompt=system_prompt, sampling=sampling):
            if update.error:
                raise gr.Error(update.error)
            yield update.text

    gr.api(chat, api_name="chat", concurrency_id=GENERATE_QUEUE, concurrency_limit=1)
    return controls
