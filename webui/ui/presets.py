"""The Presets tab: list, apply, create, edit, duplicate, delete, import and export presets."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from webui.auth import User
from webui.prompts.presets import ALLOWED_VARIABLES, SAMPLING_PRESETS, Preset, PresetError
from webui.services import NotAuthorized, PresetService, Services
from webui.services.presets import SAMPLING_FIELDS, clamp_sampling, sampling_from_fields
from webui.ui.chat import ChatControls
from webui.ui.feedback import user_message
from webui.ui.uploads import uploaded_paths

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
    "Built-in presets are never changed: saving one stores a copy, and deleting that copy "
    "brings the built-in back. With accounts, you see the shared presets and your own; only an admin "
    "changes shared ones (yours are a copy). Prompts may use "
    + ", ".join(f"`{{{name}}}`" for name in ALLOWED_VARIABLES)
    + "."
)


def _errors_markdown(errors: list[str]) -> str:
    if not errors:
        return ""
    lines = "\n".join(f"- {error}" for error in errors)
    return f"**Some preset files could not be loaded** (the others work):\n{lines}"


def _editing_note(presets: PresetService, preset: Preset, user: User | None) -> str:
    """What saving this preset will do, when it is not simply saved in place."""
    if preset.builtin:
        where = "a shared copy" if presets.owner(user) and user and user.is_admin else "your own copy"
        return f" (built in: saving stores {where}, the original stays as it is)"
    if preset.owner is None and presets.owner(user) and not (user and user.is_admin):
        return " (shared: saving stores your own copy, the original stays as it is)"
    return ""


def editor_values(presets: PresetService, selected: str | None, user: User | None = None) -> list[Any]:
    """The editor's values for preset ``selected`` in the user's view (None: an empty new preset)."""
    if not selected:
        return [None, "#### New preset", "", "", "", *([None] * len(SAMPLING_LABELS)), "", False]
    try:
        preset = presets.get(selected, user)
    except PresetError:
        return editor_values(presets, None, user)
    title = f"#### Editing '{preset.name}'" + _editing_note(presets, preset, user)
    note = ""
    if preset.variants:
        count = len(preset.variants)
        note = (f"This preset has {count} model-specific prompt variant{'s' if count > 1 else ''}: "
                "they are kept when you save; change them by exporting, editing and importing the YAML.")
    values = [getattr(preset.sampling, key) for key in SAMPLING_LABELS]
    shared = preset.owner is None
    return [preset.name, title, preset.name, preset.description, preset.system, *values, note, shared]


def build_presets_tab(services: Services, chat: ChatControls) -> None:
    presets: PresetService = services.preset_actions
    team = services.auth_required
    chat_sliders = {name: getattr(chat, name) for name in SAMPLING_FIELDS}
    slider_ranges = {name: (s.minimum, s.maximum) for name, s in chat_sliders.items()}

    def caller(request: gr.Request) -> User:
        """The signed-in user, through the one helper every handler uses; refused otherwise."""
        try:
            return services.user(request.username)
        except NotAuthorized as exc:
            raise gr.Error(str(exc)) from exc

    # The page is built before anyone signs in: it starts with the shared view, and each page
    # load fills in the signed-in user's own list (refresh below).
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
    first_numbers, first_note, first_shared = rest[:-2], rest[-2], rest[-1]
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
        # Shown to admins in team mode only (see refresh); everyone else's presets are their own.
        shared = gr.Checkbox(first_shared, label="Shared with everyone (admins only)", visible=False,
                             elem_id="preset-shared")
        save = gr.Button("Save", variant="primary", elem_id="preset-save")

    with gr.Accordion("Import a preset", open=False):
        upload = gr.UploadButton("Upload a .yaml file", file_types=[".yaml", ".yml"], type="filepath")
        pasted = gr.Textbox(label="…or paste its YAML", lines=8, elem_id="preset-paste")
        import_pasted = gr.Button("Import pasted YAML", elem_id="preset-import")

    editor_outputs = [editing, editor_title, name, description, system, *sampling_fields.values(), variants_note,
                      shared]
    list_outputs = [table, choice, load_errors, export]

    def list_updates(selected: str | None, user: User) -> list[Any]:
        """Fresh table, dropdown, error list and download file, with ``selected`` picked."""
        current = presets.names(user)
        if selected not in current:
            selected = current[0] if current else None
        return [presets.table(user), gr.update(choices=current, value=selected),
                _errors_markdown(presets.errors(user)), _export_path(selected, user)]

    def _export_path(selected: str | None, user: User) -> str | None:
        if selected is None:
            return None
        try:
            return str(presets.export_file(selected, user))
        except PresetError as exc:
            log.warning("cannot export preset %r: %s", selected, exc)
            return None

    def pick(selected: str | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        return [_export_path(selected, user), *editor_values(presets, selected, user)]

    choice.change(pick, [choice], [export, *editor_outputs], queue=False)

    def refresh(request: gr.Request) -> list[Any]:
        """On each page load: this user's list (files may also have been added by hand since start-up).

        Only the list changes: the picked preset (shared, so in every user's list) and the editor
        are left alone, so a load that finishes late never overwrites what the user has started typing.
        """
        user = caller(request)
        return [presets.table(user), gr.update(choices=presets.names(user)), _errors_markdown(presets.errors(user)),
                gr.update(visible=team and user.is_admin)]

    gr.on(None, refresh, None, [table, choice, load_errors, shared], queue=False)

    def pick_row(event: gr.SelectData, request: gr.Request) -> Any:
        caller(request)
        row = event.row_value or []
        return row[0] if row else gr.update()

    table.select(pick_row, None, [choice], queue=False)

    # -- apply to the chat --

    def apply_preset(selected: str | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        if not selected:
            return [gr.update()] * (1 + len(chat_sliders)) + ["Pick a preset first."]
        try:
            applied = presets.apply(selected, user)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, "Applying a preset")
            return [gr.update()] * (1 + len(chat_sliders)) + [f"**Could not apply:** {message}"]
        values, moved = clamp_sampling(applied.sampling, slider_ranges)
        message = applied.message()
        if moved:
            message += f" Fitted to the chat's ranges: {', '.join(SAMPLING_LABELS[m] for m in moved)}."
        slider_updates = [values.get(key, gr.update()) for key in chat_sliders]
        return [applied.system_prompt, *slider_updates, message]

    apply.click(apply_preset, [choice], [chat.system_prompt, *chat_sliders.values(), status], queue=False)

    def apply_sampling(key: str):
        def handler(request: gr.Request) -> list[Any]:
            caller(request)
            values, _ = clamp_sampling(SAMPLING_PRESETS[key], slider_ranges)
            updates = [values.get(field, gr.update()) for field in chat_sliders]
            return [*updates, f"Applied the **{key}** sampling settings to the chat."]
        return handler

    for key, button in sampling_buttons.items():
        button.click(apply_sampling(key), None, [*chat_sliders.values(), status], queue=False)

    # -- create, save, duplicate, delete --

    def new_preset(request: gr.Request) -> list[Any]:
        user = caller(request)
        return editor_values(presets, None, user) + ["Write the new preset below, then press Save."]

    new.click(new_preset, None, [*editor_outputs, status], queue=False)

    # Named parameters, not *numbers: Gradio passes the request only to a parameter typed gr.Request.
    # They follow SAMPLING_LABELS' order, which is the order of sampling_fields' inputs.
    def save_preset(original: str | None, new_name: str, new_description: str, new_system: str, share: bool,
                    temperature: float | None, top_p: float | None, top_k: float | None, min_p: float | None,
                    repeat_penalty: float | None, max_tokens: float | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        sampling = sampling_from_fields(dict(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                             repeat_penalty=repeat_penalty, max_tokens=max_tokens))
        try:
            saved, message = presets.save(user, original, name=new_name, description=new_description,
                                          system=new_system, sampling=sampling,
                                          shared=bool(share) if team and user.is_admin else None)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, "Saving a preset")
            return [gr.update()] * (len(list_outputs) + len(editor_outputs)) + [f"**Not saved:** {message}"]
        return [*list_updates(saved.name, user), *editor_values(presets, saved.name, user), message]

    save.click(save_preset, [editing, name, description, system, shared, *sampling_fields.values()],
               [*list_outputs, *editor_outputs, status], queue=False)

    def duplicate_preset(selected: str | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        if not selected:
            return [gr.update()] * len(list_outputs) + ["Pick a preset first."]
        try:
            copy = presets.duplicate(user, selected)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, "Duplicating a preset")
            return [gr.update()] * len(list_outputs) + [f"**Not duplicated:** {message}"]
        return [*list_updates(copy.name, user), f"Saved a copy of '{selected}' as '{copy.name}'."]

    duplicate.click(duplicate_preset, [choice], [*list_outputs, status], queue=False)

    def ask_delete(selected: str | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        if not selected:
            return [gr.update(visible=False), "", "Pick a preset first."]
        try:
            preset = presets.get(selected, user)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return [gr.update(visible=False), "", user_message(exc, "Asking to delete a preset")]
        if preset.builtin:
            return [gr.update(visible=False), "",
                    f"'{preset.name}' is built in and cannot be deleted; duplicate it to make your own."]
        if preset.owner is None and not user.is_admin:
            return [gr.update(visible=False), "", f"'{preset.name}' is shared: only an admin can delete it."]
        return [gr.update(visible=True), f"Delete **{preset.name}** for good?", ""]

    delete.click(ask_delete, [choice], [confirm_row, confirm_text, status], queue=False)

    def delete_preset(selected: str | None, request: gr.Request) -> list[Any]:
        user = caller(request)
        try:
            message = presets.delete(user, selected or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, "Deleting a preset")
            return [gr.update(visible=False), *([gr.update()] * len(list_outputs)), f"**Not deleted:** {message}"]
        return [gr.update(visible=False), *list_updates(selected, user), message]

    confirm_delete.click(delete_preset, [choice], [confirm_row, *list_outputs, status], queue=False)

    def cancel(request: gr.Request) -> Any:
        caller(request)
        return gr.update(visible=False)

    cancel_delete.click(cancel, None, [confirm_row], queue=False)

    # -- import --

    def imported(user: User, result: Any) -> list[Any]:
        try:
            preset, message = result()
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, "Importing a preset")
            return [gr.update()] * len(list_outputs) + [gr.update(), f"**Not imported:** {message}"]
        return [*list_updates(preset.name, user), "", message]

    def import_text(text: str, request: gr.Request) -> list[Any]:
        user = caller(request)
        return imported(user, lambda: presets.import_text(user, text))

    def import_upload(path: Any, request: gr.Request) -> list[Any]:
        user = caller(request)
        return imported(user, lambda: presets.import_file(user, uploaded_paths(path)[0]))

    import_pasted.click(import_text, [pasted], [*list_outputs, pasted, status], queue=False)
    upload.upload(import_upload, [upload], [*list_outputs, pasted, status], queue=False)
