"""Retrieval quality on a labelled question set: hit@1, hit@k and MRR, plus the score gap to off-topic.

The documents are the license texts Debian's base-files package installs in
/usr/share/common-licenses (Apache-2.0, MPL-2.0, GPL-3, LGPL-3, CC0-1.0); the questions and the
phrase that answers each one are in scripts/data/retrieval_eval.json.

    python scripts/eval_retrieval.py [--k 5] [--embedding-model NAME]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webui.rag.pipeline import DEFAULT_MIN_SCORE, DocumentLibrary, Passage  # noqa: E402

EVAL_FILE = Path(__file__).resolve().parent / "data" / "retrieval_eval.json"


def _norm(text: str) -> str:
    return " ".join(text.split())


def first_hit(passages: list[Passage], file_name: str, answer: str) -> int | None:
    """1-based rank of the first passage from file_name that contains the answer phrase."""
    for rank, passage in enumerate(passages, start=1):
        if passage.file_name == file_name and _norm(answer) in _norm(passage.text):
            return rank
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--embedding-model", default=None)
    parser.add_argument("--eval-file", type=Path, default=EVAL_FILE)
    parser.add_argument("--verbose", action="store_true", help="print every question's rank")
    args = parser.parse_args(argv)

    spec = json.loads(args.eval_file.read_text())
    source = Path(spec["documents_dir"])
    missing = [name for name in spec["documents"] if not (source / name).is_file()]
    if missing:
        print(f"Missing documents in {source}: {', '.join(missing)} (install base-files).")
        return 2

    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        incoming = Path(tmp) / "incoming"
        incoming.mkdir()
        files = []
        for name in spec["documents"]:  # the files have no extension; give them .txt
            files.append(incoming / f"{name}.txt")
            shutil.copyfile(source / name, files[-1])
        library = DocumentLibrary(Path(tmp) / "data", embedding_model=args.embedding_model)
        library.create_collection("eval", "licenses")
        outcomes = library.ingest("eval", "licenses", files)
        failed = [o.message for o in outcomes if not o.ok]
        if failed:
            print("\n".join(failed))
            return 2
        chunks = sum(o.chunks for o in outcomes)

        ranks: list[int | None] = []
        top_scores: list[float] = []
        for item in spec["questions"]:
            passages = library.retrieve(
                "eval", item["question"], ["licenses"], k=args.k, min_score=-1.0
            )
            rank = first_hit(passages, f"{item['file']}.txt", item["answer"])
            ranks.append(rank)
            if rank is not None:
                top_scores.append(passages[rank - 1].score)
            if args.verbose:
                print(f"{rank or '-':>2}  {item['question']}")
        off_topic = [
            library.retrieve("eval", q, ["licenses"], k=1, min_score=-1.0)[0].score
            for q in spec["off_topic"]
        ]

    n = len(ranks)
    hit1 = sum(1 for r in ranks if r == 1) / n
    hitk = sum(1 for r in ranks if r is not None) / n
    mrr = sum(1 / r for r in ranks if r is not None) / n
    print(f"model: {library.embedder.model_name}; {len(files)} documents, {chunks} chunks, "
          f"{n} questions")
    print(f"hit@1 {hit1:.3f}   hit@{args.k} {hitk:.3f}   MRR {mrr:.3f}")
    print(
        f"score of the answering chunk: min {min(top_scores):.3f}, "
        f"median {statistics.median(top_scores):.3f}; best off-topic chunk: "
        f"max {max(off_topic):.3f}, median {statistics.median(off_topic):.3f} "
        f"(default min_score {DEFAULT_MIN_SCORE})"
    )
    kept = sum(1 for s in top_scores if s >= DEFAULT_MIN_SCORE)
    dropped = sum(1 for s in off_topic if s < DEFAULT_MIN_SCORE)
    print(f"at min_score {DEFAULT_MIN_SCORE}: {kept}/{len(top_scores)} answering chunks kept, "
          f"{dropped}/{len(off_topic)} off-topic questions get no passages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
