#!/usr/bin/env python3
"""Rebuild llama-cpp-python in .venv for this machine's GPU (CUDA, ROCm/HIP, Vulkan, Metal) or CPU.

    python3 scripts/rebuild_llama.py            # detect the GPU, rebuild, report offload support
    python3 scripts/rebuild_llama.py --print    # only show the command
    python3 scripts/rebuild_llama.py --backend cuda --python /path/to/python

Standard library only, so it runs with any python3. The decision (CMAKE_ARGS, pip flags) lives in
webui/hardware.py and webui/build_plan.py, shared with launcher.py. A CPU build gets the AVX-512
extensions a probe program runs on this CPU (see build_plan.probe_x86_features).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from webui import build_plan, hardware  # noqa: E402  (needs the repo root on sys.path first)


def venv_python(root: Path = REPO_ROOT) -> Path:
    """The interpreter of the project's .venv (Scripts\\python.exe on Windows)."""
    if os.name == "nt":
        return root / ".venv" / "Scripts" / "python.exe"
    return root / ".venv" / "bin" / "python"


def installed_version(python: str, run: hardware.Runner = hardware.run_command) -> str | None:
    """The llama-cpp-python version installed for ``python``, if any."""
    output = run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print(m.version('llama-cpp-python'))",
        ]
    )
    version = output.strip() if output else ""
    return version or None


def plan(
    backend: str | None,
    python: str,
    run: hardware.Runner = hardware.run_command,
    hw: hardware.HardwareInfo | None = None,
) -> tuple[str, dict[str, str], list[str]]:
    """(backend, extra environment, argv) for a forced rebuild; ``backend`` None = detect it."""
    avx2 = None
    if backend in (None, "cpu"):
        # Detection picks the backend, and a CPU build needs to know about AVX2.
        hw = hw or hardware.detect(run, offload_probe=lambda: None)
        backend = backend or hardware.backend_for(hw)
        avx2 = hw.cpu_avx2
    if backend == "cpu":
        features = build_plan.probe_x86_features() if avx2 else None
        cmake_args = build_plan.cpu_build(avx2, features).cmake_args
    else:
        cmake_args = hardware.cmake_args_for_backend(backend, avx2)
    version = installed_version(python, run) or hardware.LLAMA_CPP_PYTHON_VERSION
    env, argv = hardware.llama_install_command(python, cmake_args, version, force=True)
    if backend == "rocm":
        env.update(hardware.hip_compiler_env(run))
    return backend, env, argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=hardware.BACKENDS, help="build for this instead of what is detected"
    )
    parser.add_argument("--python", help="interpreter to rebuild for (default: .venv's python)")
    parser.add_argument("--print", action="store_true", help="print the command, do not run it")
    args = parser.parse_args(argv)

    python = args.python or str(venv_python())
    if not (Path(python).exists() or shutil.which(python)) and not args.print:
        print(f"error: no {python}; run launcher.py first or pass --python", file=sys.stderr)
        return 2
    backend, env, command = plan(args.backend, python)
    shown = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    print(f"{shown} {shlex.join(command)}")
    if args.print:
        return 0

    print(f"Building llama-cpp-python for {backend}; this compiles llama.cpp (several minutes).")
    result = subprocess.run(command, env={**os.environ, **env}, check=False)
    if result.returncode != 0:
        print(f"error: pip exited with {result.returncode}; see its output above", file=sys.stderr)
        return result.returncode
    offload = hardware.gpu_offload_supported_in(python)
    print(f"llama.cpp GPU offload now: {offload}")
    if backend != "cpu" and offload is not True:
        print("warning: the new build still cannot offload to the GPU", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
