"""A local HTTP server speaking the parts of the Hugging Face hub protocol huggingface_hub 2.x uses.

Served (read from huggingface_hub's source, not guessed):
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` (``get_hf_file_metadata``, downloads): X-Repo-Commit,
  ETag and X-Linked-Etag (the LFS sha256), X-Linked-Size, Content-Length, Accept-Ranges, and ``Range``
  answered with 206 + Content-Range. No ``X-Xet-*`` headers, so the client takes the plain HTTP path.
- ``GET /api/models?search=&filter=gguf&limit=`` (``HfApi.list_models``): the repos whose id contains the
  search text (case-insensitive) and that hold a ``.gguf`` file for ``filter=gguf``, one page, no Link header.
- ``GET /api/models/{repo}[/revision/{rev}]`` (``HfApi.model_info``; ``?blobs=true``, which
  ``files_metadata=True`` sends, adds sizes and LFS).
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``HfApi.list_repo_tree``; one page, no Link header).
- ``POST /api/models/{repo}/paths-info/{rev}`` (``HfApi.get_paths_info``; form field ``paths``).
- 404 with ``X-Error-Code: RepoNotFound`` / ``EntryNotFound``, which ``hf_raise_for_status`` maps to
  ``RepositoryNotFoundError`` / ``RemoteEntryNotFoundError``.

huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, when it is imported
(``huggingface_hub.constants``). ``webui.models.download`` reads ``HF_ENDPOINT`` on every call and
passes ``endpoint=`` explicitly, so setting the variable in a test is enough for the endpoint; the
offline switch is the library's constant, so :func:`allow_hub` patches it as well as the variable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SEND_CHUNK = 64 * 1024


@cache
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per test session (the SmolLM2 GGUF is 98 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(content: Path | bytes) -> str:
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    stat = content.stat()
    return _sha256_of(str(content), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class FakeHub:
    """``with FakeHub({"org/repo": {"a.gguf": path_or_bytes}}) as hub: ... hub.endpoint``.

    Knobs a test may set at any time: ``sha256_override[(repo, file)]`` (advertise a wrong sha256),
    ``drop_after_bytes_once`` (cut the next file body after N bytes, once), ``bytes_per_second``
    (throttle bodies), ``redirect_downloads`` (answer /resolve with a 302 to a blob URL, as the hub
    does for LFS files), ``non_lfs`` (files stored in git: ETag is the git sha1 and no LFS sha256 is
    published anywhere), ``opaque_etags`` (a proxy that rewrites ETag and drops X-Linked-Etag, so the
    sha256 must come from paths-info). ``requests`` records every request.
    """

    repos: dict[str, dict[str, Path | bytes]]
    sha256_override: dict[tuple[str, str], str] = field(default_factory=dict)
    drop_after_bytes_once: int | None = None
    bytes_per_second: int | None = None
    redirect_downloads: bool = False
    non_lfs: set[tuple[str, str]] = field(default_factory=set)
    opaque_etags: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()  # open client connections, cut by close()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_HubHandler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: the port is closed and kept-alive connections are cut, so clients are refused at once
        (as on a machine gone offline)."""
        if self._thread is None or self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._thread = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "use FakeHub as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at ----------------------------------------------------------------------
    def downloads(self, filename: str) -> list[RecordedRequest]:
        """The GET requests for a file's bytes, in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and unquote(r.path).endswith(f"/{filename}")
                    and ("/resolve/" in r.path or r.path.startswith("/blobs/"))]

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def sha256(self, repo_id: str, filename: str) -> str:
        """The sha256 the hub advertises (the override, if a test set one)."""
        override = self.sha256_override.get((repo_id, filename))
        return override or sha256_of(self.repos[repo_id][filename])

    # -- internals -----------------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_drop(self) -> int | None:
        with self._lock:
            drop, self.drop_after_bytes_once = self.drop_after_bytes_once, None
            return drop

    def _entry(self, repo_id: str, filename: str, *, tree: bool) -> dict[str, object]:
        content = self.repos[repo_id][filename]
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        sha = self.sha256(repo_id, filename)
        blob_id = self.git_sha1(repo_id, filename)
        lfs_file = (repo_id, filename) not in self.non_lfs
        if tree:
            entry: dict[str, object] = {"type": "file", "path": filename, "size": size, "oid": blob_id}
            if lfs_file:
                entry["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
            return entry
        sibling: dict[str, object] = {"rfilename": filename, "size": size, "blobId": blob_id}
        if lfs_file:
            sibling["lfs"] = {"sha256": sha, "size": size, "pointerSize": 134}
        return sibling

    def git_sha1(self, repo_id: str, filename: str) -> str:
        """A stand-in git object id (the hub's ETag for files stored in git rather than LFS)."""
        return hashlib.sha1(f"{repo_id}/{filename}".encode()).hexdigest()


class _HubHandler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        super().finish()

    # -- routing ---------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_POST(self) -> None:
        self._dispatch(body=True)

    def _dispatch(self, *, body: bool) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(self.command, self.path, headers))
        url = urlsplit(self.path)
        path = unquote(url.path)
        try:
            if path.rstrip("/") == "/api/models":
                self._search(parse_qs(url.query))
            elif path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], parse_qs(url.query))
            elif path.startswith("/blobs/"):
                repo_id, _, filename = path[len("/blobs/"):].partition("/-/")
                self._file(repo_id, filename, body=body, redirect=False)
            elif "/resolve/" in path:
                repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                _revision, _, filename = rest.partition("/")
                self._file(repo_id, filename, body=body, redirect=self.fake.redirect_downloads)
            else:
                self._error(404, "", "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (cancel, drop): nothing to answer

    def _search(self, query: dict[str, list[str]]) -> None:
        text = query.get("search", [""])[0].lower()
        gguf_only = "gguf" in query.get("filter", [])
        found = [{"id": repo_id, "modelId": repo_id, "private": False, "downloads": 0,
                  "tags": ["gguf"] if any(name.endswith(".gguf") for name in files) else []}
                 for repo_id, files in sorted(self.fake.repos.items()) if text in repo_id.lower()]
        found = [model for model in found if "gguf" in model["tags"] or not gguf_only]
        limit = int(query.get("limit", [str(len(found))])[0])
        data = json.dumps(found[:limit]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, kind, tail = self._split_api(rest)
        if repo_id is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        files = self.fake.repos[repo_id]
        if kind == "tree":
            prefix = tail.partition("/")[2].strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            entries = []
            for name in sorted(files):
                if prefix and not name.startswith(prefix + "/"):
                    continue
                relative = name[len(prefix) + 1:] if prefix else name
                if recursive or "/" not in relative:
                    entries.append(self.fake._entry(repo_id, name, tree=True))
            self._json(entries, repo_id)
        elif kind == "paths-info":
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            wanted = [p for p in form.get("paths", []) if p in files]
            self._json([self.fake._entry(repo_id, p, tree=True) for p in wanted], repo_id)
        else:  # model_info, with or without /revision/{rev}
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = [
                self.fake._entry(repo_id, name, tree=False) if blobs else {"rfilename": name}
                for name in sorted(files)
            ]
            info = {"id": repo_id, "sha": self.fake.commit(repo_id), "private": False, "siblings": siblings}
            self._json(info, repo_id)

    def _split_api(self, rest: str) -> tuple[str | None, str, str]:
        """'org/name/tree/main/x' -> ('org/name', 'tree', 'main/x'); None when no repo matches."""
        for repo_id in self.fake.repos:
            if rest == repo_id:
                return repo_id, "info", ""
            if rest.startswith(repo_id + "/"):
                kind, _, tail = rest[len(repo_id) + 1:].partition("/")
                return repo_id, kind, tail
        return None, "", ""

    # -- file bytes ------------------------------------------------------------------------------
    def _file(self, repo_id: str, filename: str, *, body: bool, redirect: bool) -> None:
        if repo_id not in self.fake.repos:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        if filename not in self.fake.repos[repo_id]:
            self._error(404, "EntryNotFound", "Entry not found", commit=self.fake.commit(repo_id))
            return
        content = self.fake.repos[repo_id][filename]
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        sha = self.fake.sha256(repo_id, filename)
        if redirect:  # the hub answers LFS files with a 302 whose headers already carry the metadata
            self.send_response(302)
            self.send_header("Location", f"/blobs/{repo_id}/-/{filename}")
            self._metadata_headers(repo_id, filename, sha, size)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return

        start, end, status = 0, size - 1, 200
        requested = self.headers.get("Range")
        if requested:
            match = _RANGE.match(requested.strip())
            if match is None or int(match[1]) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end, status = int(match[1]), int(match[2] or size - 1), 206
        self.send_response(status)
        self._metadata_headers(repo_id, filename, sha, size)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self._send_bytes(content, start, end + 1)

    def _metadata_headers(self, repo_id: str, filename: str, sha: str, size: int) -> None:
        self.send_header("X-Repo-Commit", self.fake.commit(repo_id))
        if (repo_id, filename) in self.fake.non_lfs:
            self.send_header("ETag", f'"{self.fake.git_sha1(repo_id, filename)}"')
        elif self.fake.opaque_etags:
            self.send_header("ETag", 'W/"proxy-1234"')
        else:
            self.send_header("ETag", f'"{sha}"')
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(size))

    def _send_bytes(self, content: Path | bytes, start: int, stop: int) -> None:
        drop = self.fake._take_drop()
        rate = self.fake.bytes_per_second
        limit = stop if drop is None else min(stop, start + drop)
        handle = open(content, "rb") if isinstance(content, Path) else None
        try:
            position = start
            if handle is not None:
                handle.seek(start)
            while position < limit:
                size = min(_SEND_CHUNK, limit - position)
                if handle is not None:
                    chunk = handle.read(size)
                else:
                    chunk = content[position:position + size]  # type: ignore[index]
                self.wfile.write(chunk)
                position += len(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)
            self.wfile.flush()
        finally:
            if handle is not None:
                handle.close()
        if drop is not None and limit < stop:
            # Cut the connection mid-body, as a flaky network does.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- small answers ---------------------------------------------------------------------------
    def _json(self, payload: object, repo_id: str) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Repo-Commit", self.fake.commit(repo_id))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, *, commit: str | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def allow_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point huggingface_hub at ``endpoint`` and lift the test suite's offline switch for one test."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def closed_port_endpoint() -> str:
    """An endpoint on this machine where nothing listens: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
