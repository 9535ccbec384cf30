"""A Chroma server as the document store (``--chroma-url``): connect, and name a lost connection plainly.

Chroma's HTTP client raises transport errors from httpx deep inside any call once the server is
gone; the store wraps the client so every such failure becomes one ``DocumentStoreUnavailable``
sentence, which the chat and the Documents tab already show as they show any library error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from webui.rag.errors import DocumentStoreUnavailable


@dataclass(frozen=True)
class ChromaServer:
    """Where the shared Chroma server listens, and the token its auth wants (if any)."""

    url: str
    token: str | None = field(default=None, repr=False)

    @property
    def unavailable_message(self) -> str:
        return (f"The document store at {self.url} cannot be reached, so documents cannot be searched or "
                "changed right now; plain chat still works. Ask an admin to check the Chroma server.")


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` -> (host, port, ssl); the port defaults to 8000 (Chroma's) or 443 for https."""
    parts = urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--chroma-url takes an address like http://host:8000, not {url!r}")
    ssl = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if ssl else 8000), ssl


def connect(server: ChromaServer) -> Any:
    """An HttpClient for ``server`` whose calls raise DocumentStoreUnavailable when it is gone.

    Chroma's client checks the server as it is made, so an unreachable one fails here, at once.
    """
    import chromadb
    from chromadb.config import Settings

    host, port, ssl = parse_chroma_url(server.url)
    # Chroma's token auth reads "Authorization: Bearer <token>" unless the server was set otherwise.
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else None
    try:
        client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers,
                                     settings=Settings(anonymized_telemetry=False, allow_reset=False))
    except Exception as exc:  # noqa: BLE001 - Chroma says "Could not connect" as a ValueError
        raise DocumentStoreUnavailable(f"Cannot reach the Chroma server at {server.url}: {exc}") from exc
    return _Guarded(client, server)


def _lost_connection(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (httpx.TransportError, ConnectionError))


class _Guarded:
    """Forwards to a Chroma client or collection; a lost connection becomes DocumentStoreUnavailable.

    Collections it hands out are guarded too, since their queries are where most calls happen.
    """

    def __init__(self, target: Any, server: ChromaServer) -> None:
        self._target = target
        self._server = server

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = value(*args, **kwargs)
            except DocumentStoreUnavailable:
                raise
            except Exception as exc:
                if _lost_connection(exc):
                    raise DocumentStoreUnavailable(self._server.unavailable_message) from exc
                raise
            from chromadb.api.models.Collection import Collection

            return _Guarded(result, self._server) if isinstance(result, Collection) else result

        return call
