"""The Presets tab: list, apply, create, edit, duplicate, delete, import and export presets."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from webui.prompts.presets import ALLOWED_VARIABLES, SAMPLING_PRESETS, PresetError
from webui.services import PresetService, Services
from webui.services.presets import SAMPLING_FIELDS, clamp_sampling, sampling_from_fields
from webui.ui.chat import ChatControls
from webui.ui.uploads import UploadRejected, uploaded_paths

log = logging.getLogger(__name__)

SAMPLING_LABELS = {
    "temperature": "Temperature",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "min_p": "Min-p",
    "repeat_penalty": "Repeat penalty",
    "max_tokens": "Max new tokens",
}

INTRO = (
    "A preset is a system prompt with optional sampling settings, saved as a small YAML file. "
    "**Apply** puts it into the Chat tab (the prompt variant for the loaded model, if it has one). "
    "Built-in presets are never changed: saving one stores your own copy, and deleting that copy "
    "brings the built-in back. Prompts may use "
    + ", ".join(f"`{{{name}}}`" for name in ALLOWED_VARIABLES)
    + "."
)


def _errors_markdown(errors: list[str]) -> str:
    if not errors:
        return ""
    lines = "\n".join(f"- {error}" for error in errors)
    return f"**Some preset files could not be loaded** (the others work):\n{lines}"


def editor_values(presets: PresetService, selected: str | None) -> list[Any]:
    """The editor's values for preset ``selected`` (None: an empty new preset)."""
    if not selected:
        return [None, "#### New preset", "", "", "", *([None] * len(SAMPLING_LABELS)), ""]
    try:
        preset = presets.get(selected)
    except PresetError:
        return editor_values(presets, None)
    title = f"#### Editing '{preset.name}'"
    if preset.builtin:
        title += " (built in: saving stores your own copy, the original stays as it is)"
    note = ""
    if preset.variants:
        count = len(preset.variants)
        note = (f"This preset has {count} model-specific prompt variant{'s' if count > 1 else ''}: "
                "they are kept when you save; change them by exporting, editing and importing the YAML.")
    values = [getattr(preset.sampling, key) for key in SAMPLING_LABELS]
    return [preset.name, title, preset.name, preset.description, preset.system, *values, note]


def build_presets_tab(services: Services, chat: ChatControls) -> None:
    presets: PresetService = services.preset_actions
    chat_sliders = {name: getattr(chat, name) for name in SAMPLING_FIELDS}
    slider_ranges = {name: (s.minimum, s.maximum) for name, s in chat_sliders.items()}

    gr.Markdown(INTRO)
    load_errors = gr.Markdown(_errors_markdown(presets.errors()), elem_id="preset-errors")
    with gr.Row():
        gr.Markdown("**Sampling only, one click:**")
        sampling_buttons = {
            key: gr.Button(key.capitalize(), size="sm", elem_id=f"sampling-{key}") for key in SAMPLING_PRESETS
        }
    table = gr.Dataframe(
        value=presets.table(), headers=["Name", "Description", "Kind"], interactive=False, wrap=True,
        column_widths=["25%", "55%", "20%"], label="Presets (click a row to pick it)", elem_id="preset-table",
    )
    names = presets.names()
    first = names[0] if names else None
    (first_editing, first_title, first_name, first_description, first_system, *rest) = editor_values(presets, first)
    first_numbers, first_note = rest[:-1], rest[-1]
    with gr.Row():
        choice = gr.Dropdown(names, value=first, label="Preset", scale=3,
                             elem_id="preset-choice")
        apply = gr.Button("Apply", variant="primary", scale=1, elem_id="preset-apply")
        new = gr.Button("New", scale=1, elem_id="preset-new")
        duplicate = gr.Button("Duplicate", scale=1, elem_id="preset-duplicate")
        delete = gr.Button("Delete", variant="stop", scale=1, elem_id="preset-delete")
        export = gr.DownloadButton("Export", value=str(presets.export_file(first)) if first else None,
                                   scale=1, elem_id="preset-export")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm_delete = gr.Button("Yes, delete", variant="stop", size="sm", elem_id="preset-confirm-delete")
        cancel_delete = gr.Button("Cancel", size="sm")
    status = gr.Markdown(elem_id="preset-status")

    editing = gr.State(first_editing)  # name of the preset in the editor; None while writing a new one
    with gr.Group():
        editor_title = gr.Markdown(first_title, elem_id="preset-editor-title")
        with gr.Row():
            name = gr.Textbox(first_name, label="Name", max_lines=1, scale=1, elem_id="preset-name")
            description = gr.Textbox(first_description, label="Description", max_lines=2, scale=2,
                                     elem_id="preset-description")
        system = gr.Textbox(first_system, label="Preset system prompt", lines=6, elem_id="preset-system")
        with gr.Accordion("Sampling settings (leave blank to keep the chat's own)", open=False):
            with gr.Row():
                sampling_fields = {
                    key: gr.Number(number, label=label, elem_id=f"preset-{key.replace('_', '-')}")
                    for (key, label), number in zip(SAMPLING_LABELS.items(), first_numbers)
                }
        variants_note = gr.Markdown(first_note)
        save = gr.Button("Save", variant="primary", elem_id="preset-save")

    with gr.Accordion("Import a preset", open=False):
        upload = gr.UploadButton("Upload a .yaml file", file_types=[".yaml", ".yml"], type="filepath")
        pasted = gr.Textbox(label="…or paste its YAML", lines=8, elem_id="preset-paste")
        import_pasted = gr.Button("Import pasted YAML", elem_id="preset-import")

    editor_outputs = [editing, editor_title, name, description, system, *sampling_fields.values(), variants_note]
    list_outputs = [table, choice, load_errors, export]

    def list_updates(selected: str | None) -> list[Any]:
        """Fresh table, dropdown, error list and download file, with ``selected`` picked."""
        current = presets.names()
        if selected not in current:
            selected = current[0] if current else None
        export_path = _export_path(selected)
        return [presets.table(), gr.update(choices=current, value=selected),
                _errors_markdown(presets.errors()), export_path]

    def _export_path(selected: str | None) -> str | None:
        if selected is None:
            return None
        try:
            return str(presets.export_file(selected))
        except PresetError as exc:
            log.warning("cannot export preset %r: %s", selected, exc)
            return None

    def pick(selected: str | None) -> list[Any]:
        return [_export_path(selected), *editor_values(presets, selected)]

    choice.change(pick, [choice], [export, *editor_outputs], queue=False)

    def refresh() -> list[Any]:
        """On each page load, as files may have been added by hand since start-up.

        Only the list changes: the picked preset and the editor are left alone, so a load that
        finishes late never overwrites what the user has started typing.
        """
        return [presets.table(), gr.update(choices=presets.names()), _errors_markdown(presets.errors())]

    gr.on(None, refresh, None, [table, choice, load_errors], queue=False)

    def pick_row(event: gr.SelectData) -> Any:
        row = event.row_value or []
        return row[0] if row else gr.update()

    table.select(pick_row, None, [choice], queue=False)

    # -- apply to the chat --

    def apply_preset(selected: str | None) -> list[Any]:
        if not selected:
            return [gr.update()] * (1 + len(chat_sliders)) + ["Pick a preset first."]
        try:
            applied = presets.apply(selected)
        except PresetError as exc:
            return [gr.update()] * (1 + len(chat_sliders)) + [f"**Could not apply:** {exc}"]
        values, moved = clamp_sampling(applied.sampling, slider_ranges)
        message = applied.message()
        if moved:
            message += f" Fitted to the chat's ranges: {', '.join(SAMPLING_LABELS[m] for m in moved)}."
        slider_updates = [values.get(key, gr.update()) for key in chat_sliders]
        return [applied.system_prompt, *slider_updates, message]

    apply.click(apply_preset, [choice], [chat.system_prompt, *chat_sliders.values(), status], queue=False)

    def apply_sampling(key: str):
        def handler() -> list[Any]:
            values, _ = clamp_sampling(SAMPLING_PRESETS[key], slider_ranges)
            updates = [values.get(field, gr.update()) for field in chat_sliders]
            return [*updates, f"Applied the **{key}** sampling settings to the chat."]
        return handler

    for key, button in sampling_buttons.items():
        button.click(apply_sampling(key), None, [*chat_sliders.values(), status], queue=False)

    # -- create, save, duplicate, delete --

    new.click(lambda: editor_values(presets, None) + ["Write the new preset below, then press Save."],
              None, [*editor_outputs, status], queue=False)

    def save_preset(original: str | None, new_name: str, new_description: str, new_system: str,
                    *numbers: float | None) -> list[Any]:
        sampling = sampling_from_fields(dict(zip(sampling_fields, numbers)))
        try:
            saved, message = presets.save(original, name=new_name, description=new_description,
                                          system=new_system, sampling=sampling)
        except PresetError as exc:
            return [gr.update()] * (len(list_outputs) + len(editor_outputs)) + [f"**Not saved:** {exc}"]
        return [*list_updates(saved.name), *editor_values(presets, saved.name), message]

    save.click(save_preset, [editing, name, description, system, *sampling_fields.values()],
               [*list_outputs, *editor_outputs, status], queue=False)

    def duplicate_preset(selected: str | None) -> list[Any]:
        if not selected:
            return [gr.update()] * len(list_outputs) + ["Pick a preset first."]
        try:
            copy = presets.duplicate(selected)
        except PresetError as exc:
            return [gr.update()] * len(list_outputs) + [f"**Not duplicated:** {exc}"]
        return [*list_updates(copy.name), f"Saved a copy of '{selected}' as '{copy.name}'."]

    duplicate.click(duplicate_preset, [choice], [*list_outputs, status], queue=False)

    def ask_delete(selected: str | None) -> list[Any]:
        if not selected:
            return [gr.update(visible=False), "", "Pick a preset first."]
        try:
            preset = presets.get(selected)
        except PresetError as exc:
            return [gr.update(visible=False), "", str(exc)]
        if preset.builtin:
            return [gr.update(visible=False), "",
                    f"'{preset.name}' is built in and cannot be deleted; duplicate it to make your own."]
        return [gr.update(visible=True), f"Delete **{preset.name}** for good?", ""]

    delete.click(ask_delete, [choice], [confirm_row, confirm_text, status], queue=False)

    def delete_preset(selected: str | None) -> list[Any]:
        try:
            message = presets.delete(selected or "")
        except PresetError as exc:
            return [gr.update(visible=False), *([gr.update()] * len(list_outputs)), f"**Not deleted:** {exc}"]
        return [gr.update(visible=False), *list_updates(selected), message]

    confirm_delete.click(delete_preset, [choice], [confirm_row, *list_outputs, status], queue=False)
    cancel_delete.click(lambda: gr.update(visible=False), None, [confirm_row], queue=False)

    # -- import --

    def imported(result: Any, source: str) -> list[Any]:
        try:
            preset = result()
        except (PresetError, UploadRejected) as exc:
            return [gr.update()] * len(list_outputs) + [gr.update(), f"**Not imported:** {exc}"]
        return [*list_updates(preset.name), "", f"Imported '{preset.name}' from {source}."]

    import_pasted.click(
        lambda text: imported(lambda: presets.import_text(text), "the pasted YAML"),
        [pasted], [*list_outputs, pasted, status], queue=False,
    )
    upload.upload(
        lambda path: imported(lambda: presets.import_file(uploaded_paths(path)[0]), "the uploaded file"),
        [upload], [*list_outputs, pasted, status], queue=False,
    )
