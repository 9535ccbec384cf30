"""The Presets tab: list, apply, create, edit, duplicate, delete, import and export presets.

:class:`PresetHandlers` holds what the events do, over PresetService (which decides who may write
what); :func:`build_presets_tab` only lays out the components and wires them to those handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from webui.services import NotAuthorized, PresetService, Services
from webui.services.presets import SAMPLING_FIELDS, clamp_sampling, sampling_from_fields
from webui.services.types import ALLOWED_VARIABLES, SAMPLING_PRESETS, Preset, PresetError, User
from webui.ui.chat import ChatControls
from webui.ui.feedback import as_user, handled
from webui.ui.forms import with_form
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


def errors_markdown(errors: list[str]) -> str:
    """The preset files that could not be read, each with why; empty when all were read."""
    if not errors:
        return ""
    lines = "\n".join(f"- {error}" for error in errors)
    return f"**Some preset files could not be loaded** (the others work):\n{lines}"


@dataclass(frozen=True)
class PresetEditor:
    """What the editor shows for one preset (or a new one), in the order of the editor's outputs."""

    editing: str | None  # the preset being edited; None while writing a new one
    title: str
    name: str = ""
    description: str = ""
    system: str = ""
    sampling: tuple[float | int | None, ...] = (None,) * len(SAMPLING_LABELS)  # in SAMPLING_LABELS' order
    note: str = ""  # about the variants the editor does not show
    shared: bool = False

    def outputs(self) -> list[Any]:
        return [self.editing, self.title, self.name, self.description, self.system, *self.sampling, self.note,
                self.shared]


NEW_PRESET = PresetEditor(editing=None, title="#### New preset")


@dataclass(frozen=True)
class PresetForm:
    """The editor's fields as Save sends them, in the order of its inputs; blank numbers stay unset."""

    original: str | None  # the preset being edited; None for a new one
    name: str
    description: str
    system: str
    shared: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: float | None = None

    def sampling_values(self) -> dict[str, float | None]:
        return {key: getattr(self, key) for key in SAMPLING_LABELS}


# The outputs' sizes: the list (table, dropdown, error list, export file) and the editor.
LIST_OUTPUTS = 4
EDITOR_OUTPUTS = len(NEW_PRESET.outputs())


def _unchanged(count: int) -> list[Any]:
    return [gr.update()] * count


def pick_row(event: gr.SelectData) -> Any:
    """A click on a table row picks that preset in the dropdown (whose change fills the editor)."""
    row = event.row_value or []
    return row[0] if row else gr.update()


class PresetHandlers:
    """What the tab's events do, for a user name and the form's values (testable without a page).

    ``slider_ranges`` are the chat's sampling sliders' (minimum, maximum), by field in SAMPLING_FIELDS'
    order: what a preset applies is fitted into them.
    """

    def __init__(self, services: Services, slider_ranges: Mapping[str, tuple[float, float]]) -> None:
        self.services = services
        self.presets: PresetService = services.preset_actions
        self.team = services.auth_required
        self.slider_ranges = dict(slider_ranges)

    def user(self, username: str | None) -> User:
        """The signed-in user; a signed-out caller's event fails with the sentence to log in again."""
        try:
            return self.services.user(username)
        except NotAuthorized as exc:
            raise gr.Error(str(exc)) from exc

    # -- what the list and the editor show --

    def editor(self, selected: str | None, user: User | None = None) -> PresetEditor:
        """The editor for preset ``selected`` in the user's view (None, or one gone: a new preset)."""
        if not selected:
            return NEW_PRESET
        try:
            preset = self.presets.get(selected, user)
        except PresetError:
            return NEW_PRESET
        note = ""
        if preset.variants:
            count = len(preset.variants)
            note = (f"This preset has {count} model-specific prompt variant{'s' if count > 1 else ''}: "
                    "they are kept when you save; change them by exporting, editing and importing the YAML.")
        return PresetEditor(
            editing=preset.name, title=f"#### Editing '{preset.name}'" + self._editing_note(preset, user),
            name=preset.name, description=preset.description, system=preset.system,
            sampling=tuple(getattr(preset.sampling, key) for key in SAMPLING_LABELS), note=note,
            shared=preset.owner is None)

    def _editing_note(self, preset: Preset, user: User | None) -> str:
        """What saving this preset will do, when it is not simply saved in place."""
        if preset.builtin:
            where = "a shared copy" if self.presets.owner(user) and user and user.is_admin else "your own copy"
            return f" (built in: saving stores {where}, the original stays as it is)"
        if preset.owner is None and self.presets.owner(user) and not (user and user.is_admin):
            return " (shared: saving stores your own copy, the original stays as it is)"
        return ""

    def export_path(self, selected: str | None, user: User | None = None) -> str | None:
        """The file Export downloads for ``selected``; None (no file) when there is nothing to export."""
        if selected is None:
            return None
        try:
            return str(self.presets.export_file(selected, user))
        except PresetError as exc:
            log.warning("cannot export preset %r: %s", selected, exc)
            return None

    def list_updates(self, selected: str | None, user: User) -> list[Any]:
        """Fresh table, dropdown, error list and download file, with ``selected`` picked."""
        current = self.presets.names(user)
        if selected not in current:
            selected = current[0] if current else None
        return [self.presets.table(user), gr.update(choices=current, value=selected),
                errors_markdown(self.presets.errors(user)), self.export_path(selected, user)]

    def pick(self, username: str | None, selected: str | None) -> list[Any]:
        """The picked preset in the editor, and its file behind Export."""
        user = self.user(username)
        return [self.export_path(selected, user), *self.editor(selected, user).outputs()]

    def refresh(self, username: str | None) -> list[Any]:
        """On each page load: this user's list (files may also have been added by hand since start-up).

        Only the list changes: the picked preset (shared, so in every user's list) and the editor
        are left alone, so a load that finishes late never overwrites what the user has started typing.
        The "shared" box is for admins in team mode.
        """
        user = self.user(username)
        return [self.presets.table(user), gr.update(choices=self.presets.names(user)),
                errors_markdown(self.presets.errors(user)), gr.update(visible=self.team and user.is_admin)]

    # -- apply to the chat: the system prompt, then one value per sampling slider, then the status --

    @handled("Applying a preset", lambda message: [*_unchanged(1 + len(SAMPLING_FIELDS)),
                                                   f"**Could not apply:** {message}"])
    def apply_preset(self, username: str | None, selected: str | None) -> list[Any]:
        user = self.user(username)
        if not selected:
            return [*_unchanged(1 + len(SAMPLING_FIELDS)), "Pick a preset first."]
        applied = self.presets.apply(selected, user)
        values, moved = clamp_sampling(applied.sampling, self.slider_ranges)
        message = applied.message()
        if moved:
            message += f" Fitted to the chat's ranges: {', '.join(SAMPLING_LABELS[m] for m in moved)}."
        return [applied.system_prompt, *(values.get(key, gr.update()) for key in SAMPLING_FIELDS), message]

    def apply_preset_to_chat(self, username: str | None, selected: str | None, applied: str | None) -> list[Any]:
        """``apply_preset``, then the name of the preset the chat now uses (``applied`` when none was)."""
        values = self.apply_preset(username, selected)
        took = isinstance(values[0], str)  # the preset's system prompt; an update when it was not applied
        return [*values, selected if took else applied]

    def apply_sampling(self, username: str | None, key: str) -> list[Any]:
        """One of SAMPLING_PRESETS' settings on the chat's sliders (the prompt is left alone)."""
        self.user(username)
        values, _ = clamp_sampling(SAMPLING_PRESETS[key], self.slider_ranges)
        return [*(values.get(field, gr.update()) for field in SAMPLING_FIELDS),
                f"Applied the **{key}** sampling settings to the chat."]

    def sampling_event(self, key: str) -> Callable[[str | None], list[Any]]:
        """``apply_sampling`` for one button, as a handler of the user name alone."""
        def apply_sampling(username: str | None) -> list[Any]:
            return self.apply_sampling(username, key)

        return apply_sampling

    # -- create, save, duplicate, delete --

    def new_preset(self, username: str | None) -> list[Any]:
        self.user(username)
        return [*NEW_PRESET.outputs(), "Write the new preset below, then press Save."]

    @handled("Saving a preset", lambda message: [*_unchanged(LIST_OUTPUTS + EDITOR_OUTPUTS),
                                                 f"**Not saved:** {message}"])
    def save_preset(self, username: str | None, form: PresetForm) -> list[Any]:
        """Save the editor (outputs: the list, the editor, the status); the "shared" box counts for admins
        in team mode only, elsewhere the service decides."""
        user = self.user(username)
        saved, message = self.presets.save(
            user, form.original, name=form.name, description=form.description, system=form.system,
            sampling=sampling_from_fields(form.sampling_values()),
            shared=bool(form.shared) if self.team and user.is_admin else None)
        return [*self.list_updates(saved.name, user), *self.editor(saved.name, user).outputs(), message]

    @handled("Duplicating a preset", lambda message: [*_unchanged(LIST_OUTPUTS), f"**Not duplicated:** {message}"])
    def duplicate_preset(self, username: str | None, selected: str | None) -> list[Any]:
        user = self.user(username)
        if not selected:
            return [*_unchanged(LIST_OUTPUTS), "Pick a preset first."]
        copy = self.presets.duplicate(user, selected)
        return [*self.list_updates(copy.name, user), f"Saved a copy of '{selected}' as '{copy.name}'."]

    @handled("Asking to delete a preset", lambda message: [gr.update(visible=False), "", message])
    def ask_delete(self, username: str | None, selected: str | None) -> list[Any]:
        """The confirmation row, or why this preset cannot be deleted; outputs: row, question, status."""
        user = self.user(username)
        if not selected:
            return [gr.update(visible=False), "", "Pick a preset first."]
        preset = self.presets.get(selected, user)
        if preset.builtin:
            return [gr.update(visible=False), "",
                    f"'{preset.name}' is built in and cannot be deleted; duplicate it to make your own."]
        if preset.owner is None and not user.is_admin:
            return [gr.update(visible=False), "", f"'{preset.name}' is shared: only an admin can delete it."]
        return [gr.update(visible=True), f"Delete **{preset.name}** for good?", ""]

    @handled("Deleting a preset", lambda message: [gr.update(visible=False), *_unchanged(LIST_OUTPUTS),
                                                   f"**Not deleted:** {message}"])
    def delete_preset(self, username: str | None, selected: str | None) -> list[Any]:
        user = self.user(username)
        message = self.presets.delete(user, selected or "")
        return [gr.update(visible=False), *self.list_updates(selected, user), message]

    def cancel(self, username: str | None) -> Any:
        self.user(username)
        return gr.update(visible=False)

    # -- import: outputs are the list, the paste box (emptied once imported) and the status --

    @handled("Importing a preset", lambda message: [*_unchanged(LIST_OUTPUTS + 1), f"**Not imported:** {message}"])
    def import_text(self, username: str | None, text: str) -> list[Any]:
        user = self.user(username)
        preset, message = self.presets.import_text(user, text)
        return [*self.list_updates(preset.name, user), "", message]

    @handled("Importing a preset", lambda message: [*_unchanged(LIST_OUTPUTS + 1), f"**Not imported:** {message}"])
    def import_upload(self, username: str | None, path: str | Path | None) -> list[Any]:
        user = self.user(username)
        preset, message = self.presets.import_file(user, uploaded_paths(path)[0])
        return [*self.list_updates(preset.name, user), "", message]


def build_presets_tab(services: Services, chat: ChatControls) -> None:
    chat_sliders = [getattr(chat, name) for name in SAMPLING_FIELDS]
    handlers = PresetHandlers(services, {name: (s.minimum, s.maximum)
                                         for name, s in zip(SAMPLING_FIELDS, chat_sliders, strict=True)})
    presets = handlers.presets

    # The page is built before anyone signs in: it starts with the shared view, and each page
    # load fills in the signed-in user's own list (refresh below).
    gr.Markdown(INTRO)
    load_errors = gr.Markdown(errors_markdown(presets.errors()), elem_id="preset-errors")
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
    shown = handlers.editor(first)
    with gr.Row():
        choice = gr.Dropdown(names, value=first, label="Preset", scale=3,
                             elem_id="preset-choice")
        apply = gr.Button("Apply", variant="primary", scale=1, elem_id="preset-apply")
        new = gr.Button("New", scale=1, elem_id="preset-new")
        duplicate = gr.Button("Duplicate", scale=1, elem_id="preset-duplicate")
        delete = gr.Button("Delete", variant="stop", scale=1, elem_id="preset-delete")
        export = gr.DownloadButton("Export", value=handlers.export_path(first), scale=1, elem_id="preset-export")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm_delete = gr.Button("Yes, delete", variant="stop", size="sm", elem_id="preset-confirm-delete")
        cancel_delete = gr.Button("Cancel", size="sm")
    status = gr.Markdown(elem_id="preset-status")

    editing = gr.State(shown.editing)
    with gr.Group():
        editor_title = gr.Markdown(shown.title, elem_id="preset-editor-title")
        with gr.Row():
            name = gr.Textbox(shown.name, label="Name", max_lines=1, scale=1, elem_id="preset-name")
            description = gr.Textbox(shown.description, label="Description", max_lines=2, scale=2,
                                     elem_id="preset-description")
        system = gr.Textbox(shown.system, label="Preset system prompt", lines=6, elem_id="preset-system")
        with gr.Accordion("Sampling settings (leave blank to keep the chat's own)", open=False):
            with gr.Row():
                sampling_fields = [
                    gr.Number(number, label=label, elem_id=f"preset-{key.replace('_', '-')}")
                    for (key, label), number in zip(SAMPLING_LABELS.items(), shown.sampling, strict=True)
                ]
        variants_note = gr.Markdown(shown.note)
        # Shown to admins in team mode only (see refresh); everyone else's presets are their own.
        shared = gr.Checkbox(shown.shared, label="Shared with everyone (admins only)", visible=False,
                             elem_id="preset-shared")
        save = gr.Button("Save", variant="primary", elem_id="preset-save")

    with gr.Accordion("Import a preset", open=False):
        upload = gr.UploadButton("Upload a .yaml file", file_types=[".yaml", ".yml"], type="filepath")
        pasted = gr.Textbox(label="…or paste its YAML", lines=8, elem_id="preset-paste")
        import_pasted = gr.Button("Import pasted YAML", elem_id="preset-import")

    # In PresetEditor's and PresetForm's orders.
    editor = [editing, editor_title, name, description, system, *sampling_fields, variants_note, shared]
    listing = [table, choice, load_errors, export]

    choice.change(as_user(handlers.pick), [choice], [export, *editor], queue=False)
    gr.on(None, as_user(handlers.refresh), None, [table, choice, load_errors, shared], queue=False)
    table.select(pick_row, None, [choice], queue=False)
    apply.click(as_user(handlers.apply_preset_to_chat), [choice, chat.preset],
                [chat.system_prompt, *chat_sliders, status, chat.preset], queue=False,
                ).then(**chat.refresh_header)
    for key, button in sampling_buttons.items():
        button.click(as_user(handlers.sampling_event(key)), None, [*chat_sliders, status], queue=False)
    new.click(as_user(handlers.new_preset), None, [*editor, status], queue=False)
    save.click(as_user(with_form(handlers.save_preset, PresetForm)),
               [editing, name, description, system, shared, *sampling_fields], [*listing, *editor, status],
               queue=False)
    duplicate.click(as_user(handlers.duplicate_preset), [choice], [*listing, status], queue=False)
    delete.click(as_user(handlers.ask_delete), [choice], [confirm_row, confirm_text, status], queue=False)
    confirm_delete.click(as_user(handlers.delete_preset), [choice], [confirm_row, *listing, status], queue=False)
    cancel_delete.click(as_user(handlers.cancel), None, [confirm_row], queue=False)
    import_pasted.click(as_user(handlers.import_text), [pasted], [*listing, pasted, status], queue=False)
    upload.upload(as_user(handlers.import_upload), [upload], [*listing, pasted, status], queue=False)
