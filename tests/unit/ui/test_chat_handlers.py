"""The Chat tab's handlers with a fake Services: what the list, the conversation and the notice show."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest

from webui.services import DocumentQuery
from webui.services.admission import MAX_MESSAGE_CHARS
from webui.ui.chat import build_chat_tab, generation_slots
from webui.ui.chat_handlers import NO_MODEL_LINE, ChatHandlers, ReplyForm
from webui.ui.chat_view import INCOMPLETE_NOTE
from webui.ui.feedback import as_user
from webui.ui.forms import form_components, with_form

from tests.unit.ui.fake_chat import FakeChatServices, loaded_model

PAGE = "page-1"  # the key of the page that sends, the one Stop stops


def form(**changes) -> ReplyForm:
    values = dict(system_prompt="Be brief.", temperature=0.2, top_p=0.9, top_k=40.0, min_p=0.05,
                  repeat_penalty=1.1, max_tokens=64.0, seed=7.0, collections=[], use_collection_settings=True,
                  passages=4.0, min_score=0.3)
    return ReplyForm(**{**values, **changes})


def send(handlers: ChatHandlers, user: str, text: str, current: str | None, picked: tuple[str, ...] = ()) -> tuple:
    """Send from the page ``PAGE``: the box, the chat id, the conversation, the list, then Send, Stop, Regenerate."""
    return handlers.add_user_message(user, PAGE, text, current, list(picked))


def chat_with(fake: FakeChatServices, user: str, *texts: str) -> str:
    """A saved chat of ``user`` with a question and its reply for each text."""
    handlers = ChatHandlers(fake)
    current = None
    for text in texts:
        current = send(handlers, user, text, current)[1]
        list(handlers.generate(user, PAGE, current, form()))
    return current


def test_opening_the_page_lists_only_the_users_chats_the_model_and_their_collections() -> None:
    fake = FakeChatServices()
    chat_with(fake, "alice", "Alice's plans")
    bobs = chat_with(fake, "bob", "Bob's notes")
    fake.document_actions.collections = {"u-bob": ["manuals"]}
    listing, model_line, documents, header = ChatHandlers(fake).on_load("bob")
    assert listing["choices"] == [("Bob's notes", bobs)] and listing["value"] is None
    assert model_line == "Model **tiny.gguf** · chat format **chatml** (gguf)"
    assert documents["choices"] == ["manuals"] and documents["value"] == []
    assert header == "Model **tiny.gguf** · No preset applied · Plain chat: no documents"


def test_the_model_line_says_when_no_model_is_loaded_and_shows_a_formats_note() -> None:
    fake = FakeChatServices()
    fake.models.loaded_model = None
    assert ChatHandlers(fake).describe_model() == NO_MODEL_LINE
    fake.models.loaded_model = loaded_model(note="template guessed from the name")
    assert ChatHandlers(fake).describe_model().endswith(" · template guessed from the name")


def test_refreshing_the_collections_keeps_only_the_picks_that_still_exist() -> None:
    fake = FakeChatServices()
    fake.document_actions.collections = {"u-alice": ["manuals", "recipes"]}
    shown = ChatHandlers(fake).document_choices("alice", ["recipes", "deleted one"])
    assert shown["choices"] == ["manuals", "recipes"] and shown["value"] == ["recipes"]


def test_sending_saves_the_message_in_a_new_chat_empties_the_box_and_selects_it_in_the_list() -> None:
    fake = FakeChatServices()
    box, current, shown, listing, *_ = send(ChatHandlers(fake), "alice", "  What is a GGUF file?  ", None)
    assert box["value"] == "" and current in fake.chat.chats
    assert shown == [{"role": "user", "content": "What is a GGUF file?"}]
    assert listing["choices"] == [("What is a GGUF file?", current)] and listing["value"] == current


def test_an_empty_message_changes_nothing_and_a_too_long_one_is_refused_and_not_saved() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    assert send(handlers, "alice", "   ", None)[1] is None
    with pytest.raises(gr.Error, match=f"the limit is {MAX_MESSAGE_CHARS:,}"):
        send(handlers, "alice", "x" * (MAX_MESSAGE_CHARS + 1), None)
    assert fake.chat.chats == {}


def test_a_message_to_a_chat_deleted_meanwhile_starts_a_new_chat() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "First question")
    fake.chat.delete("u-alice", current)
    _, new, shown, *_ = send(ChatHandlers(fake), "alice", "Still there?", current)
    assert new != current and shown == [{"role": "user", "content": "Still there?"}]


def test_a_reply_streams_under_the_question_then_shows_its_stats_line() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Say hello.", None)[1]
    steps = list(handlers.generate("alice", PAGE, current, form()))
    assert steps[0] == ([{"role": "user", "content": "Say hello."}], "Writing…")  # before the first token
    texts = [shown[-1]["content"] for shown, _ in steps[1:-1]]
    assert texts == ["Hello", "Hello there", "Hello there friend"]
    assert [notice for _, notice in steps[1:-1]] == ["Writing… 1 token", "Writing… 2 tokens", "Writing… 3 tokens"]
    final, notice = steps[-1]
    assert final[0] == {"role": "user", "content": "Say hello."} and notice == ""
    assert final[1]["content"].startswith("Hello there friend\n\n<sub>3 tokens · ")
    assert "first token 250 ms" in final[1]["content"]


def test_the_reply_is_written_with_the_forms_settings_for_this_page() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Hi", None)[1]
    list(handlers.generate("alice", PAGE, current, form(collections=["manuals"], seed=None)))
    call = fake.chat.reply_calls[-1]
    assert (call.owner, call.session_key, call.system_prompt) == ("u-alice", PAGE, "Be brief.")
    assert (call.sampling.top_k, call.sampling.max_tokens, call.sampling.seed) == (40, 64, -1)
    assert call.documents == DocumentQuery(("manuals",))  # each collection's own k and cut-off
    send(handlers, "alice", "More, from 7 passages", current)
    list(handlers.generate("alice", PAGE, current,
                           form(collections=["manuals"], use_collection_settings=False, passages=7.0)))
    assert fake.chat.reply_calls[-1].documents == DocumentQuery(("manuals",), k=7, min_score=0.3)


def test_a_failed_reply_keeps_its_words_marked_unfinished_and_says_why() -> None:
    fake = FakeChatServices()
    fake.chat.reply_error = "The model stopped answering."
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Say hello.", None)[1]
    with pytest.warns(UserWarning, match="The model stopped answering."):  # the toast
        shown, notice = list(handlers.generate("alice", PAGE, current, form()))[-1]
    assert notice == "**Error:** The model stopped answering."
    assert shown[-1]["content"].startswith("Hello there friend") and INCOMPLETE_NOTE in shown[-1]["content"]


def test_a_reply_to_a_chat_cleared_meanwhile_shows_the_chat_as_saved_without_an_error() -> None:
    fake = FakeChatServices()
    fake.chat.drop_next_reply = True
    handlers = ChatHandlers(fake)
    current = send(handlers, "alice", "Say hello.", None)[1]
    shown, notice = list(handlers.generate("alice", PAGE, current, form()))[-1]
    assert shown == [{"role": "user", "content": "Say hello."}] and notice == ""


def test_no_reply_starts_without_an_open_chat_or_after_a_reply() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    assert list(handlers.generate("alice", PAGE, None, form())) == []
    current = chat_with(fake, "alice", "Say hello.")
    [(shown, notice)] = list(handlers.generate("alice", PAGE, current, form()))
    assert len(shown) == 2 and notice == "" and len(fake.chat.reply_calls) == 1


def test_a_signed_out_page_gets_the_login_sentence_instead_of_a_reply() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Say hello.")
    with pytest.warns(UserWarning, match="Please log in again."):
        assert list(ChatHandlers(fake).generate("mallory", PAGE, current, form())) == [
            (gr.update(), "**Error:** Please log in again.")]


def test_opening_a_chat_shows_its_messages() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Tell me a joke")
    opened, shown, notice, documents, header = ChatHandlers(fake).open_conversation("alice", current, None)
    assert opened == current and notice == ""
    assert documents["value"] == [] and header.endswith("Plain chat: no documents")
    assert [m["role"] for m in shown] == ["user", "assistant"]


def test_another_users_chat_does_not_open_and_shows_nothing_of_it() -> None:
    fake = FakeChatServices()
    secret = chat_with(fake, "alice", "My lighthouse is at 12 Harbour Road")
    with pytest.warns(UserWarning, match="That conversation no longer exists."):
        assert ChatHandlers(fake).open_conversation("bob", secret, None)[:3] == (None, [], "")
    with pytest.warns(UserWarning, match="That conversation no longer exists."):
        assert ChatHandlers(fake).open_row_menu("bob", secret) == (gr.update(),) * 4, "not even its title"
    with pytest.warns(UserWarning, match="That conversation no longer exists."):
        assert ChatHandlers(fake).rename_chat("bob", secret, "taken over") == (gr.update(), gr.update())
    with pytest.warns(UserWarning, match="That conversation no longer exists."):
        ChatHandlers(fake).delete_chat("bob", secret, None, None)
    assert fake.chat.chats[secret].title.startswith("My lighthouse")


def test_an_edited_question_replaces_what_followed_and_an_edited_reply_is_refused() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Capital of Italy?", "And of Spain?")
    handlers = ChatHandlers(fake)
    shown, notice, *_ = handlers.edit_message("alice", current, [2, 0], [{"type": "text", "text": "And of France?"}])
    assert [m["content"] for m in shown][-1] == "And of France?" and len(shown) == 3 and notice == ""
    with pytest.warns(UserWarning, match="Only your own messages can be edited."):
        unchanged, *_ = handlers.edit_message("alice", current, 1, "I am the model now")
    assert unchanged == shown


def test_regenerate_drops_the_last_reply_and_keeps_the_question() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Say hello.")
    assert ChatHandlers(fake).drop_last_reply("alice", current)[0] == [{"role": "user", "content": "Say hello."}]


def test_clear_empties_the_chat_even_when_it_was_deleted_meanwhile() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Say hello.")
    handlers = ChatHandlers(fake)
    shown, notice, confirm = handlers.clear_chat("alice", current)
    assert shown == [] and notice == "" and confirm["visible"] is False
    assert fake.chat.messages("u-alice", current) == []
    fake.chat.delete("u-alice", current)
    assert handlers.clear_chat("alice", current)[0] == []


def test_a_rows_menu_starts_rename_from_its_title_which_needs_words_then_the_list_shows_it() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Say hello.")
    handlers = ChatHandlers(fake)
    chat_id, title, menu, confirm = handlers.open_row_menu("alice", current)
    assert (chat_id, title["value"], menu["visible"], confirm["visible"]) == (current, "Say hello.", True, False)
    with pytest.warns(UserWarning, match="Type a title for the chat first."):
        assert handlers.rename_chat("alice", current, "   ") == (gr.update(), gr.update())
    listing, menu = handlers.rename_chat("alice", current, " Greetings ")
    assert listing["choices"] == [("Greetings", current)] and menu["visible"] is False
    assert "value" not in listing, "renaming a row leaves the open chat picked, whichever it is"


def test_deleting_the_open_chat_closes_it_and_removes_it_from_the_list() -> None:
    fake = FakeChatServices()
    kept = chat_with(fake, "alice", "Keep me")
    gone = chat_with(fake, "alice", "Delete me")
    current, shown, listing, documents, header, confirm, menu = ChatHandlers(fake).delete_chat(
        "alice", gone, gone, None)
    assert (current, shown, documents["value"]) == (None, [], []) and confirm["visible"] is menu["visible"] is False
    assert listing["choices"] == [("Keep me", kept)] and listing["value"] is None


def test_deleting_another_rows_chat_keeps_the_open_chat_open() -> None:
    fake = FakeChatServices()
    gone = chat_with(fake, "alice", "Delete me")
    kept = chat_with(fake, "alice", "Keep me open")
    current, shown, listing, documents, header, *_ = ChatHandlers(fake).delete_chat("alice", gone, kept, None)
    assert (current, shown, documents, header) == (gr.update(),) * 4, "the open chat is left as it is"
    assert listing["choices"] == [("Keep me open", kept)] and "value" not in listing


def test_stop_stops_the_reply_of_this_page() -> None:
    fake = FakeChatServices()
    ChatHandlers(fake).stop_reply("alice", PAGE)
    assert fake.chat.stopped == [PAGE]


def test_the_exact_prompt_shows_the_chat_and_the_draft_or_why_it_cannot() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Say hello.")
    handlers = ChatHandlers(fake)
    prompt = handlers.show_exact_prompt("alice", current, "Be brief.", "And goodbye?")
    assert prompt.startswith("<system>Be brief.\n<user>Say hello.") and prompt.endswith("<user>And goodbye?")
    assert handlers.show_exact_prompt("bob", current, "", "") == (
        "Cannot render the prompt: That conversation no longer exists.")


def test_the_reply_event_takes_one_input_per_form_field_in_the_forms_order() -> None:
    components = {name: f"<{name}>" for name in ReplyForm.__dataclass_fields__}
    assert form_components(ReplyForm, **components) == list(components.values())
    with pytest.raises(TypeError, match="missing \\['seed'\\]"):
        form_components(ReplyForm, **{k: v for k, v in components.items() if k != "seed"})
    event = as_user(with_form(ChatHandlers(FakeChatServices()).generate, ReplyForm))
    assert event.__name__ == "generate"
    assert list(inspect.signature(event).parameters) == ["page_key", "current", *components, "request"]


def test_the_tab_wires_its_events_by_their_handlers_names_and_sizes_the_queue_from_the_model() -> None:
    fake = FakeChatServices()
    assert generation_slots(fake) == 4  # no model decoding yet: Gradio's default
    fake.models.parallel = 2
    assert generation_slots(fake) == 2
    with gr.Blocks() as blocks:
        build_chat_tab(fake, blocks)
    names = {fn.name for fn in blocks.fns.values()}
    assert {"on_load", "open_conversation", "add_user_message", "generate", "edit_message", "drop_last_reply",
            "clear_chat", "start_new_chat", "open_row_menu", "rename_chat", "delete_chat", "refresh_list",
            "stop_reply", "show_exact_prompt",
            "document_choices", "save_collections", "reply_finished", "show_saved", "chat"} <= names
    generate = next(fn for fn in blocks.fns.values() if fn.name == "generate")
    assert len(generate.inputs) == 2 + len(ReplyForm.__dataclass_fields__) and generate.concurrency_limit == 2


# -- documents per chat, the header, the busy composer --------------------------------------------


def test_each_chat_keeps_its_own_collections_and_a_new_chat_starts_plain() -> None:
    fake = FakeChatServices()
    fake.document_actions.collections = {"u-alice": ["manuals", "recipes"]}
    handlers = ChatHandlers(fake)
    manuals = send(handlers, "alice", "How do I reset it?", None, ("manuals",))[1]
    plain = send(handlers, "alice", "Tell me a joke", None)[1]
    assert fake.chat.chats[manuals].collections == ("manuals",) and fake.chat.chats[plain].collections == ()

    *_, documents, header = handlers.open_conversation("alice", manuals, None)
    assert documents["value"] == ["manuals"] and header.endswith("Answers from **manuals**")
    *_, documents, header = handlers.open_conversation("alice", plain, None)
    assert documents["value"] == [] and header.endswith("Plain chat: no documents")
    *_, documents, header = handlers.start_new_chat(None)
    assert documents["value"] == [] and header.endswith("Plain chat: no documents")


def test_picking_collections_saves_them_with_the_open_chat_and_a_deleted_collection_is_not_picked_again() -> None:
    fake = FakeChatServices()
    fake.document_actions.collections = {"u-alice": ["manuals", "recipes"]}
    handlers = ChatHandlers(fake)
    current = chat_with(fake, "alice", "Hello")
    header = handlers.save_collections("alice", current, ["manuals", "recipes"], "Coder")
    assert header == "Model **tiny.gguf** · Preset **Coder** · Answers from **manuals**, **recipes**"
    assert fake.chat.chats[current].collections == ("manuals", "recipes")
    assert handlers.save_collections("alice", None, ["recipes"], None).endswith("Answers from **recipes**")
    fake.document_actions.collections = {"u-alice": ["recipes"]}  # "manuals" was deleted meanwhile
    *_, documents, header = handlers.open_conversation("alice", current, None)
    assert documents["value"] == ["recipes"] and documents["choices"] == ["recipes"]


def test_sending_turns_the_composer_busy_and_the_end_of_the_reply_turns_it_back() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    box, _, _, _, send_button, stop, regenerate = send(handlers, "alice", "Say hello.", None)
    assert box["interactive"] is False and send_button["interactive"] is False
    assert stop["interactive"] is True and regenerate["interactive"] is False
    box, send_button, stop, regenerate, model_line, header = handlers.reply_finished("Coder", ["manuals"])
    assert (box["interactive"], send_button["interactive"], stop["interactive"], regenerate["interactive"]) == (
        True, True, False, True)
    assert header == "Model **tiny.gguf** · Preset **Coder** · Answers from **manuals**"


def test_a_second_message_while_this_page_has_a_reply_under_way_is_refused_and_not_saved() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    current = chat_with(fake, "alice", "First")
    fake.chat.busy_pages = {PAGE}
    with pytest.raises(gr.Error, match="A reply is still being written: wait for it to finish, or press Stop."):
        send(handlers, "alice", "Second", current)
    assert [m.content for m in fake.chat.messages("u-alice", current)] == ["First", "Hello there friend"]


def test_regenerate_and_edit_turn_the_composer_busy_too() -> None:
    fake = FakeChatServices()
    handlers = ChatHandlers(fake)
    current = chat_with(fake, "alice", "Say hello.")
    _, box, send_button, stop, _ = handlers.drop_last_reply("alice", current)
    assert (box["interactive"], send_button["interactive"], stop["interactive"]) == (False, False, True)
    _, _, box, send_button, stop, _ = handlers.edit_message("alice", current, 0, "Say goodbye.")
    assert (box["interactive"], send_button["interactive"], stop["interactive"]) == (False, False, True)


def test_the_chatbots_own_clear_shows_the_saved_chat_again() -> None:
    fake = FakeChatServices()
    current = chat_with(fake, "alice", "Keep me")
    shown = ChatHandlers(fake).show_saved("alice", current)
    assert [m["content"].split("\n")[0] for m in shown] == ["Keep me", "Hello there friend"]
    assert ChatHandlers(fake).show_saved("alice", None) == []
