"""What the Models tab's finder decides with plain values: fit verdicts, the catalog's picks, a repo's GGUF files."""

from __future__ import annotations

from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

from webui.hardware import GpuInfo, HardwareInfo
from webui.models.catalog import CATALOG
from webui.models.download import gguf_files_of
from webui.models.fit import fit_verdict
from webui.models.recommend import recommend

GIB = 2**30
Q1_7, Q4, Q8 = (entry.filename for entry in CATALOG)


def machine(ram_total_gb: float = 16, ram_free_gb: float = 12, vram_gb: float = 0, vram_free_gb: float = 0,
            cores: int = 8) -> HardwareInfo:
    gpus = (GpuInfo("nvidia", "NVIDIA GeForce RTX 4060", int(vram_gb * 1024), int(vram_free_gb * 1024)),) if vram_gb else ()
    return HardwareInfo(cpu_physical_cores=cores, cpu_logical_cores=cores * 2, ram_total_mb=int(ram_total_gb * 1024),
                        ram_available_mb=int(ram_free_gb * 1024), gpus=gpus, gpu_offload_supported=bool(gpus))


def test_a_fit_verdict_says_yes_tight_or_no_with_the_memory_it_needs() -> None:
    hw = machine(ram_total_gb=16, ram_free_gb=8, vram_gb=8, vram_free_gb=6)
    small = fit_verdict(4 * GIB, hw)
    assert (small.label, small.reason) == ("yes", "needs about 5.0 GiB; 14.0 GiB of RAM and VRAM is free")
    tight = fit_verdict(16 * GIB, hw)
    assert tight.label == "tight"
    assert tight.reason == ("needs about 19.4 GiB, more than the 14.0 GiB of RAM and VRAM free now but within the "
                            "24.0 GiB this machine has: close other programs first")
    huge = fit_verdict(40 * GIB, machine(ram_total_gb=16, ram_free_gb=8))
    assert (huge.label, huge.reason) == ("no", "needs about 48.2 GiB, more than this machine's 16.0 GiB of RAM")


def test_a_small_cpu_machine_is_offered_the_smallest_model_only() -> None:
    [only] = recommend(machine(ram_total_gb=4, ram_free_gb=3, cores=4), local_files=set())
    assert only.filename == Q1_7 and only.best and not only.downloaded
    assert only.fit.label == "yes"
    assert only.why.startswith("Best for this machine: the largest that fits 3.0 GiB of free RAM")


def test_a_16_gb_machine_gets_the_fast_4b_first_then_smaller_then_the_slow_8b() -> None:
    picks = recommend(machine(ram_total_gb=16, ram_free_gb=12), local_files={Q1_7, "other.gguf"})
    assert [p.filename for p in picks] == [Q4, Q1_7, Q8]
    best, smaller, slow = picks
    assert best.best and not smaller.best and not slow.best
    assert [p.downloaded for p in picks] == [False, True, False]
    assert best.why == ("Best for this machine: the largest that fits 12.0 GiB of free RAM and still writes "
                        "about 12 tokens/s.")
    assert smaller.why.startswith("Smaller and faster (about 28 tokens/s)")
    assert slow.why == "Fits, but writes only about 6 tokens/s here, below the 10 that feel responsive."
    assert {p.repo_id for p in picks} == {e.repo_id for e in CATALOG}


def test_an_8_gb_graphics_card_is_sized_by_its_free_vram() -> None:
    picks = recommend(machine(vram_gb=8, vram_free_gb=7.5), local_files=set())
    assert picks[0].filename == Q8 and "7.5 GiB of free VRAM" in picks[0].why


def test_a_machine_too_small_for_every_model_is_still_offered_the_smallest_with_a_warning() -> None:
    [only] = recommend(machine(ram_total_gb=1, ram_free_gb=0.5), local_files=set())
    assert only.filename == Q1_7 and only.fit.label == "no"
    assert only.why.startswith("The smallest we suggest, but this machine has only 0.5 GiB of free RAM: it may not load")


def test_a_repos_gguf_files_are_grouped_with_sizes_and_quants_from_the_hubs_file_list() -> None:
    def lfs(name: str, size: int) -> RepoSibling:
        return RepoSibling(rfilename=name, size=size, lfs=BlobLfsInfo(size=size, sha256="a" * 64, pointer_size=134))

    siblings = [
        lfs("Qwen3-4B-Q4_K_M.gguf", 2_497_280_640),
        lfs("Qwen3-4B-IQ4_XS.gguf", 2_270_000_000),
        lfs("Qwen3-4B-BF16-00001-of-00002.gguf", 4 * GIB),
        lfs("Qwen3-4B-BF16-00002-of-00002.gguf", 3 * GIB),
        lfs("Qwen3-4B-Q8_0-00001-of-00002.gguf", GIB),  # its second part is missing: not offered
        lfs("mmproj-Qwen3-4B-F16.gguf", 600_000_000),  # a vision projector, not a model
        RepoSibling(rfilename="tiny-in-git.gguf", size=1234),  # stored in git, not LFS
        RepoSibling(rfilename="README.md", size=900),
    ]
    files = gguf_files_of(siblings)
    assert [(f.filename, f.size_bytes, f.quant, len(f.parts)) for f in files] == [
        ("tiny-in-git.gguf", 1234, None, 1),
        ("Qwen3-4B-IQ4_XS.gguf", 2_270_000_000, "IQ4_XS", 1),
        ("Qwen3-4B-Q4_K_M.gguf", 2_497_280_640, "Q4_K_M", 1),
        ("Qwen3-4B-BF16-00001-of-00002.gguf", 7 * GIB, "BF16", 2),
    ]
    assert gguf_files_of(None) == []


def test_on_a_slow_cpu_the_fastest_model_comes_first_and_says_so() -> None:
    picks = recommend(machine(ram_total_gb=16, ram_free_gb=12, cores=1), local_files=set())
    assert [p.filename for p in picks] == [Q1_7, Q4, Q8]
    assert picks[0].why == "Best for this machine: the fastest that fits 12.0 GiB of free RAM, about 5 tokens/s."
    assert picks[2].why.startswith("Fits, but writes only about 1 tokens/s here")
