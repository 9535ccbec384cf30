"""The Services object: the one thing the UI talks to, built once at start-up in cli.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui import __version__
from webui.config import Settings
from webui.engine import Engine, EngineError, GenerationStats, Message, SamplingParams
from webui.hardware import HardwareInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyUpdate:
    """What the chat page shows while a reply streams: the text so far, then the stats."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    notice: str | None = None  # e.g. "2 older messages were left out to fit the context window"
    error: str | None = None


@dataclass
class CancelRegistry:
    """One Stop flag per browser session, so a user's Stop cancels only their own request."""

    _events: dict[str, threading.Event] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, key: str) -> threading.Event:
        with self._guard:
            event = threading.Event()
            self._events[key] = event
            return event

    def stop(self, key: str) -> bool:
        with self._guard:
            event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    def finish(self, key: str, event: threading.Event) -> None:
        with self._guard:
            if self._events.get(key) is event:
                del self._events[key]


def dropped_notice(count: int) -> str | None:
    if count <= 0:
        return None
    noun = "message was" if count == 1 else "messages were"
    return f"The conversation is longer than the context window: the {count} oldest {noun} left out of this reply."


class ChatService:
    """Turns a chat request into a streamed reply through the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cancels = CancelRegistry()

    def reply(
        self,
        session_key: str,
        conversation: Sequence[Message],
        *,
        system_prompt: str,
        sampling: SamplingParams,
    ) -> Iterator[ReplyUpdate]:
        """Stream the assistant's reply to ``conversation`` (whose last message is the user's)."""
        messages: list[Message] = []
        if system_prompt.strip():
            messages.append({"role": "system", "content": system_prompt.strip()})
        messages.extend({"role": m["role"], "content": m["content"]} for m in conversation)
        cancel = self._cancels.start(session_key)
        text = ""
        try:
            for chunk in self._engine.stream_chat(messages, sampling, cancel=cancel):
                if chunk.stats is not None:
                    yield ReplyUpdate(
                        text=text, done=True, stats=chunk.stats,
                        notice=dropped_notice(chunk.stats.dropped_messages),
                    )
                    return
                text += chunk.text
                yield ReplyUpdate(text=text)
        except EngineError as exc:
            log.warning("chat request failed: %s", exc)
            yield ReplyUpdate(text=text, done=True, error=str(exc))
        finally:
            self._cancels.finish(session_key, cancel)

    def stop(self, session_key: str) -> bool:
        """Ask the running reply of this session to stop; True if one was running."""
        return self._cancels.stop(session_key)


class Services:
    """Everything the UI may call, wired from one Settings object."""

    def __init__(self, settings: Settings, hardware: HardwareInfo, engine: Engine) -> None:
        self.settings = settings
        self.hardware = hardware
        self.engine = engine
        self.chat = ChatService(engine)

    def status(self) -> dict[str, Any]:
        """The JSON served at GET /status."""
        info = self.engine.info
        return {
            "version": __version__,
            "model": info.as_dict() if info else None,
            "hardware": self.hardware.as_dict(),
            "queue": {"waiting": self.engine.queue_length},
        }
