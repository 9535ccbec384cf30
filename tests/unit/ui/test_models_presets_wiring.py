"""The Models and Presets tabs build with a fake Services, and their events keep the names tests and logs use."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from webui.services.presets import SAMPLING_FIELDS
from webui.ui.chat import ChatControls
from webui.ui.models import build_models_tab
from webui.ui.presets import SAMPLING_LABELS, build_presets_tab

from tests.unit.ui.fake_models import model_services
from tests.unit.ui.fake_presets import CHAT_SLIDER_RANGES, preset_services


def chat_controls() -> ChatControls:
    sliders = {name: gr.Slider(low, high) for name, (low, high) in CHAT_SLIDER_RANGES.items()}
    preset, documents, header = gr.State(None), gr.Dropdown(), gr.Markdown()
    return ChatControls(system_prompt=gr.Textbox(), seed=gr.Number(), documents=documents, preset=preset,
                        header=header, **sliders,
                        refresh_header=dict(fn=lambda *values: "", inputs=[preset, documents], outputs=[header]))


def event_inputs(blocks: gr.Blocks) -> dict[str, int]:
    """Each event's name and how many inputs it takes (the first of a name, as Gradio's /config lists it)."""
    found: dict[str, int] = {}
    for fn in blocks.fns.values():
        found.setdefault(fn.name, len(fn.inputs))
    return found


def test_the_models_tab_wires_each_handler_with_its_inputs() -> None:
    with gr.Blocks() as blocks:
        build_models_tab(model_services("a.gguf"))
    events = event_inputs(blocks)
    assert {"on_load": 0, "refresh_all": 1, "fill_form": 1, "check_memory": 12, "do_load": 13, "do_unload": 0,
            "do_save": 12, "ask_delete": 1, "do_delete": 1, "do_list": 1, "do_download": 2, "poll": 2,
            "do_cancel": 1}.items() <= events.items()


def test_the_presets_tab_starts_on_the_first_preset_and_wires_each_handler(tmp_path: Path) -> None:
    with gr.Blocks() as blocks:
        build_presets_tab(preset_services(tmp_path, team=False), chat_controls())
    events = event_inputs(blocks)
    assert {"pick": 1, "refresh": 0, "pick_row": 0, "apply_preset_to_chat": 2, "apply_sampling": 0, "new_preset": 0,
            "save_preset": 11, "duplicate_preset": 1, "ask_delete": 1, "delete_preset": 1, "cancel": 0,
            "import_text": 1, "import_upload": 1}.items() <= events.items()
    assert tuple(SAMPLING_LABELS) == SAMPLING_FIELDS, "the editor's numbers and the chat's sliders share an order"
    name_box = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "preset-name")
    assert name_box.value == "Coder", "the editor opens on the first preset, by name"
