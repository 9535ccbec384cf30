"""Retrieval: vector and keyword (BM25) search over collections, fused by reciprocal rank.

Vectors find passages that say the same thing in other words; BM25 finds the exact identifier a
question names (``--ctx-size``, ``HF_HUB_OFFLINE``), which MiniLM blurs. Reciprocal rank fusion
needs no score calibration between the two, so it holds across collections of any size. A third,
short list joins them: the passages of a file the question names ("Under the MPL, ..."). Every
candidate, however found, is also scored by cosine similarity: that is the calibrated relevance the
cut-off compares (BM25 scores are not comparable between queries).

Cosine alone cannot tell a near-topic question the documents do not answer from an answerable one
(both score 0.4 to 0.7). What gives most of them away is a name or identifier they ask about that
appears in no chunk ("Eclipse", "PYTHON_JIT", "--disable-gil"; see KeywordIndex.missing_names).
So a collection with a cut-off above 0 gives no passage to such a question; a cut-off of 0 turns
every check off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any, Literal

from webui.rag.keyword import keyword_tokens, query_tokens
from webui.rag.rerank import Reranker
from webui.rag.store import ChromaStore, StoredCollection

log = logging.getLogger(__name__)

RetrievalMode = Literal["hybrid", "vector", "keyword"]

# Candidates each search contributes before fusion. More helps recall a little and costs a Chroma
# fetch; 20 per side was as good as 50 on scripts/eval_retrieval.py.
CANDIDATES_PER_SEARCH = 20
# Reciprocal rank fusion: score = sum of weight / (RRF_K + rank). The paper that introduced it
# (Cormack et al., 2009) used 60; a smaller constant lets the top ranks count more. Both were chosen
# with scripts/eval_retrieval.py --sweep on its tuning half (best hit@1, then MRR, over RRF k 10/30/60
# and keyword weights 0.5 to 4): RRF k 10 with keyword 4 to vector 1. So BM25's order leads and
# the vectors break its ties and fill in what it misses: MiniLM blurs the identifiers and option
# names that technical questions hinge on, and ranked the answer first for 2 questions in 5.
RRF_K = 10
VECTOR_WEIGHT = 1.0
KEYWORD_WEIGHT = 4.0
# A question that names a document by a word of its file name ("Under the MPL, ...", "the
# Apache license", "tomllib.load") counts that document's passages as ranked first in a third
# list of this weight: licences (and manual pages) share most of their words but not their names,
# and a licence's text seldom says its own name. Chosen with scripts/eval_retrieval.py --sweep on
# its tuning half: 0.5 to 4 tie there (hit@1 0.833 -> 0.867, MRR 0.900 -> 0.922); 1 is the
# vector list's own weight. Hybrid search only; the index holds no file names to score in BM25.
FILE_NAME_WEIGHT = 1.0
RERANK_CANDIDATES = 20  # the cross-encoder reads this many fused candidates


@dataclass(frozen=True)
class Candidate:
    """One chunk found by either search, with everything the ranking used."""

    collection: StoredCollection
    id: str
    text: str
    metadata: dict[str, Any]
    cosine: float
    vector_rank: int | None = None  # 1-based, across all chosen collections
    keyword_rank: int | None = None
    named: bool = False  # the question names the chunk's file (see file_name_terms)
    fused: float = 0.0
    rerank_score: float | None = None


def fuse(
    candidates: Sequence[Candidate],
    *,
    vector_weight: float = VECTOR_WEIGHT,
    keyword_weight: float = KEYWORD_WEIGHT,
    rrf_k: int = RRF_K,
    file_name_weight: float = FILE_NAME_WEIGHT,
) -> list[Candidate]:
    """Candidates by weighted reciprocal rank fusion, best first (cosine breaks ties)."""
    scored = []
    for candidate in candidates:
        score = file_name_weight / (rrf_k + 1) if candidate.named else 0.0
        if candidate.vector_rank is not None:
            score += vector_weight / (rrf_k + candidate.vector_rank)
        if candidate.keyword_rank is not None:
            score += keyword_weight / (rrf_k + candidate.keyword_rank)
        scored.append(replace(candidate, fused=score))
    return sorted(scored, key=lambda c: (c.fused, c.cosine), reverse=True)


def file_name_terms(file_name: str) -> set[str]:
    """The words a question may name a file by: "MPL-2.0.txt" gives "mpl-2.0" and "mpl" (numbers
    alone and the extension say nothing of what a document is about)."""
    return {t for t in keyword_tokens(PurePath(file_name).stem) if not t.replace(".", "").isdigit()}


def _named_files(question: str, candidates: Sequence[Candidate]) -> set[str]:
    """The candidates' file names that the question names (each distinct file read once)."""
    terms = set(query_tokens(question))
    names = {str(c.metadata["file_name"]) for c in candidates if c.metadata.get("file_name")}
    return {name for name in names if not terms.isdisjoint(file_name_terms(name))}


def _misses_names(store: ChromaStore, stored: StoredCollection, question: str) -> bool:
    """Whether the collection lacks a name the question asks about (False when unreadable: the
    keyword index is derived data, and the cosine cut-off still applies)."""
    try:
        return bool(store.keyword_index(stored).missing_names(question))
    except Exception:
        log.exception("the keyword index of '%s' could not be checked for names", stored.name)
        return False


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def search(
    store: ChromaStore,
    chosen: Sequence[StoredCollection],
    question: str,
    query_vector: Sequence[float],
    *,
    k: int,
    min_scores: dict[str, float],
    mode: RetrievalMode = "hybrid",
    reranker: Reranker | None = None,
    candidates: int = CANDIDATES_PER_SEARCH,
    vector_weight: float = VECTOR_WEIGHT,
    keyword_weight: float = KEYWORD_WEIGHT,
    rrf_k: int = RRF_K,
    file_name_weight: float = FILE_NAME_WEIGHT,
) -> list[Candidate]:
    """The k best candidates across ``chosen``; those under their collection's cut-off are dropped.

    ``min_scores`` maps a collection's chroma_name to its cut-off on cosine similarity; where it is
    above 0, a collection missing a name the question asks about gives nothing (module docstring).
    """
    if k <= 0 or not chosen:
        return []
    found: dict[tuple[str, str], Candidate] = {}
    if mode in ("hybrid", "vector"):
        hits = []
        for stored in chosen:
            total = store.count(stored)
            if total:
                hits += [(stored, hit) for hit in store.query(stored, query_vector, min(candidates, total))]
        hits.sort(key=lambda pair: pair[1].score, reverse=True)
        for rank, (stored, hit) in enumerate(hits[:candidates], start=1):
            found[(stored.chroma_name, hit.id)] = Candidate(
                stored, hit.id, hit.text, hit.metadata, hit.score, vector_rank=rank
            )
    if mode in ("hybrid", "keyword"):
        scored = [
            (score, stored, chunk_id)
            for stored in chosen
            for chunk_id, score in store.keyword_search(stored, question, candidates)
        ]
        # BM25 scores of different collections are close enough to interleave: same formula and
        # parameters, and each collection's IDF is what makes its own terms count.
        scored.sort(key=lambda item: item[0], reverse=True)
        ranked = scored[:candidates]
        missing: dict[str, list[str]] = {}
        for _, stored, chunk_id in ranked:
            if (stored.chroma_name, chunk_id) not in found:
                missing.setdefault(stored.chroma_name, []).append(chunk_id)
        by_name = {s.chroma_name: s for s in chosen}
        for name, ids in missing.items():
            for chunk in store.chunks(by_name[name], ids):
                found[(name, chunk.id)] = Candidate(
                    by_name[name], chunk.id, chunk.text, chunk.metadata,
                    _dot(query_vector, chunk.embedding),
                )
        for rank, (_, stored, chunk_id) in enumerate(ranked, start=1):
            key = (stored.chroma_name, chunk_id)
            if key in found:  # a chunk deleted between the two reads is simply skipped
                found[key] = replace(found[key], keyword_rank=rank)
    named = _named_files(question, list(found.values()))
    ranked_all = fuse(
        [replace(c, named=c.metadata.get("file_name") in named) for c in found.values()],
        vector_weight=vector_weight, keyword_weight=keyword_weight, rrf_k=rrf_k,
        file_name_weight=file_name_weight if mode == "hybrid" else 0.0,
    )
    lacking = {stored.chroma_name for stored in chosen
               if min_scores.get(stored.chroma_name, 0.0) > 0 and _misses_names(store, stored, question)}
    kept = [c for c in ranked_all if c.cosine >= min_scores.get(c.collection.chroma_name, 0.0)
            and c.collection.chroma_name not in lacking]
    if reranker is not None and kept:
        head = kept[:RERANK_CANDIDATES]
        scores = reranker.scores(question, [c.text for c in head])
        head = [replace(c, rerank_score=s) for c, s in zip(head, scores, strict=True)]
        head.sort(key=lambda c: c.rerank_score if c.rerank_score is not None else 0.0, reverse=True)
        kept = head + kept[RERANK_CANDIDATES:]
    return kept[:k]
