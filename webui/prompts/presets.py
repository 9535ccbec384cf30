"""Presets: YAML files holding a system prompt, sampling settings and per-model variants.

A preset is one small YAML file a user can read and edit (``name``, ``description``, ``system``,
``sampling``, ``variants``). Built-ins ship with the package and are never written to; editing
one saves a copy in the data dir. Presets have owners: shared ones (written by admins) are seen by
everyone, private ones only by the user who made them (see ``PresetStore``).

The schema is checked by hand rather than with a validation library because it has six keys and
every error must name the file and the YAML line, which we read from PyYAML's node tree.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from webui.errors import UserError
from webui.quarantine import file_key, keep_aside

BUILTIN_DIR = Path(__file__).parent / "builtin"
PRESET_SUFFIXES = (".yaml", ".yml")
MAX_NAME_LENGTH = 80

# Placeholders a prompt may use, filled from the chat when it is sent.
ALLOWED_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "question": "the user's latest message",
        "context": "numbered passages retrieved from the user's documents",
        "date": "today's date (YYYY-MM-DD), so the model can answer 'what day is it'",
        "time": "the local time (HH:MM)",
        "model": "the loaded model's file name, so the assistant can say what it runs on",
    }
)

# "{name}" is a variable; "{{" and "}}" are literal braces. Anything else in braces (JSON, code)
# is left alone, which str.format would not do: that is why this is not str.format.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

_TOP_LEVEL_KEYS = ("name", "description", "system", "sampling", "variants")
_CONDITION_KEYS = ("family", "architecture", "name_contains")


class PresetError(UserError, ValueError):
    """A preset that cannot be read, validated, saved or found; the message says where and why."""


class PresetNotFoundError(PresetError, KeyError):
    """No preset has that name."""

    def __str__(self) -> str:  # KeyError would otherwise show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling values a preset sets; None leaves the model's or the user's value alone."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None

    def as_dict(self) -> dict[str, float | int]:
        """The values that are set, keyed as llama-cpp-python's create_completion names them."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if value is not None}


# (type, lowest, highest) for each sampling key; ints are not floats' subtype here on purpose.
_SAMPLING_RULES: Mapping[str, tuple[type, float, float]] = MappingProxyType(
    {
        "temperature": (float, 0.0, 5.0),
        "top_p": (float, 0.0, 1.0),
        "top_k": (int, 0, 1000),
        "min_p": (float, 0.0, 1.0),
        "repeat_penalty": (float, 0.5, 3.0),
        "max_tokens": (int, 1, 1_000_000),
    }
)

SAMPLING_PRESETS: Mapping[str, SamplingSettings] = MappingProxyType(
    {
        "precise": SamplingSettings(
            temperature=0.2, top_p=0.9, top_k=40, min_p=0.05, repeat_penalty=1.1
        ),
        "balanced": SamplingSettings(
            temperature=0.7, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1
        ),
        "creative": SamplingSettings(
            temperature=1.0, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.05
        ),
    }
)


@dataclass(frozen=True)
class Variant:
    """A system prompt for some models: every condition set must hold (its values are options)."""

    system: str
    family: tuple[str, ...] = ()
    architecture: tuple[str, ...] = ()
    name_contains: tuple[str, ...] = ()

    def matches(self, *, family: str | None, architecture: str | None, model_name: str) -> bool:
        """Whether this variant applies to the model; comparisons ignore case."""
        checks = (
            (self.family, lambda v: (family or "").casefold() == v.casefold()),
            (self.architecture, lambda v: (architecture or "").casefold() == v.casefold()),
            (self.name_contains, lambda v: v.casefold() in model_name.casefold()),
        )
        return all(any(test(v) for v in values) for values, test in checks if values)


@dataclass(frozen=True)
class Preset:
    """One preset as read from (or to be written to) a YAML file."""

    name: str
    description: str = ""
    system: str = ""
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    variants: tuple[Variant, ...] = ()
    builtin: bool = False
    path: Path | None = None
    owner: str | None = None  # the id of the user whose private preset this is; None: built-in or shared

    def system_for(self, *, family: str | None, architecture: str | None, model_name: str) -> str:
        """The system prompt for this model: the first matching variant's, else the default one."""
        for variant in self.variants:
            if variant.matches(family=family, architecture=architecture, model_name=model_name):
                return variant.system
        return self.system

    def fill(self, text: str, **variables: str) -> str:
        """Replace ``{question}``, ``{context}``, ``{date}``... in ``text``; unknown names raise."""
        unknown = sorted(set(variables) - set(ALLOWED_VARIABLES))
        if unknown:
            raise PresetError(f"preset '{self.name}': unknown variable(s) {', '.join(unknown)}")
        now = dt.datetime.now()
        values = {name: "" for name in ALLOWED_VARIABLES}
        values.update(date=now.date().isoformat(), time=now.strftime("%H:%M"))
        values.update(variables)

        def substitute(match: re.Match[str]) -> str:
            token, name = match.group(0), match.group(1)
            if name is None:
                return token[0]  # "{{" -> "{", "}}" -> "}"
            if name not in values:
                raise PresetError(
                    f"preset '{self.name}': unknown variable {{{name}}}; "
                    f"allowed: {', '.join('{' + v + '}' for v in ALLOWED_VARIABLES)}"
                )
            return values[name]

        return _PLACEHOLDER.sub(substitute, text)


def unknown_variables(text: str) -> list[str]:
    """Placeholder names in ``text`` that are not allowed, in order of appearance."""
    names = (m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None)
    return [name for name in names if name not in ALLOWED_VARIABLES]


# --- reading and writing YAML -------------------------------------------------------------------


def parse_preset(
    text: str, *, source: str, builtin: bool = False, path: Path | None = None
) -> Preset:
    """Validate YAML text and build a Preset; errors name ``source`` and the line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise PresetError(f"{source}{line}: not valid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise PresetError(f"{source}: not valid YAML: {exc}") from exc

    def fail(problem: str, *node_path: str | int) -> PresetError:
        return PresetError(f"{source}, line {_line_of(root, node_path)}: {problem}")

    if not isinstance(data, dict):
        raise fail("a preset must be a mapping with at least a 'name'")
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise fail(f"unknown key '{key}' (allowed: {', '.join(_TOP_LEVEL_KEYS)})", key)

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' must be a non-empty text", "name")
    name = name.strip()
    if "\n" in name or len(name) > MAX_NAME_LENGTH:
        raise fail(f"'name' must be one line of at most {MAX_NAME_LENGTH} characters", "name")

    description = _text(data, "description", fail)
    system = _text(data, "system", fail)
    if bad := unknown_variables(system):
        raise fail(_variables_problem(bad), "system")
    sampling = _sampling(data.get("sampling"), fail)
    variants = _variants(data.get("variants"), fail)
    return Preset(name, description, system, sampling, variants, builtin=builtin, path=path)


def dump_preset(preset: Preset) -> str:
    """The YAML text of a preset, with multi-line prompts as readable literal blocks."""
    data: dict[str, Any] = {"name": preset.name}
    if preset.description:
        data["description"] = preset.description
    data["system"] = preset.system
    if sampling := preset.sampling.as_dict():
        data["sampling"] = sampling
    if preset.variants:
        data["variants"] = [_variant_dict(v) for v in preset.variants]
    return yaml.dump(data, Dumper=_PresetDumper, sort_keys=False, allow_unicode=True, width=100)


class _PresetDumper(yaml.SafeDumper):
    """SafeDumper writing multi-line strings as ``|`` blocks (a subclass: no global change)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PresetDumper.add_representer(str, _represent_str)


def _variant_dict(variant: Variant) -> dict[str, Any]:
    when: dict[str, Any] = {}
    for key in _CONDITION_KEYS:
        values = getattr(variant, key)
        if values:
            when[key] = values[0] if len(values) == 1 else list(values)
    return {"when": when, "system": variant.system}


def _line_of(root: yaml.Node | None, node_path: Sequence[str | int]) -> int:
    """1-based line of the node at ``node_path`` (keys, list indexes), else of its parent."""
    node = root
    line = 1 if root is None else root.start_mark.line + 1
    for step in node_path:
        found = None
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == step), None)
            if found is None:  # the key itself, e.g. an unknown key
                found = next((k for k, _ in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            found = node.value[step] if step < len(node.value) else None
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


def _variables_problem(names: list[str]) -> str:
    allowed = ", ".join("{" + v + "}" for v in ALLOWED_VARIABLES)
    unknown = ", ".join("{" + n + "}" for n in names)
    return (
        f"unknown variable {unknown} (allowed: {allowed}; write {{{{ and }}}} for literal braces)"
    )


def _text(data: Mapping[str, Any], key: str, fail: Any, *path: str | int) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fail(f"'{key}' must be text", *path, key)
    return value.strip("\n")


def _sampling(value: Any, fail: Any) -> SamplingSettings:
    if value is None:
        return SamplingSettings()
    if isinstance(value, str):
        if value not in SAMPLING_PRESETS:
            names = ", ".join(SAMPLING_PRESETS)
            raise fail(f"unknown sampling preset '{value}' (use {names})", "sampling")
        return SAMPLING_PRESETS[value]
    if not isinstance(value, dict):
        raise fail("'sampling' must be a preset name or a mapping of settings", "sampling")
    settings: dict[str, float | int] = {}
    for key, number in value.items():
        if key not in _SAMPLING_RULES:
            allowed = ", ".join(_SAMPLING_RULES)
            raise fail(f"unknown sampling setting '{key}' (allowed: {allowed})", "sampling", key)
        kind, low, high = _SAMPLING_RULES[key]
        numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
        if not numeric or (kind is int and not isinstance(number, int)):
            wanted = "a whole number" if kind is int else "a number"
            raise fail(f"sampling '{key}' must be {wanted}", "sampling", key)
        if not low <= number <= high:
            problem = f"sampling '{key}' must be between {low} and {high}, not {number}"
            raise fail(problem, "sampling", key)
        settings[key] = kind(number)
    return SamplingSettings(**settings)  # type: ignore[arg-type]


def _variants(value: Any, fail: Any) -> tuple[Variant, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise fail("'variants' must be a list of {when: ..., system: ...}", "variants")
    variants = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"when", "system"}:
            raise fail("each variant needs exactly 'when' and 'system'", "variants", index)
        when = item["when"]
        if not isinstance(when, dict) or not when:
            problem = f"'when' must map some of {', '.join(_CONDITION_KEYS)} to values"
            raise fail(problem, "variants", index, "when")
        conditions: dict[str, tuple[str, ...]] = {}
        for key, wanted in when.items():
            if key not in _CONDITION_KEYS:
                problem = f"unknown condition '{key}' (allowed: {', '.join(_CONDITION_KEYS)})"
                raise fail(problem, "variants", index, "when", key)
            values = wanted if isinstance(wanted, list) else [wanted]
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                problem = f"condition '{key}' needs text or a list of texts"
                raise fail(problem, "variants", index, "when", key)
            conditions[key] = tuple(v.strip() for v in values)
        system = _text(item, "system", fail, "variants", index)
        if bad := unknown_variables(system):
            raise fail(_variables_problem(bad), "variants", index, "system")
        variants.append(Variant(system=system, **conditions))
    return tuple(variants)


def _atomic_write(path: Path, text: str) -> None:
    """Write a temp file in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_stem(name: str) -> str:
    """A file name stem for a preset name: lower case, words joined by dashes."""
    return re.sub(r"[^\w]+", "-", name.casefold()).strip("-_") or "preset"


# --- the store ----------------------------------------------------------------------------------

PRIVATE_DIR_NAME = "private"
# The user-name rule of webui.auth, checked again here because the name becomes a folder name.
_OWNER_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class _Scan:
    presets: dict[str, Preset]  # casefolded name -> preset; later scopes replace earlier ones
    errors: list[str]


class PresetStore:
    """Built-in presets (read-only package data), shared ones, and each user's private ones.

    Shared presets are the YAML files at the top of ``user_dir`` (the data dir's ``presets/``),
    where every preset lived before presets had owners, so files from then stay shared. A user's
    private presets live in ``private/<owner>/``, ``owner`` being the user's id. Each method takes the
    ``owner`` whose view it works on; ``None`` is the shared view (built-ins and shared presets only),
    which is also where ``None`` writes. In a view a shared file replaces a built-in of the same name.

    Every call reads the folders again: files are few and small, and a user may edit them by hand
    while the app runs.
    """

    def __init__(self, user_dir: Path, *, builtin_dir: Path = BUILTIN_DIR) -> None:
        self.user_dir = Path(user_dir)
        self.builtin_dir = Path(builtin_dir)

    @property
    def shared_dir(self) -> Path:
        return self.user_dir

    def private_dir(self, owner: str) -> Path:
        """The folder of ``owner``'s private presets (a user id, checked like a name, so a safe folder name)."""
        if not _OWNER_PATTERN.fullmatch(owner) or set(owner) == {"."}:
            raise PresetError(f"'{owner}' cannot own presets: not a valid user name")
        return self.user_dir / PRIVATE_DIR_NAME / owner

    def list(self, owner: str | None = None) -> list[Preset]:
        """Every usable preset in the view, sorted by name; malformed files are left out."""
        return sorted(self._scan(owner).presets.values(), key=lambda p: p.name.casefold())

    def errors(self, owner: str | None = None) -> list[str]:
        """One message per file of the view that could not be loaded, naming the file and line."""
        return self._scan(owner).errors

    def get(self, name: str, owner: str | None = None) -> Preset:
        """The preset called ``name`` (case-insensitive) in the view; PresetNotFoundError if none."""
        preset = self._scan(owner).presets.get(name.strip().casefold())
        if preset is None:
            raise PresetNotFoundError(f"no preset named '{name}'")
        return preset

    def save(self, preset: Preset, owner: str | None = None) -> Preset:
        """Write ``preset`` as a shared file (``owner`` None) or as ``owner``'s private one.

        A preset from another scope (a built-in, or a shared one saved privately) gets a copy. A
        private preset may not take the name of a built-in or shared one: in the owner's own view
        it would hide that preset without a trace.
        """
        stored = parse_preset(dump_preset(preset), source=f"preset '{preset.name}'")
        folder = self._folder(owner)
        target = folder / f"{file_stem(stored.name)}.yaml"
        previous = preset.path if _inside(preset.path, folder) else None
        if owner is not None:
            taken = self._scan(None).presets.get(stored.name.casefold())
            if taken is not None:
                kind = "built-in" if taken.builtin else "shared"
                raise PresetError(
                    f"'{taken.name}' is the name of a {kind} preset: give yours another name"
                )
        for other in self._read_folder(folder, owner):
            if other.path in (previous, None):
                continue
            if other.name.casefold() == stored.name.casefold():
                raise PresetError(
                    f"a preset named '{other.name}' already exists ({other.path.name})"
                )
            if other.path == target:
                raise PresetError(
                    f"'{stored.name}' would be saved as {target.name}, which holds"
                    f" '{other.name}': choose another name"
                )
        if target != previous and target.exists():
            # A file there that did not load (its error is listed by errors()): kept aside, not overwritten.
            keep_aside(target, "it did not load as a preset", if_unchanged=file_key(target))
        _atomic_write(target, dump_preset(stored))
        if previous is not None and previous != target:
            previous.unlink(missing_ok=True)  # the preset was renamed
        return replace(stored, builtin=False, path=target, owner=owner)

    def duplicate(self, name: str, new_name: str, owner: str | None = None) -> Preset:
        """Save a copy of preset ``name`` (from the view) in the owner's scope as ``new_name``."""
        source = self.get(name, owner)
        if new_name.strip().casefold() in self._scan(owner).presets:
            raise PresetError(f"a preset named '{new_name.strip()}' already exists")
        copy = replace(source, name=new_name.strip(), builtin=False, path=None, owner=None)
        return self.save(copy, owner)

    def delete(self, name: str, owner: str | None = None) -> None:
        """Delete a preset of the owner's scope; deleting a shared copy brings its built-in back."""
        preset = self.get(name, owner)
        if preset.builtin:
            raise PresetError(
                f"'{preset.name}' is a built-in preset and cannot be deleted; duplicate it instead"
            )
        if not _inside(preset.path, self._folder(owner)):
            raise PresetError(f"'{preset.name}' is a shared preset: it is not yours to delete")
        assert preset.path is not None
        preset.path.unlink()

    def import_yaml(self, text: str, owner: str | None = None) -> Preset:
        """Validate a preset's YAML text and save it as a new preset in the owner's scope."""
        preset = parse_preset(text, source="imported preset")
        if any(p.name.casefold() == preset.name.casefold() for p in self._read_folder(
                self._folder(owner), owner)):
            raise PresetError(
                f"a preset named '{preset.name}' already exists: rename or delete it first"
            )
        return self.save(preset, owner)

    def export_yaml(self, name: str, owner: str | None = None) -> str:
        """The YAML text of preset ``name``, ready to share or import elsewhere."""
        return dump_preset(self.get(name, owner))

    # -- internals --

    def _folder(self, owner: str | None) -> Path:
        return self.shared_dir if owner is None else self.private_dir(owner)

    def _read_folder(self, folder: Path, owner: str | None) -> list[Preset]:
        return [p for p, _ in self._read_dir(folder, builtin=False, owner=owner) if p is not None]

    @staticmethod
    def _read_dir(
        folder: Path, *, builtin: bool, owner: str | None = None
    ) -> Iterator[tuple[Preset | None, str | None]]:
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.suffix not in PRESET_SUFFIXES or path.name.startswith("."):
                continue
            try:
                text = path.read_text(encoding="utf-8")
                preset = parse_preset(text, source=path.name, builtin=builtin, path=path)
                yield replace(preset, owner=owner), None
            except PresetError as exc:
                yield None, str(exc)
            except (OSError, UnicodeDecodeError) as exc:
                yield None, f"{path.name}: cannot be read: {exc}"

    def _scan(self, owner: str | None) -> _Scan:
        presets: dict[str, Preset] = {}
        errors: list[str] = []
        scopes: list[tuple[Path, bool, str | None]] = [
            (self.builtin_dir, True, None), (self.shared_dir, False, None)
        ]
        if owner is not None:
            scopes.append((self.private_dir(owner), False, owner))
        for folder, builtin, scope_owner in scopes:
            seen: dict[str, Path] = {}
            for preset, error in self._read_dir(folder, builtin=builtin, owner=scope_owner):
                if preset is None:
                    errors.append(f"{'built-in ' if builtin else ''}{error}")
                    continue
                key = preset.name.casefold()
                assert preset.path is not None
                if key in seen:
                    errors.append(
                        f"{preset.path.name}, line 1: the name '{preset.name}' is already used"
                        f" by {seen[key].name}"
                    )
                    continue
                seen[key] = preset.path
                presets[key] = preset  # later scopes come second: a copy replaces what it copies
        return _Scan(presets, errors)


def _inside(path: Path | None, folder: Path) -> bool:
    """Whether ``path`` is a file directly in ``folder`` (a preset of that scope)."""
    return path is not None and path.parent.resolve() == folder.resolve()
