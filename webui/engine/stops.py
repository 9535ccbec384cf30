"""Stop strings found in streamed text, which may span tokens."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Finds stop strings in streamed text, holding back only a tail that may be the start of one.

    Stop strings can span tokens, so text that could begin one is kept until the next piece decides.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.matched: str | None = None  # the stop string that ended the text, once one has


    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show now, whether a stop string was found); after a stop, nothing more counts."""
        buffer = self._held + text
        hits = [(at, -len(stop), stop) for stop in self._stops if (at := buffer.find(stop)) >= 0]
        if hits:
            at, _, self.matched = min(hits)  # the earliest; of two starting there, the longer
            self._held = ""
            return buffer[:at], True
        keep = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), keep, -1):
                if buffer.endswith(stop[:length]):
                    keep = length
                    break
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """What was held back, once the reply ends without a stop string."""
        held, self._held = self._held, ""
        return held
