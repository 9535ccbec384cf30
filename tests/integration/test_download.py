"""Real huggingface_hub against a local fake hub serving the real SmolLM2 GGUF."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from pathlib import Path

import pytest

from tests.support.fakehub import FakeHub, allow_hub, closed_port_endpoint, sha256_of
from webui.models.catalog import CATALOG
from webui.models.download import (
    PARTIAL_DIR,
    ChecksumMismatch,
    DownloadCancelled,
    DownloadError,
    FileNotInRepo,
    HubUnreachable,
    ProgressCallback,
    RemoteGguf,
    RepoNotFound,
    download_gguf,
    group_gguf_files,
    list_gguf_files,
    parse_quant,
    partial_path,
    split_parts,
)
from webui.models.embedded import embedded_model_path
from webui.models.registry import local_gguf_files, resolve_model

REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MB = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(models_dir: Path) -> list[str]:
    """Partial files the downloader kept in its hidden folder."""
    folder = models_dir / PARTIAL_DIR
    return sorted(p.name for p in folder.glob("*.incomplete")) if folder.exists() else []


def recording_progress() -> tuple[list[tuple[int, int]], ProgressCallback]:
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


@pytest.fixture()
def hub(smollm_path: Path, monkeypatch: pytest.MonkeyPatch):
    with FakeHub({REPO: {NAME: smollm_path, "README.md": b"# SmolLM2\n"}}) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        yield fake


@pytest.mark.parametrize("redirect", [False, True], ids=["direct", "lfs-redirect"])
def test_fresh_download_lands_verified_in_models_dir(hub, models_dir, smollm_path, redirect):
    hub.redirect_downloads = redirect
    seen, progress = recording_progress()

    path = download_gguf(REPO, NAME, models_dir, progress=progress)

    assert path == models_dir / NAME
    assert file_sha256(path) == sha256_of(smollm_path)
    assert local_gguf_files(models_dir) == [path]
    assert leftovers(models_dir) == []
    size = smollm_path.stat().st_size
    assert seen[-1] == (size, size)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))


def test_download_cut_off_half_way_resumes_with_a_range_request(hub, models_dir, smollm_path):
    cut = 40 * MB
    hub.drop_after_bytes_once = cut

    path = download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)

    gets = hub.downloads(NAME)
    assert [g.range for g in gets] == [None, f"bytes={cut}-"]
    assert file_sha256(path) == sha256_of(smollm_path)
    assert leftovers(models_dir) == []


def test_cancel_stops_within_a_second_and_a_later_call_resumes(hub, models_dir, smollm_path):
    hub.bytes_per_second = 20 * MB
    cancel = threading.Event()
    seen, progress = recording_progress()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            download_gguf(REPO, NAME, models_dir, progress=progress, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while (not seen or seen[-1][0] < 5 * MB) and time.monotonic() < deadline:
        time.sleep(0.02)
    cancel.set()
    cancelled_at = time.monotonic()
    worker.join(timeout=5)
    stopped_after = time.monotonic() - cancelled_at

    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], DownloadCancelled)
    assert str(outcome[0]) == f"Download of '{NAME}' cancelled; the partial data is kept to resume later."
    assert stopped_after < 1.5  # "about a second"; typically a few milliseconds
    assert local_gguf_files(models_dir) == []  # nothing that looks like a model
    kept = leftovers(models_dir)
    assert len(kept) == 1
    kept_bytes = (models_dir / PARTIAL_DIR / kept[0]).stat().st_size
    assert kept_bytes >= 5 * MB

    hub.bytes_per_second = None
    path = download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)

    assert hub.downloads(NAME)[-1].range == f"bytes={kept_bytes}-"
    assert file_sha256(path) == sha256_of(smollm_path)
    assert leftovers(models_dir) == []


def test_damaged_partial_data_is_thrown_away_and_fetched_again(hub, models_dir, smollm_path):
    # A crash can leave zeros where unflushed data should have been.
    partial = partial_path(models_dir, NAME, sha256_of(smollm_path))
    partial.parent.mkdir(parents=True)
    partial.write_bytes(bytes(3 * MB))
    stale = partial_path(models_dir, NAME, "f" * 64)  # an older version of the file upstream
    stale.write_bytes(b"old")

    path = download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)

    assert [g.range for g in hub.downloads(NAME)] == [f"bytes={3 * MB}-", None]
    assert file_sha256(path) == sha256_of(smollm_path)
    assert leftovers(models_dir) == []


def test_sha256_mismatch_is_reported_and_leaves_no_file(hub, models_dir):
    hub.sha256_override[(REPO, NAME)] = "0" * 64

    with pytest.raises(ChecksumMismatch, match="arrived damaged.*deleted"):
        download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)

    assert list(models_dir.glob("*.gguf")) == []
    assert leftovers(models_dir) == []


def test_sha256_comes_from_paths_info_when_a_proxy_hides_it(models_dir, monkeypatch):
    content = b"GGUF" + bytes(range(256)) * 64
    with FakeHub({REPO: {"tiny-Q8_0.gguf": content}}, opaque_etags=True) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        path = download_gguf(REPO, "tiny-Q8_0.gguf", models_dir, progress=lambda done, total: None)

        assert any(r.method == "POST" and "/paths-info/" in r.path for r in fake.requests)
    assert path.read_bytes() == content


def test_a_file_without_published_sha256_is_refused(models_dir, monkeypatch):
    with FakeHub({REPO: {"git-stored.gguf": b"GGUF tiny"}}, non_lfs={(REPO, "git-stored.gguf")}) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        with pytest.raises(DownloadError, match="no sha256 .* cannot be verified"):
            download_gguf(REPO, "git-stored.gguf", models_dir, progress=lambda done, total: None)
        assert fake.downloads("git-stored.gguf") == []
    assert list(models_dir.iterdir()) == []


def test_missing_repo_and_missing_file_are_named(hub, models_dir):
    with pytest.raises(RepoNotFound, match="nobody/nothing does not exist"):
        download_gguf("nobody/nothing", NAME, models_dir, progress=lambda done, total: None)
    with pytest.raises(RepoNotFound):
        list_gguf_files("nobody/nothing")
    with pytest.raises(FileNotInRepo, match="no file 'absent.gguf'"):
        download_gguf(REPO, "absent.gguf", models_dir, progress=lambda done, total: None)
    assert list(models_dir.iterdir()) == []


def test_unreachable_hub_raises_and_start_up_falls_back_to_embedded(models_dir, monkeypatch):
    allow_hub(monkeypatch, closed_port_endpoint())
    with pytest.raises(HubUnreachable, match="cannot be reached"):
        download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)

    entry = dataclasses.replace(CATALOG[0], repo_id=REPO, filename=NAME)
    logged: list[str] = []
    resolved = resolve_model(
        None, models_dir, offline=False, choose_catalog_entry=lambda: entry, log=logged.append
    )

    assert resolved.source == "embedded"
    assert resolved.path == embedded_model_path()
    assert resolved.note == "Hub unreachable: using the embedded SmolLM2-135M-Instruct."
    assert any("cannot be reached" in line for line in logged)


def test_offline_mode_refuses_before_any_request(hub, models_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachable, match="Offline mode"):
        download_gguf(REPO, NAME, models_dir, progress=lambda done, total: None)
    assert hub.requests == []


def test_start_up_downloads_the_catalog_entry_through_the_hub(hub, models_dir, smollm_path, capsys):
    entry = dataclasses.replace(CATALOG[0], repo_id=REPO, filename=NAME)

    resolved = resolve_model(None, models_dir, offline=False, choose_catalog_entry=lambda: entry)

    assert resolved.source == "catalog"
    assert resolved.path == models_dir / NAME
    assert file_sha256(resolved.path) == sha256_of(smollm_path)
    shown = capsys.readouterr()
    assert "downloading" in shown.out  # the launcher's line
    assert NAME in shown.err and "100%" in shown.err  # tqdm's bar, since no progress callback was given


def test_split_model_downloads_every_part(smollm_path, models_dir, monkeypatch):
    data = smollm_path.read_bytes()
    third = len(data) // 3
    slices = [data[:third], data[third:2 * third], data[2 * third:]]
    names = [f"Q8_0/smol-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    with FakeHub({REPO: dict(zip(names, slices))}) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        seen, progress = recording_progress()

        # Naming any part downloads all of them; the first part is what llama.cpp opens.
        path = download_gguf(REPO, names[1], models_dir, progress=progress)

    assert path == models_dir / "smol-Q8_0-00001-of-00003.gguf"
    for name, part in zip(names, slices):
        assert (models_dir / Path(name).name).read_bytes() == part
    assert seen[-1] == (len(data), len(data))
    assert local_gguf_files(models_dir) == [path]


def test_list_gguf_files_groups_parts_and_reads_quant_and_size(smollm_path, monkeypatch):
    parts = {f"big-IQ4_XS-{i:05d}-of-00002.gguf": bytes([i]) * (1000 * i) for i in (1, 2)}
    files = {NAME: smollm_path, "README.md": b"readme", "mmproj-F16.gguf": b"projector", **parts}
    with FakeHub({REPO: files}) as fake:
        allow_hub(monkeypatch, fake.endpoint)
        listed = list_gguf_files(REPO)

    assert listed == [
        RemoteGguf(
            filename="big-IQ4_XS-00001-of-00002.gguf",
            parts=tuple(parts),
            size_bytes=3000,
            sha256=tuple(sha256_of(content) for content in parts.values()),
            quant="IQ4_XS",
        ),
        RemoteGguf(
            filename=NAME,
            parts=(NAME,),
            size_bytes=smollm_path.stat().st_size,
            sha256=(sha256_of(smollm_path),),
            quant="Q4_1",
        ),
    ]


def test_fake_hub_speaks_the_clients_protocol_without_xet(hub, smollm_path):
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(REPO, NAME, endpoint=hub.endpoint), endpoint=hub.endpoint)
    assert meta.etag == sha256_of(smollm_path)
    assert (meta.size, meta.commit_hash) == (smollm_path.stat().st_size, hub.commit(REPO))
    assert meta.xet_file_data is None  # so huggingface_hub would take its plain HTTP path too

    info = HfApi(endpoint=hub.endpoint).model_info(REPO, files_metadata=True)

    by_name = {s.rfilename: s for s in info.siblings}
    assert by_name[NAME].lfs.sha256 == sha256_of(smollm_path)
    assert by_name[NAME].size == smollm_path.stat().st_size


# Pure helpers (no network), kept next to the behaviour they serve.

@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("gemma-3-270m-it-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("Mistral-IQ4_XS.gguf", "IQ4_XS"),
        ("llama-iq2_xxs.gguf", "IQ2_XXS"),
        ("model-f16.gguf", "F16"),
        ("Q8_0/Llama-BF16-00001-of-00002.gguf", "BF16"),
        ("phi-2.gguf", None),
    ],
)
def test_parse_quant(name, quant):
    assert parse_quant(name) == quant


def test_split_parts_names_every_part_from_any_part():
    assert split_parts("a/m-00002-of-00003.gguf") == (
        "a/m-00001-of-00003.gguf", "a/m-00002-of-00003.gguf", "a/m-00003-of-00003.gguf"
    )
    assert split_parts("single.gguf") == ("single.gguf",)


def test_group_skips_incomplete_split_sets():
    files = {"m-00001-of-00002.gguf": (10, "a" * 64), "solo-Q8_0.gguf": (5, None)}
    assert [m.filename for m in group_gguf_files(files)] == ["solo-Q8_0.gguf"]
