"""ModelManager with the real engine and real GGUFs (SmolLM2, Gemma 3 270M) and downloads from a local fake hub."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fakehub import FakeHub, allow_hub
from webui.config import Settings
from webui.engine import Engine, ModelLoadError, SamplingParams
from webui.hardware import HardwareInfo
from webui.models import manager as manager_module
from webui.models.download import PARTIAL_DIR
from webui.models.manager import DownloadJob, ModelInUse, ModelManager, NotEnoughMemory
from webui.models.model_settings import ModelLoadOptions

# A CPU-only machine with 16 GiB of RAM: the memory check is then the same on every test machine.
MACHINE = HardwareInfo(cpu_physical_cores=2, cpu_logical_cores=2, ram_total_mb=16384, ram_available_mb=12000,
                       gpus=(), gpu_offload_supported=False)
SMALL = ModelLoadOptions(n_ctx=512, n_threads=2)
REPO = "org/Tiny-GGUF"


def ask(engine: Engine, max_tokens: int = 8) -> str:
    """A short greedy reply from whatever model is loaded (Gemma's 262k vocabulary makes its tokens slow here)."""
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=1)
    return "".join(chunk.text for chunk in engine.stream_chat([{"role": "user", "content": "Say hello."}], sampling))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path, gemma_path: Path) -> Iterator[tuple[ModelManager, Settings]]:
    """A models dir holding both models (symlinked), with SmolLM2 loaded."""
    root = tmp_path_factory.mktemp("models-manager")
    models = root / "models"
    models.mkdir()
    (models / smollm_path.name).symlink_to(smollm_path)
    (models / gemma_path.name).symlink_to(gemma_path)
    settings = Settings(models_dir=models, data_dir=root / "data", ctx_size=512, offline=True)
    manager = ModelManager(settings, MACHINE, Engine())
    manager.load(smollm_path.name, SMALL)
    yield manager, settings
    manager.unload()


def test_lists_both_models_with_what_their_metadata_says(workspace, smollm_path, gemma_path) -> None:
    manager, _ = workspace
    models = {m.file_name: m for m in manager.list_models()}
    smol, gemma = models[smollm_path.name], models[gemma_path.name]
    assert (smol.architecture, smol.parameters, smol.quant, smol.context_length) == ("llama", "135M", "Q4_1", 8192)
    assert smol.has_chat_template and smol.loaded and smol.error is None
    assert (gemma.architecture, gemma.parameters, gemma.quant, gemma.context_length) == ("gemma3", "270M", "Q4_K_M", 32768)
    assert not gemma.has_chat_template and not gemma.loaded
    assert gemma.size_bytes == gemma_path.stat().st_size


def test_refresh_reads_metadata_again_only_for_changed_files(workspace, monkeypatch, gemma_path) -> None:
    manager, settings = workspace
    reads: list[str] = []
    real_read = manager_module.read_gguf_facts
    monkeypatch.setattr(manager_module, "read_gguf_facts", lambda path: reads.append(path.name) or real_read(path))
    manager.list_models()
    assert reads == [], "files listed before are not read again"
    link = settings.models_dir / gemma_path.name
    stat = link.stat()
    os.utime(link, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touches the target behind the link
    try:
        manager.list_models()
        assert reads == [gemma_path.name]
    finally:
        os.utime(link, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_hot_switch_to_gemma_and_back(workspace, smollm_path, gemma_path) -> None:
    manager, _ = workspace
    engine = manager.engine
    assert ask(engine).strip()

    info = manager.load(gemma_path.name, SMALL)
    assert engine.info is not None and engine.info.file == gemma_path.name == info.file
    assert engine.info.architecture == "gemma3"
    assert ask(engine, max_tokens=3).strip(), "Gemma answers after the switch"
    assert [m.file_name for m in manager.list_models() if m.loaded] == [gemma_path.name]

    manager.load(smollm_path.name, SMALL)
    assert engine.info.file == smollm_path.name
    assert ask(engine).strip()


def test_a_switch_waits_for_the_running_reply(workspace, smollm_path) -> None:
    manager, _ = workspace
    engine = manager.engine
    started, positions = threading.Event(), []
    pieces: list[str] = []

    def long_reply() -> None:
        # long enough that the load is asked for while it runs (40 tokens were done first on a quiet machine)
        for chunk in engine.stream_chat([{"role": "user", "content": "Count from one to three hundred."}],
                                        SamplingParams(temperature=0.0, max_tokens=400)):
            started.set()
            pieces.append(chunk.text)

    worker = threading.Thread(target=long_reply)
    worker.start()
    assert started.wait(30)
    manager.load(smollm_path.name, SMALL, on_wait=positions.append)
    worker.join(30)
    assert positions == [1], "the load was told it waits behind the reply"
    assert len("".join(pieces)) > 10, "the reply ran to its end, undisturbed"


def test_damaged_files_are_refused_and_the_loaded_model_keeps_answering(workspace, smollm_path) -> None:
    manager, settings = workspace
    truncated = settings.models_dir / "truncated.gguf"
    with smollm_path.open("rb") as whole:
        truncated.write_bytes(whole.read(20 * 2**20))
    junk = settings.models_dir / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    try:
        with pytest.raises(ModelLoadError, match="truncated.gguf is damaged or incomplete"):
            manager.load("truncated.gguf")
        with pytest.raises(ModelLoadError, match="junk.gguf is not a GGUF model file"):
            manager.load("junk.gguf")
        listed = {m.file_name: m.error for m in manager.list_models()}
        assert "damaged" in listed["truncated.gguf"] and "not a GGUF" in listed["junk.gguf"]
        assert manager.engine.info is not None and manager.engine.info.file == smollm_path.name
        assert ask(manager.engine).strip()
    finally:
        truncated.unlink()
        junk.unlink()


def test_a_context_too_large_for_memory_is_refused_before_the_attempt(workspace, smollm_path, gemma_path) -> None:
    manager, _ = workspace
    absurd = ModelLoadOptions(n_ctx=4_000_000)
    warning = manager.memory_check(gemma_path.name, absurd)
    assert warning is not None and "4000000 tokens" in warning and "16.0 GiB" in warning
    assert manager.memory_check(gemma_path.name, SMALL) is None
    with pytest.raises(NotEnoughMemory, match="lower the context size"):
        manager.load(gemma_path.name, absurd)
    assert manager.engine.info.file == smollm_path.name
    assert ask(manager.engine).strip()


def test_settings_saved_for_a_model_come_back_after_a_restart(workspace, smollm_path) -> None:
    manager, settings = workspace
    chosen = ModelLoadOptions(n_ctx=768, n_threads=2, n_batch=256, flash_attn=True, kv_cache_type="q8_0")
    manager.load(smollm_path.name, chosen)  # a successful load remembers the options it was given
    assert manager.engine.info.n_ctx == 768

    restarted = ModelManager(settings, MACHINE, Engine())
    assert restarted.settings_for(smollm_path.name) == chosen
    start_up = restarted.load_settings_for_path(settings.models_dir / smollm_path.name)
    assert (start_up.n_ctx, start_up.n_batch, start_up.kv_cache_type) == (768, 256, "q8_0")
    manager.save_settings(smollm_path.name, SMALL)
    assert ModelManager(settings, MACHINE, Engine()).settings_for(smollm_path.name) == SMALL


def test_a_quantized_kv_cache_loads_with_flash_attention_left_on_auto(workspace, smollm_path) -> None:
    """Auto is off on the CPU for an f16 cache, but a q8_0 cache needs flash attention: auto lets llama.cpp
    turn it on (with flash attention off llama.cpp refuses the context)."""
    manager, _ = workspace
    options = ModelLoadOptions(n_ctx=768, n_threads=2, kv_cache_type="q8_0")
    assert options.flash_attn is None
    manager.load(smollm_path.name, options)
    assert manager.engine.load_settings.flash_attn is None and manager.engine.load_settings.kv_cache_type == "q8_0"
    assert ask(manager.engine).strip()


def test_a_draft_model_picked_by_name_drafts_and_a_missing_one_is_refused_clearly(workspace, smollm_path) -> None:
    manager, _ = workspace
    manager.load(smollm_path.name, ModelLoadOptions(n_ctx=512, n_threads=2, draft_model=smollm_path.name))
    assert manager.engine.load_settings.draft_model.name == smollm_path.name
    assert manager.engine.prompt_lookup.draft_model == smollm_path.name and ask(manager.engine).strip()
    with pytest.raises(ModelLoadError, match="The draft model cannot be used: There is no model named gone.gguf"):
        manager.load(smollm_path.name, ModelLoadOptions(n_ctx=512, n_threads=2, draft_model="gone.gguf"))
    assert manager.engine.info.file == smollm_path.name and ask(manager.engine).strip()
    manager.load(smollm_path.name, SMALL)


def test_delete_refuses_the_loaded_model_and_removes_another(workspace, smollm_path) -> None:
    manager, settings = workspace
    with pytest.raises(ModelInUse, match="unload it"):
        manager.delete(smollm_path.name)
    spare = settings.models_dir / "spare.gguf"
    spare.symlink_to(smollm_path)
    manager.save_settings("spare.gguf", SMALL)
    assert "spare.gguf" in [m.file_name for m in manager.list_models()]
    manager.delete("spare.gguf")
    assert not spare.exists() and smollm_path.exists(), "the link goes, the file it pointed to stays"
    assert "spare.gguf" not in [m.file_name for m in manager.list_models()]
    assert manager.store.get("spare.gguf") is None


# -- downloads ------------------------------------------------------------------------------------


def wait(job: DownloadJob, timeout: float = 30) -> DownloadJob:
    assert job.thread is not None
    job.thread.join(timeout)
    assert job.finished, f"the download is still {job.state} after {timeout}s"
    return job


@pytest.fixture()
def hub_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm_path: Path) -> Iterator[tuple[ModelManager, FakeHub]]:
    payload = os.urandom(3 * 2**20)
    split = [os.urandom(300_000) for _ in range(3)]
    repos = {REPO: {
        "Tiny-Q4_K_M.gguf": payload,
        "Tiny-Q8_0.gguf": payload + payload,
        "Big-F16-00001-of-00003.gguf": split[0],
        "Big-F16-00002-of-00003.gguf": split[1],
        "Big-F16-00003-of-00003.gguf": split[2],
        "mmproj-Tiny-F16.gguf": b"projector",
        "README.md": b"# Tiny\n",
    }, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF": {smollm_path.name: smollm_path}}
    with FakeHub(repos) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        settings = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data")
        yield ModelManager(settings, MACHINE, Engine(), hub_endpoint=fake.endpoint), fake


def test_repo_listing_shows_models_with_sizes_quants_and_fit(hub_manager) -> None:
    manager, _ = hub_manager
    files = {f.filename: f for f in manager.remote_files(REPO)}
    assert sorted(files) == ["Big-F16-00001-of-00003.gguf", "Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf"]
    assert files["Big-F16-00001-of-00003.gguf"].parts == 3
    assert files["Big-F16-00001-of-00003.gguf"].size_bytes == 900_000
    assert (files["Tiny-Q4_K_M.gguf"].quant, files["Tiny-Q4_K_M.gguf"].size_bytes) == ("Q4_K_M", 3 * 2**20)
    assert {f.fits for f in files.values()} == {"yes"} and not any(f.downloaded for f in files.values())


def test_a_real_model_downloads_to_100_percent_and_is_listed(hub_manager, smollm_path) -> None:
    manager, _ = hub_manager
    seen: list[float] = []
    job = manager.start_download("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", smollm_path.name)
    while not job.finished:
        seen.append(job.fraction)
        time.sleep(0.02)
    assert job.state == "done", job.message
    assert job.fraction == 1.0 and job.done == job.total == smollm_path.stat().st_size
    assert any(0 < f < 1 for f in seen), "progress was visible while it ran"
    listed = {m.file_name: m for m in manager.list_models()}
    assert listed[smollm_path.name].architecture == "llama"
    assert [f.downloaded for f in manager.remote_files("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")] == [True]


def test_cancel_keeps_the_partial_data_and_a_new_start_resumes(hub_manager) -> None:
    manager, fake = hub_manager
    fake.bytes_per_second = 2 * 2**20
    job = manager.start_download(REPO, "Tiny-Q4_K_M.gguf")
    deadline = time.monotonic() + 10
    while job.done == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manager.cancel_download(job.id)
    wait(job)
    assert job.state == "cancelled" and "cancelled" in job.message
    models_dir = manager.models_dir
    assert not (models_dir / "Tiny-Q4_K_M.gguf").exists(), "no half file under a model's name"
    assert list((models_dir / PARTIAL_DIR).glob("*.incomplete"))

    fake.bytes_per_second = None
    again = wait(manager.start_download(REPO, "Tiny-Q4_K_M.gguf"))
    assert again.state == "done", again.message
    assert (models_dir / "Tiny-Q4_K_M.gguf").stat().st_size == 3 * 2**20
    assert fake.downloads("Tiny-Q4_K_M.gguf")[-1].range, "the second start resumed with a Range request"


def test_a_network_drop_mid_download_resumes_by_itself(hub_manager) -> None:
    manager, fake = hub_manager
    fake.drop_after_bytes_once = 1 * 2**20
    job = wait(manager.start_download(REPO, "Tiny-Q4_K_M.gguf"))
    assert job.state == "done", job.message
    assert len(fake.downloads("Tiny-Q4_K_M.gguf")) == 2


def test_checksum_mismatch_is_one_clear_message_and_leaves_no_file(hub_manager) -> None:
    manager, fake = hub_manager
    fake.sha256_override[(REPO, "Tiny-Q8_0.gguf")] = "0" * 64
    job = wait(manager.start_download(REPO, "Tiny-Q8_0.gguf"))
    assert job.state == "failed"
    assert "arrived damaged" in job.message and "download it again" in job.message
    assert not (manager.models_dir / "Tiny-Q8_0.gguf").exists()


def test_a_split_model_downloads_every_part(hub_manager) -> None:
    manager, _ = hub_manager
    job = wait(manager.start_download(REPO, "Big-F16-00001-of-00003.gguf"))
    assert job.state == "done", job.message
    parts = sorted(p.name for p in manager.models_dir.glob("Big-F16-*.gguf"))
    assert parts == [f"Big-F16-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    listed = {m.file_name: m for m in manager.list_models()}
    assert list(listed) == ["Big-F16-00001-of-00003.gguf"] or "Big-F16-00001-of-00003.gguf" in listed
    assert listed["Big-F16-00001-of-00003.gguf"].size_bytes == 900_000


def test_bad_repos_and_an_unreachable_hub_give_clear_messages(hub_manager, tmp_path) -> None:
    manager, _ = hub_manager
    with pytest.raises(manager_module.DownloadError, match="does not exist on the hub"):
        manager.remote_files("org/No-Such-Repo")
    with pytest.raises(manager_module.InvalidRepoId, match="owner/name"):
        manager.remote_files("not a repo")
    job = wait(manager.start_download("org/No-Such-Repo", "x.gguf"))
    assert job.state == "failed" and "does not exist" in job.message
    # (A closed port is left to test_download.py: huggingface_hub retries it with back-off for ~20 s.)
    offline = ModelManager(Settings(models_dir=tmp_path / "m", data_dir=tmp_path / "d", offline=True), MACHINE, Engine())
    with pytest.raises(manager_module.HubUnreachable, match="offline"):
        offline.remote_files(REPO)


def test_the_model_service_gives_other_users_names_only_and_refuses_them_management(workspace, smollm_path,
                                                                                  gemma_path) -> None:
    from webui.auth import User
    from webui.services.access import NotAuthorized
    from webui.services.models import ModelService

    manager, settings = workspace
    service = ModelService(settings, MACHINE, manager.engine)
    bob, admin = User("bob", is_admin=False), User("root", is_admin=True)
    refused = [
        lambda: service.list_models(bob), lambda: service.models_dir(bob), lambda: service.settings_file(bob),
        lambda: service.load(bob, gemma_path.name), lambda: service.unload(bob),
        lambda: service.delete(bob, gemma_path.name), lambda: service.settings_for(bob, gemma_path.name),
        lambda: service.save_settings(bob, gemma_path.name, SMALL), lambda: service.memory_check(bob, gemma_path.name),
        lambda: service.remote_files(bob, REPO), lambda: service.start_download(bob, REPO, "x.gguf"),
        lambda: service.download_job(bob, "id"), lambda: service.cancel_download(bob, "id"),
    ]
    for call in refused:
        with pytest.raises(NotAuthorized):
            call()
    loaded = manager.engine.info.file
    assert service.names()[0] == loaded and set(service.names()) == {smollm_path.name, gemma_path.name}
    assert service.loaded().file == loaded and not hasattr(service.loaded(), "path")
    assert all(not hasattr(entry, "path") for entry in service.entries())
    assert service.find(smollm_path.name.removesuffix(".gguf")).name == smollm_path.name
    assert service.find(f"{smollm_path.name}:latest").name == smollm_path.name and service.find("gpt-4o") is None
    assert [m.file_name for m in service.list_models(admin)] and service.models_dir(admin) == settings.models_dir
