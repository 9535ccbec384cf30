"""Download GGUF models from the Hugging Face hub: resumable, verified, cancellable.

Why not plain ``hf_hub_download``: in huggingface_hub 2.x it writes to a process-unique
``<name>.<etag>.<uuid>.incomplete`` file and deletes it on any failure (so nothing survives a cancel
or a crash to resume from), and it reads the body in 10 MB chunks (so a cancel could wait many
seconds on a slow line). We therefore use its building blocks - ``hf_hub_url``,
``get_hf_file_metadata`` (HEAD with the hub's redirect and error handling), ``HfApi`` for listings,
its shared HTTP session (offline switch, proxies, token, user agent) and ``hf_raise_for_status`` - and
own only the streaming loop: a ``.incomplete`` file per part under ``<models_dir>/.cache/huggingface/
download/`` (the folder ``hf_hub_download(local_dir=...)`` uses) that survives for a later ``Range``
request, is hashed while it is written and is renamed into ``models_dir`` only once its sha256
matches the hub's LFS sha256.

Configuration read per call: ``HF_ENDPOINT`` (huggingface_hub itself reads it once at import, so we
pass ``endpoint=`` explicitly) and ``HF_HUB_OFFLINE``. Plain HTTP is always used, never Xet: resume
and cancel then behave the same for every file (the hub serves Xet-backed files over HTTP too).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

# Privacy: no usage pings. huggingface_hub reads this once, at import, so it is set before we import it
# (the CLI sets it too, before anything else imports the library).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx2  # noqa: E402  (huggingface_hub's HTTP client; installed with it)
from huggingface_hub import (  # noqa: E402
    HfApi,
    RepoFile,
    constants,
    get_hf_file_metadata,
    get_session,
    hf_hub_url,
    hf_raise_for_status,
)
from huggingface_hub.hf_api import RepoSibling  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import WeakFileLock, build_hf_headers  # noqa: E402
from huggingface_hub.utils import tqdm as hf_tqdm  # noqa: E402

from webui.errors import UserError

if TYPE_CHECKING:
    from hashlib import _Hash

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total)

PARTIAL_DIR = Path(".cache") / "huggingface" / "download"
_HASH_READ = 8 << 20  # bytes per read when hashing a partial file before resuming it
_MAX_STALLED_RETRIES = 5  # retries in a row without new data before giving up (as http_get does)
_PROGRESS_EVERY_S = 0.1
_SHA256 = re.compile(r"[0-9a-f]{64}")
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")  # a hub repository id: "owner/name"
_SPLIT = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"I?Q[1-8]_K(?:_(?:XXS|XS|XL|S|M|L))?"  # Q4_K_M, Q6_K, Q2_K_XL, IQ2_K_S
    r"|IQ[1-4]_(?:XXS|XS|NL|S|M)"  # IQ4_XS, IQ2_XXS, IQ4_NL
    r"|TQ[12]_0|MXFP4(?:_MOE)?"
    r"|Q[4-8]_[01](?:_[48]_[48])?"  # Q4_0, Q8_0, Q4_0_4_4
    r"|BF16|F16|F32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


class DownloadError(UserError):
    """A model download failed; the message is one sentence a user can act on."""


class HubUnreachable(DownloadError):
    """No connection to the hub: refused, DNS, timeout, or offline mode."""


class RepoNotFound(DownloadError):
    """The repository does not exist (or is private or gated)."""


class FileNotInRepo(DownloadError):
    """The repository exists but has no such file."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not match the hub's sha256; the file was deleted."""


class DownloadCancelled(DownloadError):
    """The caller cancelled; the partial data is kept for a later resume."""


@dataclass(frozen=True)
class RemoteGguf:
    """One downloadable model: one file, or every part of a split model."""

    filename: str  # first part for split models ("x-00001-of-00003.gguf")
    parts: tuple[str, ...]
    size_bytes: int  # sum of parts
    sha256: tuple[str | None, ...]  # per part, from the hub's LFS metadata
    quant: str | None  # "Q4_K_M", "Q8_0", "IQ4_XS", "F16" ... parsed from the name


@dataclass(frozen=True)
class _RemotePart:
    filename: str
    url: str  # where the bytes are (the hub's redirect target, if any)
    size: int
    sha256: str


# ---------------------------------------------------------------------------------------------
# Pure helpers


def parse_quant(filename: str) -> str | None:
    """The llama.cpp quantisation named in a GGUF file name, upper-cased, or None."""
    matches = _QUANT.findall(PurePosixPath(filename).name)
    return matches[-1].upper() if matches else None  # the last one: "Q8_0-Q4_K_M" style names


def split_parts(filename: str) -> tuple[str, ...]:
    """All part names of the split model ``filename`` belongs to (itself alone if not split)."""
    match = _SPLIT.match(filename)
    if match is None:
        return (filename,)
    count = int(match["count"])
    return tuple(f"{match['prefix']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))


def group_gguf_files(files: dict[str, tuple[int, str | None]]) -> list[RemoteGguf]:
    """Group ``{path: (size, sha256)}`` of a repo into models, smallest first.

    Split models count once and only when every part is present; vision projectors
    (``mmproj``) are left out because they are not models of their own.
    """
    models: list[RemoteGguf] = []
    for name in sorted(files):
        if not name.lower().endswith(".gguf") or "mmproj" in PurePosixPath(name).name.lower():
            continue
        parts = split_parts(name)
        if parts[0] != name or any(part not in files for part in parts):
            continue
        models.append(
            RemoteGguf(
                filename=name,
                parts=parts,
                size_bytes=sum(files[part][0] for part in parts),
                sha256=tuple(files[part][1] for part in parts),
                quant=parse_quant(name),
            )
        )
    return sorted(models, key=lambda model: (model.size_bytes, model.filename))


def partial_path(models_dir: Path, filename: str, sha256: str) -> Path:
    """Where the unfinished bytes of one file wait, keyed by content so a changed file never resumes."""
    return models_dir / PARTIAL_DIR / f"{PurePosixPath(filename).name}.{sha256[:16]}.incomplete"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set now, or was when huggingface_hub was imported."""
    return _env_true("HF_HUB_OFFLINE") or constants.is_offline_mode()


def resolve_endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


# ---------------------------------------------------------------------------------------------
# Errors from huggingface_hub / httpx2 -> ours


@contextmanager
def hub_errors(repo_id: str, filename: str | None, endpoint: str) -> Iterator[None]:
    """Translate the hub client's exceptions into one-sentence DownloadErrors."""
    what = f"'{filename}' from {repo_id}" if filename else repo_id
    try:
        yield
    except OfflineModeIsEnabled as exc:
        raise HubUnreachable(f"Offline mode is on (HF_HUB_OFFLINE), so {what} cannot be downloaded.") from exc
    except (httpx2.TransportError, ConnectionError) as exc:
        raise HubUnreachable(f"The hub at {endpoint} cannot be reached ({type(exc).__name__}).") from exc
    except GatedRepoError as exc:
        raise RepoNotFound(f"{repo_id} is gated: accept its licence on the hub and log in first.") from exc
    except RepositoryNotFoundError as exc:
        raise RepoNotFound(f"The repository {repo_id} does not exist on the hub (or is private).") from exc
    except (RemoteEntryNotFoundError, RevisionNotFoundError) as exc:
        raise FileNotInRepo(f"The repository {repo_id} has no file '{filename}'.") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if isinstance(status, int) and status >= 500:
            raise HubUnreachable(f"The hub is failing right now (HTTP {status}); try again later.") from exc
        raise DownloadError(f"The hub refused {what} (HTTP {status}).") from exc


def check_online(repo_id: str, endpoint: str) -> None:
    if hub_offline():
        raise HubUnreachable(
            f"Offline mode is on (HF_HUB_OFFLINE), so {repo_id} cannot be reached at {endpoint}."
        )


# ---------------------------------------------------------------------------------------------
# Listing


def list_gguf_files(repo_id: str, *, endpoint: str | None = None) -> list[RemoteGguf]:
    """The GGUF models in a hub repository with sizes, sha256s and quant labels, smallest first."""
    endpoint = resolve_endpoint(endpoint)
    check_online(repo_id, endpoint)
    with hub_errors(repo_id, None, endpoint):
        api = HfApi(endpoint=endpoint)
        # One plain request first: the tree listing retries a refused connection with back-off
        # (about 20 s), which a user pressing "List files" with the cable out should not sit through.
        api.model_info(repo_id, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        entries = api.list_repo_tree(repo_id, recursive=True)
        files = {
            entry.path: (entry.lfs.size, entry.lfs.sha256) if entry.lfs else (entry.size, None)
            for entry in entries
            if isinstance(entry, RepoFile)
        }
    return group_gguf_files(files)


# Search waits at most this long for each answer: an offline machine is told so within seconds.
SEARCH_TIMEOUT_S = 5.0
SEARCH_REPOS = 8  # repositories listed per search, most downloaded first


@dataclass(frozen=True)
class HubRepoGgufs:
    """A repository a hub search found, with its GGUF models."""

    repo_id: str
    files: tuple[RemoteGguf, ...]


def gguf_files_of(siblings: list[RepoSibling] | None) -> list[RemoteGguf]:
    """The GGUF models among ``model_info(files_metadata=True)``'s files (LFS size and sha256 preferred)."""
    files = {
        sibling.rfilename: (sibling.lfs.size, sibling.lfs.sha256) if sibling.lfs else (sibling.size or 0, None)
        for sibling in siblings or []
    }
    return group_gguf_files(files)


@contextmanager
def _search_errors(endpoint: str) -> Iterator[None]:
    """A lost connection during a search says that search needs the hub, not that a download failed."""
    try:
        yield
    except HubUnreachable as exc:
        if not isinstance(exc.__cause__, httpx2.TransportError):
            raise
        raise HubUnreachable(
            f"The hub at {endpoint} cannot be reached (this machine looks offline), so search is not "
            "available; the models already here work as before."
        ) from exc


def search_gguf_repos(
    query: str, *, endpoint: str | None = None, limit: int = SEARCH_REPOS, timeout: float = SEARCH_TIMEOUT_S
) -> list[HubRepoGgufs]:
    """Hub repositories whose id contains ``query`` and that hold GGUF models, most downloaded first.

    One plain request with a short timeout comes first: ``list_models`` retries a refused or silent
    connection with back-off for about 20 s, and an offline machine should hear so at once.
    """
    endpoint = resolve_endpoint(endpoint)
    query = (query or "").strip()
    if not query:
        raise DownloadError("Type part of a model's name to search for, e.g. qwen3.")
    if hub_offline():
        raise HubUnreachable(f"Offline mode is on (HF_HUB_OFFLINE), so the hub at {endpoint} is not searched.")
    api = HfApi(endpoint=endpoint)

    def files_of(repo_id: str) -> HubRepoGgufs | None:
        try:
            with hub_errors(repo_id, None, endpoint):
                info = api.model_info(repo_id, files_metadata=True, timeout=timeout)
        except HubUnreachable:
            raise
        except DownloadError as exc:  # gated or gone since the listing: leave it out, say why in the log
            log.info("search: skipping %s: %s", repo_id, exc)
            return None
        return HubRepoGgufs(repo_id, tuple(gguf_files_of(info.siblings)))

    with _search_errors(endpoint), hub_errors(f"a search for '{query}'", None, endpoint):
        probe = {"search": query, "filter": "gguf", "limit": 1}
        hf_raise_for_status(get_session().get(f"{endpoint}/api/models", params=probe, timeout=timeout))
        found = [model.id for model in api.list_models(search=query, filter="gguf", sort="downloads", limit=limit)]
    with _search_errors(endpoint), ThreadPoolExecutor(max_workers=4, thread_name_prefix="hub-search") as pool:
        repos = list(pool.map(files_of, found))
    return [repo for repo in repos if repo is not None and repo.files]


# ---------------------------------------------------------------------------------------------
# Downloading


def _remote_part(repo_id: str, filename: str, endpoint: str, headers: dict[str, str]) -> _RemotePart:
    """HEAD one file: where its bytes are, its size and LFS sha256 (from paths-info if the ETag is not one)."""
    url = hf_hub_url(repo_id, filename, endpoint=endpoint)
    with hub_errors(repo_id, filename, endpoint):
        meta = get_hf_file_metadata(
            url, headers=headers, endpoint=endpoint, timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
        sha256 = meta.etag if meta.etag and _SHA256.fullmatch(meta.etag) else None
        size = meta.size
        if sha256 is None or size is None:
            infos = HfApi(endpoint=endpoint).get_paths_info(repo_id, [filename])
            lfs = next((info.lfs for info in infos if getattr(info, "lfs", None)), None)
            if lfs is not None:
                sha256, size = lfs.sha256, lfs.size
    if sha256 is None or size is None:
        raise DownloadError(
            f"The hub gives no sha256 for '{filename}' in {repo_id}, so it cannot be verified."
        )
    return _RemotePart(filename=filename, url=meta.location, size=size, sha256=sha256)


class _Progress:
    """Adds bytes across parts and reports them to the callback (throttled) or a terminal bar."""

    def __init__(self, total: int, callback: ProgressCallback | None, desc: str) -> None:
        self.done = 0
        self.total = total
        self._callback = callback
        self._last = 0.0
        self._bar = hf_tqdm(total=total, unit="B", unit_scale=True, desc=desc) if callback is None else None

    def add(self, nbytes: int, *, force: bool = False) -> None:
        self.done += nbytes
        if self._bar is not None:
            self._bar.update(nbytes)
            return
        now = time.monotonic()
        if force or now - self._last >= _PROGRESS_EVERY_S or self.done >= self.total:
            self._last = now
            assert self._callback is not None
            self._callback(self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _hash_existing(handle: BinaryIO, hasher: _Hash, cancel: threading.Event | None, filename: str) -> int:
    """Feed the bytes already in a partial file to ``hasher``; returns how many there were."""
    handle.seek(0)
    size = 0
    while chunk := handle.read(_HASH_READ):
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(_cancelled(filename))
        hasher.update(chunk)
        size += len(chunk)
    return size


def _cancelled(filename: str) -> str:
    return f"Download of '{filename}' cancelled; the partial data is kept to resume later."


def _wait_cancelled(cancel: threading.Event | None, seconds: float) -> bool:
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)


def _fetch_part(
    part: _RemotePart,
    target: Path,
    headers: dict[str, str],
    progress: _Progress,
    cancel: threading.Event | None,
) -> None:
    """Bring ``target`` (a partial file) to the full, verified content of ``part``, resuming if it exists."""
    hasher = hashlib.sha256()
    with open(target, "a+b") as handle:
        have = _hash_existing(handle, hasher, cancel, part.filename)
        if have > part.size:  # not ours to resume: start over
            handle.truncate(0)
            hasher, have = hashlib.sha256(), 0
        progress.add(have, force=True)
        stalled = 0
        while have < part.size:
            request_headers = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
            before = have
            try:
                with get_session().stream(
                    "GET", part.url, headers=request_headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
                ) as response:
                    hf_raise_for_status(response)
                    if have and response.status_code == 200:  # the server ignored Range: take it all
                        handle.truncate(0)
                        progress.add(-have)
                        hasher, have, before = hashlib.sha256(), 0, 0
                    handle.seek(have)
                    # No chunk_size: each network read is handed over at once, so a cancel is seen quickly.
                    for chunk in response.iter_bytes():
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelled(_cancelled(part.filename))
                        handle.write(chunk)
                        hasher.update(chunk)
                        have += len(chunk)
                        progress.add(len(chunk))
            except (httpx2.TransportError, ConnectionError) as exc:
                stalled = 0 if have > before else stalled + 1
                if stalled > _MAX_STALLED_RETRIES or isinstance(exc, OfflineModeIsEnabled):
                    raise HubUnreachable(
                        f"The connection to the hub dropped while downloading '{part.filename}'; "
                        "run it again to resume."
                    ) from exc
                if _wait_cancelled(cancel, 0.5):
                    raise DownloadCancelled(_cancelled(part.filename)) from exc
                continue
            if have == before:  # an empty answer would loop forever
                raise DownloadError(f"The hub sent no data for '{part.filename}'.")
        handle.flush()
        os.fsync(handle.fileno())
    if have != part.size or hasher.hexdigest() != part.sha256:
        target.unlink(missing_ok=True)
        progress.add(-have)
        got = "a different size" if have != part.size else f"sha256 {hasher.hexdigest()[:12]}…"
        raise ChecksumMismatch(
            f"'{part.filename}' arrived damaged ({got} instead of sha256 {part.sha256[:12]}…); "
            "it was deleted, please download it again."
        )


def download_gguf(
    repo_id: str,
    filename: str,
    models_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download a GGUF (every part if split) into ``models_dir`` and return the path llama.cpp loads.

    Files appear under their final names only when every part is complete and matches the hub's
    sha256; partial data is kept in a hidden folder so a later call resumes with a Range request.
    A terminal progress bar is shown when ``progress`` is None.
    """
    endpoint = resolve_endpoint(endpoint)
    check_online(repo_id, endpoint)
    models_dir.mkdir(parents=True, exist_ok=True)
    names = split_parts(filename)
    finals = [models_dir / PurePosixPath(name).name for name in names]
    headers = build_hf_headers()
    remote = [_remote_part(repo_id, name, endpoint, headers) for name in names]
    if any(urlsplit(part.url).netloc != urlsplit(endpoint).netloc for part in remote):
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}  # no token to a CDN

    # A file we placed was verified when it was placed; its size guards against a different file of that name.
    todo = [
        (part, final)
        for part, final in zip(remote, finals)
        if not (final.is_file() and final.stat().st_size == part.size)
    ]
    if not todo:
        return finals[0]
    bar = _Progress(sum(part.size for part, _ in todo), progress, PurePosixPath(filename).name)
    partials: list[tuple[Path, Path]] = []
    try:
        for part, final in todo:
            target = partial_path(models_dir, part.filename, part.sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with WeakFileLock(f"{target}.lock", timeout=0.5), hub_errors(repo_id, part.filename, endpoint):
                    _drop_stale_partials(target)
                    _fetch_part_with_restart(part, target, headers, bar, cancel)
            except TimeoutError as exc:  # filelock.Timeout subclasses TimeoutError
                raise DownloadError(
                    f"'{part.filename}' is already being downloaded by another process."
                ) from exc
            partials.append((target, final))
    finally:
        bar.close()
    # Parts move in only once all are verified, so a split model is never half present.
    for target, final in partials:
        os.replace(target, final)
        Path(f"{target}.lock").unlink(missing_ok=True)
    return finals[0]


def _fetch_part_with_restart(
    part: _RemotePart,
    target: Path,
    headers: dict[str, str],
    progress: _Progress,
    cancel: threading.Event | None,
) -> None:
    """Fetch one part; if resumed bytes turn out bad (a crash can leave zeros behind), start over once."""
    resumed = target.is_file() and target.stat().st_size > 0
    try:
        _fetch_part(part, target, headers, progress, cancel)
    except ChecksumMismatch:
        if not resumed:
            raise
        _fetch_part(part, target, headers, progress, cancel)


def _drop_stale_partials(target: Path) -> None:
    """Partial data of an older version of the same file (another sha256) can never be resumed."""
    stem = target.name.rsplit(".", 2)[0]  # "<name>" of "<name>.<sha16>.incomplete"
    for stale in target.parent.glob(f"{stem}.*.incomplete"):
        if stale != target and stale.name.count(".") == target.name.count("."):
            stale.unlink(missing_ok=True)
