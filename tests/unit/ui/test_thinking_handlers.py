"""A reasoning model's thinking on the chat page: streamed folded above the answer, shown again when the chat
is reopened, kept out of the next prompt, and the "Think" switch only where the model can turn it off."""

from __future__ import annotations

import gradio as gr

from webui.ui.chat import build_chat_tab
from webui.ui.chat_handlers import ChatHandlers
from webui.ui.chat_view import thinking_view

from tests.unit.ui.fake_chat import FakeChatServices
from tests.unit.ui.test_chat_handlers import PAGE, form, send


def test_thinking_streams_folded_above_the_answer_with_its_time_and_shows_again_when_the_chat_is_reopened() -> None:
    fake = FakeChatServices()
    fake.chat.reply_thinking = "The user greets. Greet back."
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Say hello.", None)[1]
    steps = list(handlers.generate("alice", PAGE, current, form()))
    thinking = [shown[-1]["content"] for shown, _ in steps[1:6]]
    assert thinking[0] == ('<details class="thinking"><summary>Thinking… 0.5 s</summary>\n\nThe\n\n</details>')
    assert thinking[-1].startswith("<details class=\"thinking\"><summary>Thinking… 2.5 s</summary>")
    assert "The user greets. Greet back." in thinking[-1]
    answering = steps[6][0][-1]["content"]
    assert answering.startswith('<details class="thinking"><summary>Thinking (2.5 s)</summary>')
    assert answering.endswith("</details>\n\nHello")
    final = steps[-1][0][-1]["content"]
    assert "<summary>Thinking (2.5 s)</summary>" in final and "</details>\n\nHello there friend\n\n<sub>" in final

    _, reopened, *_ = handlers.open_conversation("alice", current, None)
    assert reopened[-1]["content"] == final
    assert "Greet back" not in handlers.show_exact_prompt("alice", current, "Be brief.", "And goodbye?")


def test_a_reply_without_thinking_shows_no_thinking_block() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Say hello.", None)[1]
    steps = list(handlers.generate("alice", PAGE, current, form()))
    assert all("Thinking" not in shown[-1]["content"] for shown, _ in steps[1:])


def test_the_think_switch_off_asks_the_model_not_to_think_and_on_leaves_it_to_the_template() -> None:
    fake = FakeChatServices()
    fake.chat.reply_thinking = "Hmm."
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Quick: 2+2?", None)[1]
    final = list(handlers.generate("alice", PAGE, current, form(think=False)))[-1][0][-1]["content"]
    assert fake.chat.reply_calls[-1].thinking is False and "Thinking" not in final
    send(handlers, "alice", "And 3+3?", current)
    list(handlers.generate("alice", PAGE, current, form(think=True)))
    assert fake.chat.reply_calls[-1].thinking is None


def test_the_think_switch_shows_only_for_a_model_that_can_turn_thinking_off() -> None:
    fake = FakeChatServices()
    assert ChatHandlers(fake).think_switch() == gr.update(visible=False)
    fake.chat.can_turn_thinking_off = True
    assert ChatHandlers(fake).think_switch() == gr.update(visible=True)
    with gr.Blocks() as blocks:
        build_chat_tab(fake, blocks)
    assert sum(fn.name == "think_switch" for fn in blocks.fns.values()) == 3  # on page load, after a reply sent by Send or Enter


def test_markup_in_thinking_shows_as_text_and_paragraphs_stay_apart() -> None:
    shown = thinking_view("Is <b>bold</b> safe?\n\nSecond line\nthird", 4.24)
    assert shown == ('<details class="thinking"><summary>Thinking (4.2 s)</summary>\n\n'
                     "Is &lt;b&gt;bold&lt;/b&gt; safe?\n\nSecond line<br>third\n\n</details>")
