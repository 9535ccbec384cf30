"""The Presets tab's actions: apply a preset for the loaded model, edit, import, export."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from webui.engine import (
    Engine,
    ModelInfo,
)
from webui.prompts.presets import (
    Preset,
    PresetError,
    PresetStore,
    SamplingSettings,
    file_stem,
    parse_preset,
)
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
    """The Presets tab's actions over the store, with the loaded model for variants."""

    def __init__(self, store: PresetStore, engine: Engine) -> None:
        self.store = store
        self._engine = engine
        self._export_dir: Path | None = None

    def builtin_names(self) -> set[str]:
        """Case-folded names of the presets shipped with the package."""
        names = set()
        for path in sorted(self.store.builtin_dir.glob("*.y*ml")):
            try:
                names.add(parse_preset(path.read_text("utf-8"), source=path.name).name.casefold())
            except (PresetError, OSError):
                continue  # store.errors() reports it
        return names

    def table(self) -> list[list[str]]:
        """Rows of (name, description, kind) for the list of presets."""
        builtins = self.builtin_names()
        rows = []
        for preset in self.store.list():
            if preset.builtin:
                kind = "built-in"
            elif preset.name.casefold() in builtins:
                kind = "mine (edited built-in)"
            else:
                kind = "mine"
            rows.append([preset.name, preset.description, kind])
        return rows

    def names(self) -> list[str]:
        return [p.name for p in self.store.list()]

    def errors(self) -> list[str]:
        return self.store.errors()

    def get(self, name: str) -> Preset:
        return self.store.get(name)

    def apply(self, name: str) -> AppliedPreset:
        """Preset ``name`` resolved for the model loaded now."""
        return applied_preset(self.store.get(name), self._engine.info)

    def save(
        self,
        original: str | None,
        *,
        name: str,
        description: str,
        system: str,
        sampling: SamplingSettings,
    ) -> tuple[Preset, str]:
        """Save the editor's fields over ``original`` (None: a new preset); returns a message.

        Variants of the original are kept: the editor does not show them. A built-in is never
        written to: the store saves the user's copy, which the message says.
        """
        name = (name or "").strip()
        if not name:
            raise PresetError("give the preset a name")
        source = self.store.get(original) if original else None
        renamed_or_new = source is None or source.name.casefold() != name.casefold()
        if renamed_or_new and name.casefold() in {n.casefold() for n in self.names()}:
            raise PresetError(f"a preset named '{name}' already exists: choose another name")
        fields_ = dict(name=name, description=description.strip(), system=system.strip("\n"),
                       sampling=sampling)
        draft = dataclasses.replace(source, **fields_) if source else Preset(**fields_)
        saved = self.store.save(draft)
        if source is not None and source.builtin:
            return saved, (
                f"'{source.name}' is built in, so your changes were saved as your own copy"
                f" ({saved.path.name if saved.path else name}); the original is untouched."
            )
        return saved, f"Saved '{saved.name}'."

    def duplicate(self, name: str) -> Preset:
        """A user copy of preset ``name`` under the first free 'name (copy)'."""
        source = self.store.get(name)
        return self.store.duplicate(source.name, copy_name(source.name, self.names()))

    def delete(self, name: str) -> str:
        """Delete a user preset; returns the message (a deleted copy brings its built-in back)."""
        preset = self.store.get(name)
        self.store.delete(preset.name)
        if preset.name.casefold() in self.builtin_names():
            return f"Deleted your copy of '{preset.name}': the built-in one is back."
        return f"Deleted '{preset.name}'."

    def import_text(self, text: str, *, source: str = "pasted YAML") -> Preset:
        """Validate and save pasted or uploaded YAML as a new user preset."""
        if not (text or "").strip():
            raise PresetError(f"{source}: nothing to import")
        parse_preset(text, source=source)  # so an error names the file, not "imported preset"
        return self.store.import_yaml(text)

    def import_file(self, path: Path) -> Preset:
        """Import an uploaded .yaml file."""
        path = Path(path)
        if path.stat().st_size > MAX_PRESET_IMPORT_BYTES:
            raise PresetError(f"{path.name}: too large to be a preset ({path.stat().st_size} bytes)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"{path.name}: cannot be read as UTF-8 text ({exc})") from exc
        return self.import_text(text, source=path.name)

    def export_file(self, name: str) -> Path:
        """Write preset ``name``'s YAML to a temp file for the browser to download."""
        text = self.store.export_yaml(name)
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="webui-presets-"))
        target = self._export_dir / f"{file_stem(self.store.get(name).name)}.yaml"
        target.write_text(text, encoding="utf-8")  # a throwaway copy: no atomic write needed
        return target


