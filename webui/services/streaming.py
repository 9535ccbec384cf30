"""What every streamed generation shares: a Stop flag per browser session, and paced updates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from webui.engine import GenerationStats, StreamChunk

UPDATE_INTERVAL_S = 0.04  # the fastest a streaming reply is redrawn
UPDATES_PER_S = 20.0  # redraws a second shared by all the replies streaming at once
SLOWEST_INTERVAL_S = 0.5  # however many stream, each is redrawn at least this often


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


@dataclass
class UpdatePacer:
    """Paces streamed text so that all replies streaming at once share ``updates_per_s`` redraws.

    Every redraw costs the web server's event loop a diff, a message and a wake-up. Four replies at
    15 tokens/s each, redrawn per token, made ~60 of them a second on a 2-core machine, where each
    one also stalls llama.cpp's threads (one preempted, the other waits at the next barrier). A lone
    reply is still redrawn every 50 ms; four every 200 ms each; never less often than every 0.5 s.
    """

    updates_per_s: float = UPDATES_PER_S
    slowest_s: float = SLOWEST_INTERVAL_S
    _streams: int = 0
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def streams(self) -> int:
        return self._streams

    def interval(self) -> float:
        """Seconds between two redraws of one reply, now."""
        return min(max(UPDATE_INTERVAL_S, self._streams / self.updates_per_s), self.slowest_s)

    def paced_text(self, chunks: Iterator[StreamChunk]) -> Iterator[tuple[str, GenerationStats | None]]:
        """The text so far (the first piece at once, then at most every ``interval()``), then the whole
        text with the stats."""
        with self._guard:
            self._streams += 1
        try:
            text = ""
            last_update = None
            for chunk in chunks:
                if chunk.stats is not None:
                    yield text, chunk.stats
                    return
                text += chunk.text
                now = time.monotonic()
                if last_update is None or now - last_update >= self.interval():
                    last_update = now
                    yield text, None
        finally:
            with self._guard:
                self._streams -= 1
