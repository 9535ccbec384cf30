"""Chat formats: exact renders per family, resolution order, BOS and stop handling."""

from __future__ import annotations

import pytest

from webui.prompts.templates import (
    FAMILY_FORMATS,
    ChatFormat,
    TemplateError,
    family_from_metadata,
    fold_system_into_first_user,
    format_names,
    looks_like_base_model,
    resolve_chat_format,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]

# Written out by hand from each family's published format (model cards and official templates).
EXPECTED = {
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "gemma": (
        "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "llama-2": (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
        "<s>[INST] Name a colour. [/INST]"
    ),
    "llama-3": (
        "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "mistral-instruct": "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s> [INST] Name a colour. [/INST]",
    "phi-3": (
        "<|system|>\nBe brief.<|end|>\n"
        "<|user|>\nHi<|end|>\n"
        "<|assistant|>\nHello!<|end|>\n"
        "<|user|>\nName a colour.<|end|>\n"
        "<|assistant|>\n"
    ),
    "zephyr": (
        "<|system|>\nBe brief.</s>\n"
        "<|user|>\nHi</s>\n"
        "<|assistant|>\nHello!</s>\n"
        "<|user|>\nName a colour.</s>\n"
        "<|assistant|>\n"
    ),
    "vicuna": "Be brief. USER: Hi ASSISTANT: Hello!</s>USER: Name a colour. ASSISTANT:",
    "alpaca": (
        "Be brief.\n\n"
        "### Instruction:\nHi\n\n"
        "### Response:\nHello!\n\n"
        "### Instruction:\nName a colour.\n\n"
        "### Response:\n"
    ),
}


def _format(name: str, bos: str = "<s>", eos: str = "</s>") -> ChatFormat:
    return resolve_chat_format({}, model_name="m.gguf", bos_token=bos, eos_token=eos, override=name)


def test_every_registered_family_has_an_expected_render() -> None:
    assert set(EXPECTED) == set(FAMILY_FORMATS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_renders_system_and_two_turns_exactly(name: str) -> None:
    rendered = _format(name).render(CONVERSATION)
    assert rendered.text == EXPECTED[name]
    assert rendered.added_special == rendered.text.startswith("<s>")


def test_gemma_without_system_prompt_and_its_stops() -> None:
    rendered = _format("gemma", bos="<bos>", eos="<eos>").render(CONVERSATION[1:2])
    assert rendered.text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert rendered.added_special is True
    assert rendered.stop == ("<end_of_turn>", "<eos>")


def test_chatml_without_system_prompt_has_no_empty_system_turn() -> None:
    rendered = _format("chatml", eos="<|im_end|>").render(CONVERSATION[1:2])
    assert rendered.text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert rendered.stop == ("<|im_end|>",)  # the eos is the same marker: not listed twice
    assert rendered.added_special is False


def test_render_without_generation_prompt_ends_after_the_last_turn() -> None:
    rendered = _format("chatml").render(CONVERSATION[:3], add_generation_prompt=False)
    assert rendered.text.endswith("<|im_start|>assistant\nHello!<|im_end|>\n")


def test_vicuna_and_alpaca_use_their_default_system_prompt_when_none_is_given() -> None:
    assert _format("vicuna").render(CONVERSATION[1:2]).text == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant"
        " gives helpful, detailed, and polite answers to the user's questions. USER: Hi ASSISTANT:"
    )
    assert _format("alpaca").render(CONVERSATION[1:2]).text == (
        "Below is an instruction that describes a task. Write a response that appropriately"
        " completes the request.\n\n### Instruction:\nHi\n\n### Response:\n"
    )


def test_system_only_conversation_becomes_a_user_turn_where_there_is_no_system_role() -> None:
    rendered = _format("mistral-instruct").render([{"role": "system", "content": "Say hi."}])
    assert rendered.text == "<s>[INST] Say hi. [/INST]"


def test_fold_system_into_first_user() -> None:
    assert fold_system_into_first_user(CONVERSATION)[0] == {
        "role": "user",
        "content": "Be brief.\n\nHi",
    }
    assert fold_system_into_first_user(CONVERSATION[1:]) == CONVERSATION[1:]


# --- resolution order -------------------------------------------------------------------------

CHATML_GGUF = {
    "general.architecture": "llama",
    "tokenizer.chat_template": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}
GEMMA_GGUF = {"general.architecture": "gemma3", "general.name": "Gemma 3 270m"}


def test_gguf_template_wins_over_family() -> None:
    fmt = resolve_chat_format(
        {**CHATML_GGUF, "general.name": "Llama 2 7B chat"},
        model_name="llama-2-7b-chat.Q4_K_M.gguf",
        bos_token="<s>",
        eos_token="</s>",
    )
    assert (fmt.name, fmt.source, fmt.note) == ("gguf", "gguf", None)
    assert fmt.stop == ("<|im_end|>", "</s>")
    assert fmt.render(CONVERSATION[1:2]).text == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_override_wins_over_gguf_template() -> None:
    fmt = resolve_chat_format(
        CHATML_GGUF, model_name="x.gguf", bos_token="<s>", eos_token="</s>", override="Llama-2"
    )
    assert (fmt.name, fmt.source) == ("llama-2", "override")


def test_override_gguf_means_the_files_own_template() -> None:
    fmt = resolve_chat_format(
        CHATML_GGUF, model_name="x.gguf", bos_token="", eos_token="", override="gguf"
    )
    assert (fmt.name, fmt.source) == ("gguf", "override")
    with pytest.raises(TemplateError, match="no chat template of its own"):
        resolve_chat_format(GEMMA_GGUF, model_name="g.gguf", bos_token="", eos_token="", override="gguf")


def test_override_with_raw_jinja_template() -> None:
    fmt = resolve_chat_format(
        GEMMA_GGUF,
        model_name="g.gguf",
        bos_token="<bos>",
        eos_token="<eos>",
        override="{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    )
    assert (fmt.name, fmt.source) == ("custom", "override")
    rendered = fmt.render(CONVERSATION[1:2])
    assert rendered.text == "<bos>[user] Hi\n"
    assert rendered.added_special is True
    assert rendered.stop == ("<eos>",)


def test_blank_override_is_no_override() -> None:
    fmt = resolve_chat_format(GEMMA_GGUF, model_name="g.gguf", bos_token="", eos_token="", override="  ")
    assert fmt.source == "family"


def test_family_used_when_the_file_has_no_template_and_the_user_is_told() -> None:
    fmt = resolve_chat_format(
        GEMMA_GGUF, model_name="gemma-3-270m-q4_k_m.gguf", bos_token="<bos>", eos_token="<eos>"
    )
    assert (fmt.name, fmt.source) == ("gemma", "family")
    assert fmt.note is not None and "gemma" in fmt.note and "No chat template" in fmt.note


def test_unknown_model_without_template_guesses_chatml_with_a_note() -> None:
    fmt = resolve_chat_format(
        {"general.architecture": "gpt2"}, model_name="mystery.gguf", bos_token="", eos_token=""
    )
    assert (fmt.name, fmt.source) == ("chatml", "guess")
    assert fmt.note is not None and "guessed ChatML" in fmt.note


def test_broken_template_in_the_file_falls_back_to_the_family_with_a_note() -> None:
    fmt = resolve_chat_format(
        {**GEMMA_GGUF, "tokenizer.chat_template": "{% for m in messages %}"},
        model_name="g.gguf",
        bos_token="<bos>",
        eos_token="<eos>",
    )
    assert (fmt.name, fmt.source) == ("gemma", "family")
    assert fmt.note is not None and "cannot be used" in fmt.note


def test_invalid_jinja_override_raises_template_error_naming_the_problem() -> None:
    with pytest.raises(TemplateError, match="not valid Jinja"):
        resolve_chat_format(
            {}, model_name="m.gguf", bos_token="", eos_token="", override="{% for m in messages %}{{ m"
        )


def test_unknown_override_name_lists_the_known_ones() -> None:
    with pytest.raises(TemplateError, match="unknown chat format 'llama-9'.*chatml"):
        resolve_chat_format({}, model_name="m.gguf", bos_token="", eos_token="", override="llama-9")


def test_template_that_raises_on_a_role_gives_template_error() -> None:
    with pytest.raises(TemplateError, match="Gemma has no tool role"):
        _format("gemma").render([{"role": "tool", "content": "42"}])


def test_gguf_template_refusing_system_role_gets_it_folded_into_the_first_user_turn() -> None:
    strict = (
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}"
        "{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    )
    fmt = resolve_chat_format(
        {"tokenizer.chat_template": strict}, model_name="m.gguf", bos_token="", eos_token=""
    )
    assert fmt.render(CONVERSATION[:2]).text == "<user>Be brief.\n\nHi"


def test_format_names_lists_gguf_and_every_family() -> None:
    names = format_names()
    assert names[0] == "gguf"
    assert set(names[1:]) == set(FAMILY_FORMATS)


@pytest.mark.parametrize(
    ("metadata", "model_name", "family"),
    [
        ({"general.architecture": "gemma3", "general.name": "Gemma 3 270m"}, "g.gguf", "gemma"),
        ({"general.architecture": "gemma2"}, "gemma-2-2b-it.gguf", "gemma"),
        ({"general.architecture": "llama", "general.name": "Meta Llama 3.1 8B Instruct"}, "a.gguf", "llama-3"),
        ({"general.architecture": "llama"}, "Llama-2-7b-chat.Q4_K_M.gguf", "llama-2"),
        ({"general.architecture": "llama", "tokenizer.ggml.pre": "llama-bpe"}, "model.gguf", "llama-3"),
        ({"general.architecture": "llama"}, "mistral-7b-instruct-v0.2.Q4_K_M.gguf", "mistral-instruct"),
        ({"general.architecture": "llama"}, "zephyr-7b-beta.Q4_K_M.gguf", "zephyr"),
        ({"general.architecture": "llama"}, "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "zephyr"),
        ({"general.architecture": "llama"}, "openhermes-2.5-mistral-7b.gguf", "chatml"),
        ({"general.architecture": "llama"}, "vicuna-13b-v1.5.gguf", "vicuna"),
        ({"general.architecture": "llama"}, "alpaca-7b.gguf", "alpaca"),
        ({"general.architecture": "llama", "general.name": "Smollm2 135M"}, "s.gguf", "chatml"),
        ({"general.architecture": "qwen2"}, "qwen2.5-0.5b-instruct-q4_k_m.gguf", "chatml"),
        ({"general.architecture": "phi3"}, "Phi-3-mini-4k-instruct-q4.gguf", "phi-3"),
        ({"general.architecture": "llama"}, "some-model.gguf", None),
        ({}, "", None),
    ],
)
def test_family_from_metadata(metadata: dict[str, str], model_name: str, family: str | None) -> None:
    assert family_from_metadata(metadata, model_name) == family


@pytest.mark.parametrize(
    ("metadata", "model_name", "base"),
    [
        ({"general.name": "Gemma 3 270m"}, "gemma-3-270m-q4_k_m.gguf", True),
        ({"general.name": "Gemma 3 270m It"}, "gemma-3-270m-it-Q4_K_M.gguf", False),
        ({}, "Mistral-7B-Instruct-v0.3.Q4_K_M.gguf", False),
        ({}, "llama-2-7b-chat.gguf", False),
        ({"general.finetune": "instruct"}, "model.gguf", False),
        ({}, "zephyr-7b-beta.gguf", False),
        ({}, "gpt2-medium.gguf", True),
        ({"tokenizer.chat_template": "{{ x }}"}, "base.gguf", False),
    ],
)
def test_looks_like_base_model(metadata: dict[str, str], model_name: str, base: bool) -> None:
    assert looks_like_base_model(metadata, model_name) is base


def test_family_note_warns_when_the_file_looks_like_a_base_model() -> None:
    base = resolve_chat_format(GEMMA_GGUF, model_name="gemma-3-270m.gguf", bos_token="", eos_token="")
    tuned = resolve_chat_format(
        GEMMA_GGUF, model_name="gemma-3-270m-it.gguf", bos_token="", eos_token=""
    )
    assert base.note is not None and "base model" in base.note and "Raw preset" in base.note
    assert tuned.note is not None and "base model" not in tuned.note
