"""A raw client of Gradio's queue protocol (POST /gradio_api/queue/join, SSE /gradio_api/queue/data).

Security tests send payloads the page never would (hand-made file objects, other users' ids), so they
speak the protocol directly with a logged-in user's cookie instead of going through gradio_client.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class EventResult:
    """Everything the server sent back for one event: its messages, final output and error text."""

    messages: list[dict] = field(default_factory=list)
    join_status: int = 200

    @property
    def completed(self) -> dict:
        return next((m for m in self.messages if m.get("msg") == "process_completed"), {})

    @property
    def success(self) -> bool:
        return self.join_status == 200 and bool(self.completed.get("success"))

    @property
    def output(self) -> list:
        return (self.completed.get("output") or {}).get("data") or []

    @property
    def text(self) -> str:
        """All that reached the client, as one string, to search for leaked content."""
        return json.dumps(self.messages)


class GradioSession:
    """One browser-like session: a cookie jar, the app's /config, and event calls by name."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, verify=False, timeout=120, headers=headers or {})  # noqa: S501
        self._config: dict | None = None
        # One page session for all calls, as in a browser tab: Gradio keeps component updates (a
        # dropdown's new choices) per session, and checks later inputs against them.
        self.session_hash = uuid.uuid4().hex

    def close(self) -> None:
        self.http.close()

    def login(self, name: str, password: str) -> httpx.Response:
        return self.http.post("/login", data={"username": name, "password": password})

    def config(self) -> dict:
        if self._config is None:
            response = self.http.get("/config")
            response.raise_for_status()
            self._config = response.json()
        return self._config

    def dependency(self, api_name: str) -> dict:
        """The event whose handler is named *api_name* (the page's events keep their names in /config)."""
        found = [d for d in self.config()["dependencies"] if d.get("api_name") == api_name]
        if not found:
            names = sorted(str(d.get("api_name")) for d in self.config()["dependencies"])
            raise LookupError(f"no event named {api_name!r}; there are {names}")
        return found[0]

    def component(self, component_id: int) -> dict:
        return next(c for c in self.config()["components"] if c["id"] == component_id)

    def call(self, event: str | dict, data: list[Any], *, timeout: float = 120) -> EventResult:
        """Run one event (by handler name, or a /config dependency) the way the page does; collect its
        messages until it completes."""
        dependency = self.dependency(event) if isinstance(event, str) else event
        session = self.session_hash
        joined = self.http.post("/gradio_api/queue/join", json={
            "data": data, "fn_index": dependency["id"], "session_hash": session,
            "event_data": None, "trigger_id": (dependency.get("targets") or [[None]])[0][0],
        })
        result = EventResult(join_status=joined.status_code)
        if joined.status_code != 200:
            result.messages.append({"msg": "join_refused", "status": joined.status_code, "body": joined.text})
            return result
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session},
                              timeout=timeout) as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                result.messages.append(message)
                if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    break
        return result

    def dependency_for(self, component_type: str, trigger: str) -> dict:
        """The event a component of *component_type* fires on *trigger* (for unnamed handlers)."""
        ids = {c["id"] for c in self.config()["components"] if c.get("type") == component_type}
        for dependency in self.config()["dependencies"]:
            if any(target[0] in ids and target[1] == trigger for target in dependency.get("targets", [])):
                return dependency
        raise LookupError(f"no {trigger!r} event on a {component_type!r}")

    def event_of(self, elem_id: str, trigger: str = "click") -> dict:
        """The event a component (by its elem_id) fires on ``trigger``, as listed in /config."""
        ids = {c["id"] for c in self.config()["components"] if c.get("props", {}).get("elem_id") == elem_id}
        for dependency in self.config()["dependencies"]:
            if any(target[0] in ids and target[1] == trigger for target in dependency.get("targets", [])):
                return dependency
        raise LookupError(f"no {trigger} event on #{elem_id}")

    def button_click(self, label: str) -> dict:
        """The click event of the button showing *label* (handlers wrapped by a helper share a name)."""
        ids = {c["id"] for c in self.config()["components"]
               if c.get("type") == "button" and c.get("props", {}).get("value") == label}
        for dependency in self.config()["dependencies"]:
            if any(target[0] in ids and target[1] == "click" for target in dependency.get("targets", [])):
                return dependency
        raise LookupError(f"no button labelled {label!r}")

    def call_direct(self, dependency: dict, data: list[Any]) -> httpx.Response:
        """An event the page runs outside the queue (``queue=False``): one POST, as the page sends it."""
        return self.http.post("/gradio_api/run/predict", json={
            "data": data, "fn_index": dependency["id"], "session_hash": self.session_hash,
            "event_data": None, "trigger_id": (dependency.get("targets") or [[None]])[0][0],
        })

    def upload(self, path: Path) -> str:
        """Upload a file as the page does; returns the server-side path Gradio gives it."""
        with path.open("rb") as handle:
            response = self.http.post("/gradio_api/upload", files={"files": (path.name, handle)})
        response.raise_for_status()
        return response.json()[0]


def file_payload(path: str | Path, name: str | None = None) -> dict:
    """The hand-made file object from the issue: any path, labelled as Gradio's FileData."""
    return {"path": str(path), "orig_name": name or Path(path).name, "meta": {"_type": "gradio.FileData"}}
