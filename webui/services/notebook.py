"""Raw completion (the Notebook tab): free text in, continuation out, no chat template."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from webui.engine import Engine, GenerationStats, PromptRequest, SamplingParams
from webui.errors import UserError
from webui.services.admission import admit
from webui.services.streaming import CancelRegistry, UpdatePacer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionUpdate:
    """The notebook's continuation so far, then the stats (or an error)."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    error: str | None = None


class NotebookService:
    """Raw completion with no chat template, with a Stop per browser session."""

    def __init__(self, engine: Engine, pacer: UpdatePacer | None = None) -> None:
        self._engine = engine
        self._cancels = CancelRegistry()
        self._pacer = pacer or UpdatePacer()

    def complete(
        self, session_key: str, prompt: str, sampling: SamplingParams
    ) -> Iterator[CompletionUpdate]:
        """Stream the continuation of ``prompt`` (the text so far is the continuation alone)."""
        if not prompt.strip():
            yield CompletionUpdate(text="", done=True, error="Type some text for the model to continue.")
            return
        cancel = self._cancels.start(session_key)
        text = ""
        try:
            fitted = admit(self._engine, PromptRequest(sampling, text=prompt))
            chunks = self._engine.stream(fitted, cancel=cancel, conversation=f"notebook:{session_key}")
            for text, stats in self._pacer.paced_text(chunks):
                yield CompletionUpdate(text=text, done=stats is not None, stats=stats)
                if stats is not None:
                    return
        except UserError as exc:  # a refusal (too long, out of bounds) or an engine failure
            log.warning("notebook completion failed: %s", exc)
            yield CompletionUpdate(text=text, done=True, error=str(exc))
        finally:
            self._cancels.finish(session_key, cancel)

    def stop(self, session_key: str) -> bool:
        """Ask this session's running completion to stop; True if one was running."""
        return self._cancels.stop(session_key)
