"""Loading a script from scripts/ as a module in tests (they are files, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from tests.support.app_server import ROOT


@contextmanager
def loaded_script(name: str) -> Iterator[ModuleType]:
    """``scripts/<name>.py`` as the module ``name``, with scripts/ on the path while it is in use (as the scripts
    put it there themselves to import each other); both are undone after."""
    folder = str(ROOT / "scripts")
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(folder)
