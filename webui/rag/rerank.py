"""Reranking: rescore the best retrieved candidates with a cross-encoder, when one is on disk.

No cross-encoder is packaged for offline use on PyPI (the rerank packages there fetch their models
from the Hugging Face hub at run time), so this is off until an admin downloads one in the Models
tab (webui/models/rerankers.py) or points --reranker-model at a local sentence-transformers
CrossEncoder folder. scripts/eval_retrieval.py measures it.
Checked and not used: flashrank and rerankers download from the hub; small-hybrid-reranker 0.2.1
ships a LightGBM ranker as a joblib pickle (code run on load) but fetches its embedding model
(cnmoro/static-nomic-384-pten-v2, through model2vec) from the hub too, and declares no licence.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from webui.rag.errors import RagError
from webui.rag.torch_threads import in_own_thread

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class RerankerError(RagError):
    """The reranking model could not be loaded; the message says what to do."""


class Reranker(Protocol):
    """Scores (question, passage) pairs; higher means more relevant."""

    name: str

    def scores(self, question: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder, loaded on first use."""

    def __init__(self, model_path: str, *, device: str | None = None) -> None:
        self.name = model_path
        self._device = device
        self._model: CrossEncoder | None = None
        self._lock = threading.Lock()  # fast tokenizers fail when two threads use one at once

    def _load(self) -> CrossEncoder:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            try:
                self._model = in_own_thread(
                    lambda: CrossEncoder(self.name, device=self._device, local_files_only=True))
            except Exception as exc:  # a missing folder, a damaged file: any reason reads the same to the user
                raise RerankerError(
                    f"The reranking model '{self.name}' could not be loaded ({type(exc).__name__}); "
                    "download it again in the Models tab, or point --reranker-model at a local "
                    "cross-encoder folder."
                ) from exc
        return self._model

    def scores(self, question: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        with self._lock:
            model = self._load()
            found = in_own_thread(lambda: model.predict([(question, p) for p in passages], show_progress_bar=False))
        return [float(s) for s in found]
