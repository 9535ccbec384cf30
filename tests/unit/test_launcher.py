"""launcher.py: standard library only, and no pip or hub once .venv is set up."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hardware_fakes import fake_nvcc, fake_nvidia_smi, fake_rocm, hardware_with, nvidia
from webui import build_plan, hardware

ROOT = Path(__file__).resolve().parents[2]


def load_launcher():
    spec = importlib.util.spec_from_file_location("launcher_under_test", ROOT / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_launcher_imports_only_the_standard_library_and_webui() -> None:
    outside = top_level_imports(ROOT / "launcher.py") - set(sys.stdlib_module_names) - {"webui", "__future__"}
    assert outside == set()


def test_a_set_up_venv_is_used_without_calling_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = load_launcher()
    if not launcher.STAMP.exists():
        pytest.skip("this checkout's .venv was not made by the launcher")

    def no_install(argv, env=None):
        raise AssertionError(f"the launcher ran {argv!r} although .venv is up to date")

    monkeypatch.setattr(launcher, "run", no_install)
    launcher.ensure_environment(with_tests=False, offline=True)


def test_offline_with_a_stale_venv_explains_instead_of_installing(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    launcher = load_launcher()
    monkeypatch.setattr(launcher, "STAMP", tmp_path / "missing-stamp.json")
    monkeypatch.setattr(launcher, "run", lambda *a, **k: pytest.fail("must not install offline"))
    with pytest.raises(launcher.SetupFailed) as stopped:
        launcher.ensure_environment(with_tests=False, offline=True)
    assert "--offline forbids installing" in str(stopped.value)


# --- a working .venv is kept ---------------------------------------------------------------------


@pytest.fixture
def fake_venv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The launcher pointed at a .venv under tmp_path whose python 'exists'; no real pip runs."""
    launcher = load_launcher()
    venv = tmp_path / ".venv"
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    monkeypatch.setattr(launcher, "VENV", venv)
    monkeypatch.setattr(launcher, "STAMP", venv / ".webui-install.json")
    monkeypatch.setattr(launcher, "SETUP_LOG", venv / "setup.log")
    monkeypatch.setattr(launcher, "venv_python", lambda: python)
    calls: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(launcher, "run", lambda argv, env=None: calls.append((argv, env or {})))
    launcher.calls = calls
    return launcher


def _write_stamp(launcher, **extra) -> None:
    launcher.STAMP.write_text(json.dumps({**launcher.wanted_install(False), **extra}))


def _mentions_llama(call: tuple[list[str], dict]) -> bool:
    argv, env = call
    return "CMAKE_ARGS" in env or any("llama-cpp-python" in a or "llama_cpp_python" in a for a in argv)


def test_todays_stamp_with_a_cuda_build_is_kept_when_no_gpu_is_seen(fake_venv, monkeypatch) -> None:
    # The stamp an earlier launcher wrote on a CUDA machine; this start nvidia-smi timed out.
    _write_stamp(fake_venv, llama_cmake_args="-DGGML_CUDA=on")
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: hardware_with(gpus=()))
    fake_venv.ensure_environment(with_tests=False, offline=True)
    assert fake_venv.calls == []


def test_changed_dependencies_reinstall_the_project_but_keep_llama_cpp(fake_venv, monkeypatch, capsys) -> None:
    cuda = {"backend": "cuda", "source": "source", "cmake_args": "-DGGML_CUDA=on", "index_url": None, "variant": ""}
    _write_stamp(fake_venv, pyproject="an older pyproject.toml", llama_build=cuda)
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: hardware_with(gpus=()))
    monkeypatch.setattr(build_plan, "detect_toolchain", lambda hw: build_plan.Toolchain(x86_features=frozenset()))
    monkeypatch.setattr(fake_venv, "llama_installed", lambda python: True)
    fake_venv.ensure_environment(with_tests=False, offline=False)
    assert fake_venv.calls, "the project's dependencies are reinstalled"
    assert not [call for call in fake_venv.calls if _mentions_llama(call)]
    out = capsys.readouterr().out
    assert 'keeping the installed llama-cpp-python (cuda build, CMAKE_ARGS="-DGGML_CUDA=on")' in out
    assert "python3 scripts/rebuild_llama.py" in out
    assert json.loads(fake_venv.STAMP.read_text())["llama_build"] == cuda


def test_a_new_pinned_version_first_tries_the_kind_of_build_the_venv_had(fake_venv, monkeypatch) -> None:
    # The old stamp format; this start sees no GPU, yet the CUDA build is tried first and kept.
    _write_stamp(fake_venv, launcher_pins=["an older pin"], llama_cmake_args="-DGGML_CUDA=on")
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: hardware_with(gpus=()))
    monkeypatch.setattr(build_plan, "detect_toolchain", lambda hw: build_plan.Toolchain(x86_features=frozenset()))
    monkeypatch.setattr(fake_venv, "llama_installed", lambda python: False)
    monkeypatch.setattr(fake_venv, "install_build", lambda python, build, hardware, force: fake_venv.calls.append(
        ([build.cmake_args, str(force)], {})))
    fake_venv.ensure_environment(with_tests=False, offline=False)
    assert fake_venv.calls[2][0] == ["-DGGML_CUDA=on", "True"], fake_venv.calls
    assert json.loads(fake_venv.STAMP.read_text())["llama_build"]["backend"] == "cuda"


# --- trying builds until one works, and failing in one line ---------------------------------------


def _plan_with_cuda_wheel_first(monkeypatch, launcher) -> None:
    tools = build_plan.Toolchain(cuda_driver_version=(12, 4), x86_features=frozenset())
    monkeypatch.setattr(hardware, "detect", lambda *a, **k: hardware_with(gpus=(nvidia(24 * 1024),)))
    monkeypatch.setattr(build_plan, "detect_toolchain", lambda hw: tools)
    monkeypatch.setattr(build_plan, "wheel_index_has", lambda tag, version: tag == "cu124")
    monkeypatch.setattr(launcher, "llama_installed", lambda python: False)


def test_a_failed_cuda_wheel_falls_back_to_the_cpu_build(fake_venv, monkeypatch, capsys) -> None:
    _plan_with_cuda_wheel_first(monkeypatch, fake_venv)

    def pip(argv, env=None):
        fake_venv.calls.append((argv, env or {}))
        if "--extra-index-url" in argv:
            raise fake_venv.SetupFailed("installing llama-cpp-python==0.3.36 failed (exit 1)")

    monkeypatch.setattr(fake_venv, "run", pip)
    monkeypatch.setattr(fake_venv, "check_build", lambda python, build, hardware, gpu_seen: None)
    fake_venv.ensure_environment(with_tests=False, offline=False)
    llama = [call for call in fake_venv.calls if _mentions_llama(call)]
    assert "--extra-index-url" in llama[0][0]
    assert llama[1][1]["CMAKE_ARGS"] == "-DGGML_NATIVE=off"
    assert "--force-reinstall" in llama[1][0], "whatever the failed wheel left is replaced"
    assert "trying the next build" in capsys.readouterr().out
    assert json.loads(fake_venv.STAMP.read_text())["llama_build"]["backend"] == "cpu"


def test_a_gpu_build_that_cannot_offload_is_not_kept(fake_venv, monkeypatch) -> None:
    _plan_with_cuda_wheel_first(monkeypatch, fake_venv)
    monkeypatch.setattr(hardware, "gpu_offload_supported_in", lambda python: False)
    monkeypatch.setattr(fake_venv, "check_build", lambda python, build, hw, gpu_seen, real=fake_venv.check_build: (
        real(python, build, hw, gpu_seen=gpu_seen) if build.backend != "cpu" else None))
    fake_venv.ensure_environment(with_tests=False, offline=False)
    assert json.loads(fake_venv.STAMP.read_text())["llama_build"]["backend"] == "cpu"


def test_when_every_build_fails_the_user_gets_one_line_and_the_log(fake_venv, monkeypatch, capsys) -> None:
    _plan_with_cuda_wheel_first(monkeypatch, fake_venv)

    def pip(argv, env=None):
        if _mentions_llama((argv, env or {})):
            raise fake_venv.SetupFailed(f"installing llama-cpp-python failed (exit 1); the end of "
                                        f"{fake_venv.SETUP_LOG} says why")

    monkeypatch.setattr(fake_venv, "run", pip)
    assert fake_venv.main(["setup"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: llama-cpp-python could not be installed")
    assert str(fake_venv.SETUP_LOG) in err and "Traceback" not in err


def test_a_failing_step_is_logged_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = load_launcher()
    monkeypatch.setattr(launcher, "SETUP_LOG", tmp_path / "setup.log")
    with pytest.raises(launcher.SetupFailed) as failed:
        launcher.run([sys.executable, "-c", "print('pip says no'); raise SystemExit(3)"])
    assert "exit 3" in str(failed.value) and str(tmp_path / "setup.log") in str(failed.value)
    assert "pip says no" in (tmp_path / "setup.log").read_text()


# --- setup --dry-run ------------------------------------------------------------------------------


def _checkout_copy(tmp_path: Path) -> Path:
    """launcher.py, webui/ and pyproject.toml in a folder without .venv."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "webui", copy / "webui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "launcher.py", copy / "launcher.py")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _dry_run(tmp_path: Path, bin_dir: Path, index: str = "http://127.0.0.1:9/whl") -> str:
    copy = _checkout_copy(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CUDA", "ROCM", "HIP", "VULKAN", "WEBUI_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", CUDA_HOME=str(empty), ROCM_PATH=str(empty),
               WEBUI_LLAMA_WHEEL_INDEX=index)
    # The system python3, as a user runs it: the launcher needs nothing but the standard library.
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
    done = subprocess.run([python, str(copy / "launcher.py"), "setup", "--dry-run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (copy / ".venv").exists(), "a dry run installs nothing"
    return done.stdout


def test_dry_run_on_a_gpu_without_toolkit_plans_cpu_and_says_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_nvidia_smi(bin_dir)
    out = _dry_run(tmp_path, bin_dir)
    assert "NVIDIA GeForce RTX 4090" in out and "CUDA driver version: 12.4" in out
    assert "1. CPU source build" in out
    assert "nor the CUDA toolkit (nvcc)" in out and "python3 scripts/rebuild_llama.py" in out
    assert "Would install" in out and "torch==" in out
    assert "Default model for this machine: Qwen3 8B" in out and "tokens/s" in out


def test_dry_run_with_nvcc_plans_the_cuda_source_build(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_nvidia_smi(bin_dir)
    fake_nvcc(bin_dir)
    out = _dry_run(tmp_path, bin_dir)
    assert '1. CUDA source build with CMAKE_ARGS="-DGGML_CUDA=on"' in out and "nvcc is installed" in out


def test_dry_run_with_hipconfig_plans_the_rocm_build(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_rocm(bin_dir, Path("/opt/rocm-6.2"))
    out = _dry_run(tmp_path, bin_dir)
    assert "Radeon RX 7900 XTX" in out and '1. ROCM source build with CMAKE_ARGS="-DGGML_HIP=on"' in out


# --- the launcher's own wheel cache, keyed on the build flags --------------------------------------


def test_a_non_portable_build_is_compiled_once_then_installed_from_the_keyed_cache(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    launcher = load_launcher()
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    calls: list[tuple[list[str], dict]] = []

    def pip(argv, env=None):
        calls.append((argv, env or {}))
        if "wheel" in argv:  # pip wheel -w DIR: leave a wheel there, as pip does
            out = Path(argv[argv.index("-w") + 1])
            (out / f"llama_cpp_python-{launcher.LLAMA_CPP_VERSION}-py3-none-linux_x86_64.whl").write_bytes(b"wheel")

    monkeypatch.setattr(launcher, "run", pip)
    avx512 = build_plan.cpu_build(True, frozenset({"AVX512", "AVX512_VNNI"}))
    launcher.install_build("/venv/bin/python", avx512, hardware, force=False)
    built, installed = calls
    assert "wheel" in built[0] and built[1]["CMAKE_ARGS"] == avx512.cmake_args
    cached = installed[0][-1]
    assert cached.startswith(str(tmp_path / "pip-cache" / "webui-llama-wheels")) and Path(cached).is_file()

    calls.clear()
    launcher.install_build("/other-venv/bin/python", avx512, hardware, force=False)
    assert [argv[-1] for argv, _ in calls] == [cached], "the second checkout compiles nothing"
    calls.clear()
    other = build_plan.cpu_build(True, frozenset({"AVX512"}))
    launcher.install_build("/venv/bin/python", other, hardware, force=False)
    assert "wheel" in calls[0][0], "other flags never take this wheel"
