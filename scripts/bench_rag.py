"""Ingestion and query speed of the document library, measured on one set of chunks.

Reports, in one run: raw sentence-transformers encode speed (chunks/s), end-to-end ingestion speed
(parse + chunk + embed + store in Chroma and the keyword index, chunks/s) on the same chunks, their
ratio (target >= 0.85), and retrieve() latency p50/p95 on a collection of --query-size chunks,
hybrid (vectors + BM25, the default) beside vector only (target: hybrid p95 < 100 ms), and hybrid
with a reranker (--reranker-model FOLDER; without it, a stand-in of the suggested default's shape:
cross-encoder/ms-marco-MiniLM-L6-v2 is BERT with 6 layers 384 wide, as all-MiniLM-L6-v2 is, so the
stand-in is that encoder with an untrained one-output head: it costs what the real one costs per
search, and its scores mean nothing).

The raw baseline is one model.encode call per file with the app's batch size, which sorts the texts
by characters to pad less. Ingestion sorts a file's chunks by word pieces instead (see
embedding_batches in webui/rag/ingest.py), which pads less still, so the ratio can pass 1.

The corpus is built from the license texts in /usr/share/common-licenses (Debian base-files): each
file is a seeded shuffle of their paragraphs, so files differ and nothing is skipped as a duplicate.
When --chunks is below --query-size, the collection is padded for the latency part with copies of
real chunks (their texts, their vectors plus small noise; say so when you quote the figure): HNSW
and BM25 search times depend on the index size, and embedding 10,000 chunks takes minutes on a
small CPU.

OCR (--ocr-pages, 0 to skip): pages per second of scanned A4 pages (200 dpi pictures of the same
license paragraphs, no text layer) read by the app's OcrEngine, and single-user chat decode
tokens/s of the embedded SmolLM2 before, while and after OCR runs, with ratios (the way
bench_embed_then_chat.py measures the embedder). --ocr-only skips the ingestion and latency part.

    python scripts/bench_rag.py --chunks 10000
    python scripts/bench_rag.py --ocr-only --ocr-pages 8
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webui.rag.chunking import chunk_budget, chunk_sections  # noqa: E402
from webui.rag.embeddings import Embedder, default_model_path  # noqa: E402
from webui.rag.loaders import DocumentParseError, load_document  # noqa: E402
from webui.rag.ocr import OcrEngine  # noqa: E402
from webui.rag import DocumentLibrary  # noqa: E402
from webui.rag.rerank import CrossEncoderReranker  # noqa: E402
from webui.rag.retrieval import RERANK_CANDIDATES, search  # noqa: E402
from webui.rag.torch_threads import in_own_thread  # noqa: E402

SOURCES = Path("/usr/share/common-licenses")
SOURCE_NAMES = ["Apache-2.0", "MPL-2.0", "GPL-3", "LGPL-3", "CC0-1.0", "GFDL-1.3", "Artistic"]
QUESTIONS = [
    "Can I use the licensor's trademarks?",
    "How long do I have to fix a violation after notice?",
    "Must I provide source code when I distribute binaries?",
    "What happens to my patent license if I sue?",
    "Is there any warranty?",
    "Can I charge money for copies?",
    "How do I apply this license to my program?",
    "What is a derivative work?",
    "Which court handles disputes?",
    "Can I combine this with code under other terms?",
]


def build_corpus(folder: Path, chunks_wanted: int, chunks_per_file: int = 100) -> list[Path]:
    """Text files of shuffled real paragraphs, about chunks_wanted chunks in all."""
    paragraphs = []
    for name in SOURCE_NAMES:
        if (SOURCES / name).is_file():
            text = (SOURCES / name).read_text(errors="replace")
            paragraphs += [p.strip() for p in text.split("\n\n") if len(p.split()) >= 8]
    if not paragraphs:
        raise SystemExit(f"No license texts in {SOURCES} (install base-files).")
    rng = random.Random(1234)
    words_per_chunk = 120  # ~150 word pieces per chunk of these texts
    files = []
    for number in range(max(1, -(-chunks_wanted // chunks_per_file))):
        body, words = [f"Document {number}."], 0
        while words < chunks_per_file * words_per_chunk:
            paragraph = rng.choice(paragraphs)
            body.append(paragraph)
            words += len(paragraph.split())
        files.append(folder / f"doc-{number:04d}.txt")
        files[-1].write_text("\n\n".join(body))
    return files


def scanned_pages(pages: int) -> bytes:
    """A PDF of A4 pictures (200 dpi, 11-point text) of license paragraphs, with no text layer, as a
    scanner makes. Smaller text (under about 25 pixels high) loses spaces between words: the
    packaged recognition model is trained mostly on Chinese."""
    from PIL import Image, ImageDraw, ImageFont

    text = " ".join((SOURCES / name).read_text(errors="replace") for name in SOURCE_NAMES[:2]
                    if (SOURCES / name).is_file())
    lines = textwrap.wrap(" ".join(text.split()), 80) or ["No license texts found."]
    font_file = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    font = ImageFont.truetype(str(font_file), 30) if font_file.is_file() else ImageFont.load_default(30)
    images = []
    for number in range(pages):
        image = Image.new("L", (1654, 2339), 255)
        draw = ImageDraw.Draw(image)
        for row in range(40):  # a full page of 40 lines
            draw.text((100, 120 + row * 52), lines[(number * 40 + row) % len(lines)], fill=0, font=font)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=200)
    return out.getvalue()


def bench_ocr(pages: int, threads: int, tokens: int) -> None:
    """OCR pages/s, and chat decode speed before, while and after OCR, in one process as the app runs them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import median_decode, reply

    from webui.engine import Engine, LoadSettings
    from webui.models.embedded import embedded_model_path

    data = scanned_pages(pages)
    ocr = OcrEngine()
    engine = Engine(parallel=1, prompt_cache_mb=0)
    engine.load(embedded_model_path().resolve(), LoadSettings(n_ctx=2048, n_threads=threads))
    reply(engine, "Say hello.", 16, 1)  # warm up
    before = median_decode(engine, tokens)

    start = time.perf_counter()
    document = load_document(data, "scan.pdf", read_page=ocr.read_page)  # the first page loads the models
    ocr_seconds = time.perf_counter() - start
    words = sum(len(section.text.split()) for section in document.sections)

    stop = threading.Event()
    read_while = 0

    def read_until_stopped(images: list) -> str:
        nonlocal read_while
        if stop.is_set():
            return ""
        read_while += 1
        return ocr.read_page(images)

    def keep_reading() -> None:
        while not stop.is_set():
            try:
                load_document(data, "scan.pdf", read_page=read_until_stopped)
            except DocumentParseError:
                pass  # stopped before its first page

    reader = threading.Thread(target=keep_reading, name="ocr-bench")
    reader.start()
    time.sleep(1.0)  # let OCR get going
    during = median_decode(engine, tokens)
    stop.set()
    reader.join()
    after = median_decode(engine, tokens)
    engine.unload()
    print(f"OCR: {pages} scanned A4 pages (200 dpi, 40 lines each) in {ocr_seconds:.1f} s, models loaded "
          f"on the first: {pages / ocr_seconds:.2f} pages/s ({words / pages:.0f} words/page found)")
    print(f"chat decode tokens/s (embedded SmolLM2, {threads} threads, {tokens} new tokens, medians of 3):")
    print(f"  before OCR   {before:7.1f}")
    print(f"  while OCR    {during:7.1f}   ratio {during / before:.2f}   ({read_while} pages read meanwhile)")
    print(f"  after OCR    {after:7.1f}   ratio {after / before:.2f}")


def stand_in_reranker(folder: Path, encoder_folder: str) -> Path:
    """A cross-encoder of ms-marco-MiniLM-L6-v2's shape made from the embedder's own encoder (module
    docstring): for timing a reranked search only."""
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # "newly initialized: classifier" is the point here
    BertForSequenceClassification.from_pretrained(encoder_folder, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder_folder).save_pretrained(folder)
    return folder


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks to ingest (about)")
    parser.add_argument("--query-size", type=int, default=10_000, help="collection size for latency")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: what torch finds)")
    parser.add_argument("--reranker-model", default=None,
                        help="a local cross-encoder folder to time reranked searches with (default: a stand-in "
                             "of the suggested reranker's shape)")
    parser.add_argument("--ocr-pages", type=int, default=8, help="scanned pages for the OCR figures (0: skip)")
    parser.add_argument("--ocr-only", action="store_true", help="only the OCR figures")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads for chat")
    parser.add_argument("--chat-tokens", type=int, default=128, help="new tokens per chat reply timed")
    args = parser.parse_args(argv)
    if args.ocr_pages > 0:
        bench_ocr(args.ocr_pages, args.threads, args.chat_tokens)
    if args.ocr_only:
        return 0

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        incoming = Path(tmp) / "incoming"
        incoming.mkdir()
        files = build_corpus(incoming, args.chunks)
        embedder = Embedder(device=args.device)
        embedder.embed(["warm up the model before any timing"])
        model = embedder._load()  # the raw model, for the baseline

        library = DocumentLibrary(Path(tmp) / "data", embedder=embedder)
        library.create_collection("bench", "corpus")
        size, overlap = chunk_budget(embedder.max_seq_tokens)
        texts: list[str] = []
        raw_seconds = ingest_seconds = 0.0
        ingested = 0
        # File by file, the raw baseline and the full pipeline on the same file, taking turns at
        # going first, so that load from other processes on a shared machine falls on both alike.
        for number, path in enumerate(files):
            document = load_document(path.read_bytes(), path.name)
            chunks = chunk_sections(document.sections, count_tokens=embedder.count_tokens,
                                    chunk_tokens=size, overlap_tokens=overlap, with_headings=True)  # as ingest does
            file_texts = [c.text for c in chunks]
            for side in ("raw", "ingest") if number % 2 == 0 else ("ingest", "raw"):
                start = time.perf_counter()
                if side == "raw":  # the whole file in one call, as sentence-transformers is meant to be used
                    # in a thread of its own, as the app's calls run: one left in this thread would keep an
                    # OpenMP worker that slows every later call in other threads (webui/rag/torch_threads.py)
                    in_own_thread(lambda: model.encode(file_texts, batch_size=library.ingester.embed_batch,
                                                       normalize_embeddings=True, show_progress_bar=False))
                    raw_seconds += time.perf_counter() - start
                else:
                    [outcome] = library.ingest("bench", "corpus", [path])
                    ingest_seconds += time.perf_counter() - start
                    assert outcome.ok and outcome.chunks == len(file_texts), outcome.message
            texts += file_texts
            ingested += outcome.chunks
        raw_rate = len(texts) / raw_seconds
        ingest_rate = ingested / ingest_seconds

        stored = library.store.find("bench", "corpus")
        assert stored is not None
        padded = 0
        if ingested < args.query_size:
            got = library.store._collection(stored).get(include=["embeddings", "documents"])
            vectors = list(got["embeddings"])
            originals = list(got["documents"])
            rng = random.Random(7)
            noise = np.random.default_rng(7)
            while ingested + padded < args.query_size:
                batch = min(1000, args.query_size - ingested - padded)
                picks = [rng.randrange(len(vectors)) for _ in range(batch)]
                chosen = np.array([vectors[i] for i in picks])
                chosen = chosen + noise.normal(0, 0.02, chosen.shape)
                chosen /= np.linalg.norm(chosen, axis=1, keepdims=True)
                ids = [f"pad-{padded + i}" for i in range(batch)]
                meta = [{"file_name": "padding", "chunk_index": 1} for _ in range(batch)]
                library.store.add(stored, ids, chosen.tolist(), [originals[i] for i in picks], meta)
                padded += batch
        total = library.store.count(stored)

        reranker_name = args.reranker_model or "a stand-in of cross-encoder/ms-marco-MiniLM-L6-v2's shape"
        library.reranker = CrossEncoderReranker(
            args.reranker_model or str(stand_in_reranker(Path(tmp) / "reranker", str(default_model_path()))),
            device=args.device)
        library.retrieve("bench", QUESTIONS[0], ["corpus"], rerank=False)  # warm (and check the keyword index)
        library.retrieve("bench", QUESTIONS[0], ["corpus"], mode="vector", rerank=False)
        library.retrieve("bench", QUESTIONS[0], ["corpus"])  # loads the reranker
        latencies, vector_ms, embed_ms, search_ms, keyword_ms, fused_ms = [], [], [], [], [], []
        reranked_ms: list[float] = []
        for i in range(args.queries):
            question = f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"
            start = time.perf_counter()
            library.retrieve("bench", question, ["corpus"], k=4, min_score=0.0, rerank=False)
            latencies.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            library.retrieve("bench", question, ["corpus"], k=4, min_score=0.0)
            reranked_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            library.retrieve("bench", question, ["corpus"], k=4, min_score=0.0, mode="vector", rerank=False)
            vector_ms.append((time.perf_counter() - start) * 1000)
            # The parts, timed apart, to show where the time goes.
            start = time.perf_counter()
            vector = embedder.embed_query(question)
            embed_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            library.store.query(stored, vector, 20)
            search_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            library.store.keyword_search(stored, question, 20)
            keyword_ms.append((time.perf_counter() - start) * 1000)
            # The whole hybrid search for a question already embedded: what this code costs,
            # apart from the model's forward pass, which a shared CPU slows the most.
            start = time.perf_counter()
            search(library.store, [stored], question, vector, k=4, min_scores={})
            fused_ms.append((time.perf_counter() - start) * 1000)

    device = str(model.device)
    print(f"device {device}; {len(files)} files, {len(texts)} chunks "
          f"(mean {statistics.mean(len(t) for t in texts):.0f} chars)")
    print(f"raw encode      {raw_rate:8.1f} chunks/s")
    print(f"ingest (e2e)    {ingest_rate:8.1f} chunks/s   ratio {ingest_rate / raw_rate:.2f} "
          f"(target >= 0.85)")
    pad_note = f", {padded} of them padding copies" if padded else ""
    print(f"retrieve on {total} chunks{pad_note}, {len(latencies)} queries:")
    print(f"  hybrid (default) p50 {percentile(latencies, 0.5):.1f} ms, "
          f"p95 {percentile(latencies, 0.95):.1f} ms (target p95 < 100)")
    print(f"  vector only      p50 {percentile(vector_ms, 0.5):.1f} ms, "
          f"p95 {percentile(vector_ms, 0.95):.1f} ms")
    print(f"  hybrid + rerank  p50 {percentile(reranked_ms, 0.5):.1f} ms, "
          f"p95 {percentile(reranked_ms, 0.95):.1f} ms ({reranker_name}, {RERANK_CANDIDATES} passages "
          f"a search; ratio to hybrid p50 {percentile(reranked_ms, 0.5) / percentile(latencies, 0.5):.1f}x)")
    print(f"  parts, p50: question embedding {percentile(embed_ms, 0.5):.1f} ms, Chroma search "
          f"{percentile(search_ms, 0.5):.1f} ms, keyword search {percentile(keyword_ms, 0.5):.1f} ms "
          f"(p95 {percentile(keyword_ms, 0.95):.1f})")
    print(f"  hybrid search without the question embedding: p50 {percentile(fused_ms, 0.5):.1f} ms, "
          f"p95 {percentile(fused_ms, 0.95):.1f} ms; question embedding p95 "
          f"{percentile(embed_ms, 0.95):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
