"""What every streamed generation shares: a Stop flag per browser session, and paced updates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from webui.engine import GenerationStats, StreamChunk

UPDATE_INTERVAL_S = 0.04  # the fastest a streaming reply is redrawn


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


def paced_text(chunks: Iterator[StreamChunk]) -> Iterator[tuple[str, GenerationStats | None]]:
    """The text so far at most every UPDATE_INTERVAL_S, then the whole text with the stats.

    Every update costs the web server a diff and a message; past ~25 a second nobody sees the
    difference, but on a small machine the model would feel the lost CPU.
    """
    text = ""
    last_update = 0.0
    for chunk in chunks:
        if chunk.stats is not None:
            yield text, chunk.stats
            return
        text += chunk.text
        now = time.monotonic()
        if now - last_update >= UPDATE_INTERVAL_S:
            last_update = now
            yield text, None
