"""The Presets tab's actions: apply a preset for the loaded model, edit, import, export."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from webui.auth import User
from webui.engine import (
    Engine,
    ModelInfo,
)
from webui.prompts.presets import (
    Preset,
    PresetError,
    PresetStore,
    SamplingSettings,
    dump_preset,
    file_stem,
    parse_preset,
)
from webui.services.access import NotAuthorized
from webui.prompts.templates import FAMILY_FORMATS, family_from_metadata

log = logging.getLogger(__name__)


SAMPLING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SamplingSettings))
_WHOLE_NUMBER_FIELDS = frozenset({"top_k", "max_tokens"})
MAX_PRESET_IMPORT_BYTES = 256 * 1024  # a preset is a few hundred bytes; anything this big is not one


def model_family(info: ModelInfo | None) -> str | None:
    """The family a preset's variants are matched against for the loaded model.

    The chat format in use wins when it names a family (the user's override, or the family the
    engine picked); a file with its own template gets the family of its metadata and name.
    """
    if info is None:
        return None
    if info.chat_format in FAMILY_FORMATS:
        return info.chat_format
    return family_from_metadata(info.metadata, info.file)


def copy_name(name: str, taken: Iterable[str]) -> str:
    """'X (copy)', then 'X (copy 2)', ...: the first name that no preset uses yet."""
    used = {t.casefold() for t in taken}
    candidate = f"{name} (copy)"
    number = 2
    while candidate.casefold() in used:
        candidate = f"{name} (copy {number})"
        number += 1
    return candidate


def sampling_from_fields(values: Mapping[str, float | int | None]) -> SamplingSettings:
    """Editor fields to settings: a blank field stays unset; top-k and max tokens become ints.

    A fractional top-k is passed through unchanged so the store's validation names the problem.
    """
    settings: dict[str, float | int] = {}
    for name in SAMPLING_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        if name in _WHOLE_NUMBER_FIELDS and float(value).is_integer():
            value = int(value)
        settings[name] = value
    return SamplingSettings(**settings)  # type: ignore[arg-type]


def clamp_sampling(
    sampling: SamplingSettings, ranges: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, float | int], list[str]]:
    """The preset's set values fitted into the controls' ranges, and the names that had to move.

    A preset may allow wider values than a slider shows (temperature 3, max tokens 8000); the
    chat would refuse an out-of-range slider value, so it is clamped and the user is told.
    """
    values: dict[str, float | int] = {}
    moved: list[str] = []
    for name, value in sampling.as_dict().items():
        low, high = ranges.get(name, (value, value))
        fitted = min(max(value, low), high)
        if fitted != value:
            moved.append(name)
        values[name] = type(value)(fitted)
    return values, moved


@dataclass(frozen=True)
class AppliedPreset:
    """What applying a preset sets in the chat, and for which model it was chosen."""

    name: str
    system_prompt: str
    sampling: SamplingSettings
    family: str | None
    model_file: str | None
    variant: bool  # a model-specific variant of the prompt was chosen

    def message(self) -> str:
        """One sentence for the user saying what was applied."""
        text = f"Applied '{self.name}' to the chat"
        if self.variant:
            text += f" (its variant for {self.model_file}, {self.family or 'unknown'} family)"
        elif self.model_file is None:
            text += " (no model is loaded: the default prompt was used)"
        settings = ", ".join(f"{k} {v}" for k, v in self.sampling.as_dict().items())
        return f"{text}. Sampling: {settings or 'unchanged'}."


def applied_preset(preset: Preset, info: ModelInfo | None) -> AppliedPreset:
    """The system prompt variant for ``info``'s model, with {date}, {time} and {model} filled.

    {question} and {context} stay as written: they are known only when a message is sent.
    """
    family = model_family(info)
    architecture = info.architecture if info else None
    model_name = f"{info.file} {info.name}" if info else ""
    system = preset.system_for(family=family, architecture=architecture, model_name=model_name)
    filled = preset.fill(
        system, question="{question}", context="{context}", model=info.file if info else ""
    )
    return AppliedPreset(
        name=preset.name,
        system_prompt=filled,
        sampling=preset.sampling,
        family=family,
        model_file=info.file if info else None,
        variant=system != preset.system,
    )


class PresetService:
    """The Presets tab's actions over the store, for one user at a time, with the loaded model.

    In team mode each user sees the shared presets plus their own, writes their own, and only an
    admin writes shared ones. In single-user mode the one user is the admin of a shared store,
    which is how presets were kept before they had owners. Reads take ``user=None`` for the shared
    view (what everyone sees); writes always name the user.
    """

    def __init__(self, store: PresetStore, engine: Engine, *, team: bool = False) -> None:
        self.store = store
        self._engine = engine
        self._team = team
        self._export_dir: Path | None = None

    def owner(self, user: User | None) -> str | None:
        """Whose private presets the user's view adds; None in single-user mode (all is shared)."""
        return user.id if user is not None and self._team else None

    def builtin_names(self) -> set[str]:
        """Case-folded names of the presets shipped with the package."""
        names = set()
        for path in sorted(self.store.builtin_dir.glob("*.y*ml")):
            try:
                names.add(parse_preset(path.read_text("utf-8"), source=path.name).name.casefold())
            except (PresetError, OSError):
                continue  # store.errors() reports it
        return names

    def kind(self, preset: Preset) -> str:
        """How the list shows who a preset belongs to."""
        if preset.builtin:
            return "built-in"
        if not self._team:
            return "mine (edited built-in)" if preset.name.casefold() in self.builtin_names() else "mine"
        if preset.owner is None:
            edited = preset.name.casefold() in self.builtin_names()
            return "shared (edited built-in)" if edited else "shared"
        if preset.name.casefold() in self._shared_names():
            return "mine (hides a shared one)"
        return "mine"

    def table(self, user: User | None = None) -> list[list[str]]:
        """Rows of (name, description, kind) for the list of presets."""
        return [[p.name, p.description, self.kind(p)] for p in self.store.list(self.owner(user))]

    def names(self, user: User | None = None) -> list[str]:
        return [p.name for p in self.store.list(self.owner(user))]

    def errors(self, user: User | None = None) -> list[str]:
        return self.store.errors(self.owner(user))

    def get(self, name: str, user: User | None = None) -> Preset:
        return self.store.get(name, self.owner(user))

    def apply(self, name: str, user: User | None = None) -> AppliedPreset:
        """Preset ``name`` resolved for the model loaded now."""
        return applied_preset(self.get(name, user), self._engine.info)

    def save(
        self,
        user: User,
        original: str | None,
        *,
        name: str,
        description: str,
        system: str,
        sampling: SamplingSettings,
        shared: bool | None = None,
    ) -> tuple[Preset, str]:
        """Save the editor's fields over ``original`` (None: a new preset); returns a message.

        ``shared`` (admins, team mode) writes a shared preset; None keeps the original's scope, and
        a new preset is private. Variants of the original are kept: the editor does not show them.
        A built-in is never written to, nor is a shared preset by a plain user: a copy is saved,
        which the message says, under another name where the copy would hide the original.
        """
        name = (name or "").strip()
        if not name:
            raise PresetError("give the preset a name")
        source = self.get(original, user) if original else None
        if shared is None:
            shared = not self._team or (user.is_admin and source is not None and source.owner is None)
        if shared and not user.is_admin:
            raise NotAuthorized("Only an admin can change shared presets.")
        owner = None if shared else self.owner(user)
        taken = {n.casefold() for n in self.names(user)}
        renamed_or_new = source is None or source.name.casefold() != name.casefold()
        if renamed_or_new and name.casefold() in taken:
            raise PresetError(f"a preset named '{name}' already exists: choose another name")
        if owner is not None and name.casefold() in self._shared_names():
            name = copy_name(name, taken)  # a private copy must not hide the shared original
        fields_ = dict(name=name, description=description.strip(), system=system.strip("\n"),
                       sampling=sampling)
        draft = dataclasses.replace(source, **fields_) if source else Preset(**fields_)
        saved = self.store.save(draft, owner)
        if source is not None and source.owner is not None and owner is None and source.path:
            source.path.unlink(missing_ok=True)  # an admin shared a private preset: it moved
        return saved, self._saved_message(source, saved)

    def _saved_message(self, source: Preset | None, saved: Preset) -> str:
        """What a save did: in place, shared a private preset, or kept the original and copied it."""
        everyone = " for everyone" if self._team and saved.owner is None else ""
        if source is None or (source.owner == saved.owner and not source.builtin):
            return f"Saved '{saved.name}'{everyone}."
        if source.owner is not None:
            return f"Saved '{saved.name}' as a shared preset: everyone sees it now."
        if saved.owner is None:  # an admin (or the single user) edited a built-in
            who = "a shared copy that everyone now uses" if self._team else "your own copy"
            file_name = saved.path.name if saved.path else saved.name
            return (f"'{source.name}' is built in, so your changes were saved as {who}"
                    f" ({file_name}); the original is untouched.")
        kind = "built in" if source.builtin else "shared"
        return (f"'{source.name}' is {kind}, so your changes were saved as your own copy"
                f" '{saved.name}'; the original is untouched.")

    def duplicate(self, user: User, name: str) -> Preset:
        """A copy of preset ``name`` under the first free 'name (copy)', private in team mode."""
        owner = self.owner(user)
        if owner is None and not user.is_admin:
            raise NotAuthorized("Only an admin can change shared presets.")
        source = self.get(name, user)
        return self.store.duplicate(source.name, copy_name(source.name, self.names(user)), owner)

    def delete(self, user: User, name: str) -> str:
        """Delete one of the user's presets, or a shared one for an admin; returns the message."""
        preset = self.get(name, user)
        if preset.owner is None and not preset.builtin and not user.is_admin:
            raise NotAuthorized(f"'{preset.name}' is shared: only an admin can delete it.")
        self.store.delete(preset.name, preset.owner)
        if preset.owner is None and preset.name.casefold() in self.builtin_names():
            mine = "your copy" if not self._team else "the shared copy"
            return f"Deleted {mine} of '{preset.name}': the built-in one is back."
        return f"Deleted '{preset.name}'."

    def import_text(self, user: User, text: str, *, source: str = "pasted YAML") -> tuple[Preset, str]:
        """Validate pasted or uploaded YAML and save it as the user's preset; returns a message.

        In team mode an imported preset is private; one named like a built-in or shared preset is
        saved under a new name (and the message says so) rather than hiding that preset.
        """
        if not (text or "").strip():
            raise PresetError(f"{source}: nothing to import")
        preset = parse_preset(text, source=source)  # so an error names the file, not "imported preset"
        owner = self.owner(user)
        if owner is None and not user.is_admin:
            raise NotAuthorized("Only an admin can change shared presets.")
        if owner is None:
            saved = self.store.import_yaml(text)
            return saved, f"Imported '{saved.name}' from {source}."
        if preset.name.casefold() not in self._shared_names():
            saved = self.store.import_yaml(text, owner)
            return saved, f"Imported '{saved.name}' from {source}."
        new_name = copy_name(preset.name, self.names(user))
        saved = self.store.import_yaml(dump_preset(dataclasses.replace(preset, name=new_name)), owner)
        return saved, (f"Imported '{saved.name}' from {source}: a shared preset is already called"
                       f" '{preset.name}', so yours got a name of its own.")

    def import_file(self, user: User, path: Path) -> tuple[Preset, str]:
        """Import an uploaded .yaml file (see ``import_text``)."""
        path = Path(path)
        if path.stat().st_size > MAX_PRESET_IMPORT_BYTES:
            raise PresetError(f"{path.name}: too large to be a preset ({path.stat().st_size} bytes)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"{path.name}: cannot be read as UTF-8 text ({exc})") from exc
        return self.import_text(user, text, source=path.name)

    def export_file(self, name: str, user: User | None = None) -> Path:
        """Write preset ``name``'s YAML to a temp file for the browser to download.

        One folder per user: two users exporting presets of the same name at once must not get
        each other's file.
        """
        preset = self.get(name, user)
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="webui-presets-"))
        folder = self._export_dir / (self.owner(user) or "shared")
        folder.mkdir(exist_ok=True)
        target = folder / f"{file_stem(preset.name)}.yaml"
        target.write_text(dump_preset(preset), encoding="utf-8")  # a throwaway copy: no atomic write
        return target

    def _shared_names(self) -> set[str]:
        """Case-folded names of the built-in and shared presets."""
        return {p.name.casefold() for p in self.store.list(None)}
