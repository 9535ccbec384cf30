"""Retrieval quality on labelled questions: vector, keyword, hybrid and hybrid+rerank side by side.

The scoring (answer rank, hit@1, hit@k, MRR) is webui/rag/evaluation.py, the engine behind the
Documents tab's "Measure retrieval" panel too.

Two corpora no one here wrote, each ingested into its own collection and asked its own questions:
- the license texts in /usr/share/common-licenses (Debian's base-files package);
- a subset of the Python 3.11 documentation (HTML) from Debian's python3.11-doc package
  (``apt-get install -y python3.11-doc``): using/cmdline, using/configure, library/zipapp,
  library/tomllib, library/json, library/venv and tutorial/venv. A corpus that is missing is
  skipped with a message.

Questions, answer phrases and the near-topic questions the documents do not answer are in
scripts/data/retrieval_eval.json. A second set, scripts/data/retrieval_eval_man.json (--eval-file),
asks about 61 man pages rendered on this machine with man(1); it was written and committed before
any change was measured on it, and nothing is tuned on it ("split": "none": every question is
reported). Changes made since were still shaped by knowing its kind (a file's title in each
passage's index), so a third, scripts/data/retrieval_eval_man2.json, was written blind (no retrieval
run while writing it) over 50 man pages of other programs (curl, gpg, openssl, systemctl, tmux...)
and committed before anything was measured on it; it is the unseen-data figure. In the first set,
each question falls in a tuning half or a reported half by a hash
of its text; the relevance cut-off (and, with --sweep, the fusion, file-name and heading weights) are
chosen on the tuning half only, and the figures printed are for the reported half unless marked "all".

    python scripts/eval_retrieval.py [--eval-file FILE] [--k 5] [--sweep] [--reranker-model PATH] [--verbose]
                                     [--answers [--answer-model PATH] [--answers-limit N]]

"reaches the model" counts the questions whose answering passage is among those the app gives the
model with its defaults: the collection's own k and cut-off, hybrid search (the context window
trims nothing at these sizes: 4 passages of at most 200 tokens).

--answers goes one step further, for the reported questions whose answering passage reaches the
model: the chat service prepares the document answer as the page does (the same retrieval, the
"Document answers (RAG)" preset after the chat's default system prompt, passages fitted and
numbered), a real model writes it (greedy; --answer-model, by default the app's offline fallback,
SmolLM2 135M), and the app's citation check reads its [n] markers. Counted: answers citing
anything, answers citing the passage that holds the answer, answers the page flags "not supported
by the cited passages", and the mean decode speed. --answers-limit caps the questions for a quick run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import webui.rag.keyword as keyword_module  # noqa: E402
from webui.engine import Engine, LoadSettings, SamplingParams  # noqa: E402
from webui.errors import UserError  # noqa: E402
from webui.history import HistoryStore  # noqa: E402
from webui.models.embedded import embedded_model_path  # noqa: E402
from webui.prompts.presets import PresetStore  # noqa: E402
from webui.rag import DocumentLibrary, Passage, check_citations  # noqa: E402
from webui.rag.evaluation import LabelledQuestion, answer_rank, contains_answer, first_hit, score  # noqa: E402
from webui.rag.retrieval import FILE_NAME_WEIGHT, KEYWORD_WEIGHT, RRF_K, search  # noqa: E402
from webui.rag.settings import DEFAULT_MIN_SCORE  # noqa: E402
from webui.services.chat import ChatService, DocumentQuery  # noqa: E402

EVAL_FILE = Path(__file__).resolve().parent / "data" / "retrieval_eval.json"
K_STEPS = (3, 4, 5, 6, 8)
CUT_OFF_STEPS = [round(0.10 + 0.01 * i, 2) for i in range(41)]  # 0.10 .. 0.50


def split_of(question: str, split: str = "hash") -> str:
    """'tune' or 'report', fixed by the question's text so the halves never move; with split
    "none" (a set nothing is tuned on) every question is reported."""
    if split == "none":
        return "report"
    return "tune" if hashlib.sha256(question.encode()).digest()[0] % 2 else "report"


def render_man_page(page: str) -> str:
    """A man page ("ls.1") as plain ASCII text, the same on every run of this machine: 80
    columns, no hyphenation or justification (which would split the answer phrases)."""
    name, _, section = page.rpartition(".")
    env = {**os.environ, "MANWIDTH": "80", "LANG": "C", "LC_ALL": "C", "MANPAGER": "cat"}
    done = subprocess.run(["man", "--nh", "--nj", "-E", "ascii", "-P", "cat", section, name],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode or not done.stdout.strip():
        raise FileNotFoundError(f"man {section} {name}: {done.stderr.strip() or 'no output'}")
    return done.stdout


def labelled(item: dict) -> LabelledQuestion:
    """An eval-file question as the evaluation engine (webui/rag/evaluation.py) scores it."""
    return LabelledQuestion(item["question"], expected_text=item["answer"], expected_file=item["file"])


@dataclass
class Row:
    """One mode's ranks for every answerable question, and its latencies."""

    ranks: list[int | None]
    millis: list[float]


def metrics(ranks: Sequence[int | None], k: int) -> tuple[float, float, float]:
    """hit@1, hit@k and MRR, as the tables below print them."""
    scores = score(ranks, k)
    return scores.hit_at_1, scores.hit_at_k, scores.mrr


def stage_corpora(spec: dict, folder: Path) -> dict[str, list[Path]]:
    """Copy each available corpus into folder (flat, with extensions the loaders know)."""
    staged: dict[str, list[Path]] = {}
    for name, corpus in spec["corpora"].items():
        if "man_pages" in corpus:
            target = folder / name
            target.mkdir(parents=True)
            try:
                for page in corpus["man_pages"]:
                    (target / f"{page}.txt").write_text(render_man_page(page))
            except OSError as exc:
                print(f"Skipping the {name} corpus: {exc} ({corpus['how_to_get']}).")
                continue
            staged[name] = sorted(target.iterdir())
            continue
        source = Path(corpus["dir"])
        missing = [d for d in corpus["documents"] if not (source / d).is_file()]
        if missing:
            print(f"Skipping the {name} corpus: {len(missing)} of its files are missing from "
                  f"{source} ({corpus['how_to_get']}).")
            continue
        target = folder / name
        target.mkdir(parents=True)
        files = []
        for document in corpus["documents"]:
            flat = document.replace("/", "-")
            known = Path(flat).suffix in (".html", ".htm", ".txt")  # license files have none
            files.append(target / (flat if known else f"{flat}.txt"))
            shutil.copyfile(source / document, files[-1])
        staged[name] = files
    return staged


MAX_WRONGLY_REFUSED = 0.05  # of answerable questions, on the tuning half


def choose_cut_off(
    answerable_best: Sequence[float], unanswerable_best: Sequence[float]
) -> float:
    """The cut-off that refuses the most unanswerable questions while wrongly refusing at most
    MAX_WRONGLY_REFUSED of the answerable ones: missing what is plainly in the files is the failure
    users complain of most, and a passage that does not answer still lets the model say so."""
    allowed = MAX_WRONGLY_REFUSED * len(answerable_best)
    fine = [t for t in CUT_OFF_STEPS if sum(s < t for s in answerable_best) <= allowed]
    refused = {t: sum(s < t for s in unanswerable_best) for t in fine}
    best = [t for t in fine if refused[t] == max(refused.values())]
    return best[len(best) // 2]  # the middle of the best range keeps a margin on both sides


# What the chat tab's "System prompt" box holds until the user changes it (webui/ui/chat.py); the
# document preset's prompt follows it, as in the app (services.chat.rag_system_template).
CHAT_DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
ANSWER_MAX_TOKENS = 160
ANSWER_SAMPLING = SamplingParams(temperature=0.0, max_tokens=ANSWER_MAX_TOKENS, seed=0)  # greedy


@dataclass(frozen=True)
class AnswerVerdict:
    """What one answer cites, read by the app's own citation check (webui/rag/citations.py)."""

    cited: tuple[int, ...]  # distinct passage numbers, in the order first cited
    cites_answer: bool  # it cites the passage that holds the answer
    unsupported: bool  # the page flags it "not supported by the cited passages"
    problems: tuple[str, ...]  # the page's sentences saying why

    @property
    def cites_anything(self) -> bool:
        return bool(self.cited)


def judge_answer(answer: str, passages: Sequence[Passage], answer_number: int) -> AnswerVerdict:
    """The verdict on one answer given ``passages``; ``answer_number`` is the [n] of the passage
    holding the answer (its ``Passage.number``, as the prompt numbered it)."""
    check = check_citations(answer, passages)
    return AnswerVerdict(check.cited, answer_number in check.cited, not check.supported, check.problems)


@dataclass(frozen=True)
class AnsweredQuestion:
    """One reported question the model answered from passages that hold the answer."""

    item: dict
    answer: str
    verdict: AnswerVerdict
    tokens_per_s: float


class _OpenLibrary:
    """The one thing ChatService asks of a DocumentService: its library (here, the collections
    this script ingested, rather than the app's data folder)."""

    def __init__(self, library: DocumentLibrary) -> None:
        self.library = library


def answer_questions(
    library: DocumentLibrary, items: Sequence[dict], model_path: Path, data_dir: Path, *, verbose: bool
) -> tuple[str, list[AnsweredQuestion]]:
    """Ask the model each question as the chat page would with the collection picked, and judge
    the citations of those whose answering passage reached it; returns the model's file name too.

    The prompt is ChatService.prepare_conversation's and the generation its stream(), so what is
    measured is what a user of the page sees, with greedy decoding so runs repeat.
    """
    engine = Engine()
    info = engine.load(model_path, LoadSettings())
    chat = ChatService(engine, HistoryStore(data_dir / "history.db"),
                       documents=_OpenLibrary(library),  # type: ignore[arg-type]
                       presets=PresetStore(data_dir / "presets"))
    answered: list[AnsweredQuestion] = []
    try:
        for item in items:
            prepared = chat.prepare_conversation(
                "eval", [{"role": "user", "content": item["question"]}],
                system_prompt=CHAT_DEFAULT_SYSTEM_PROMPT, sampling=ANSWER_SAMPLING,
                documents=DocumentQuery((item["corpus"],)),
            )
            if prepared.error:
                print(f"  not answered ({prepared.error}): {item['question']}")
                continue
            rank = first_hit(prepared.sources, labelled(item))
            if prepared.answer is not None or rank is None:
                continue  # the answering passage did not reach the model
            last = None
            for last in chat.stream("eval-answers", prepared.conversation,
                                    system_prompt=prepared.system_prompt, sampling=ANSWER_SAMPLING):
                pass
            if last is None or last.error:
                print(f"  generation failed ({last.error if last else 'no reply'}): {item['question']}")
                continue
            verdict = judge_answer(last.text, prepared.sources, prepared.sources[rank - 1].number)
            answered.append(AnsweredQuestion(item, last.text, verdict,
                                             last.stats.tokens_per_s if last.stats else 0.0))
            if verbose and not answered[:-1]:  # the first answer: show the prompt it was written from
                print(f"\nsystem prompt of the first answer:\n{prepared.system_prompt}")
            if verbose:
                cited = ", ".join(f"[{n}]" for n in verdict.cited) or "nothing"
                print(f"\n[{item['corpus']}] {item['question']}\n  answer passage "
                      f"[{prepared.sources[rank - 1].number}] of {len(prepared.sources)}; cites {cited}"
                      f"{'; UNSUPPORTED' if verdict.unsupported else ''}\n  "
                      + "\n  ".join(last.text.strip().splitlines() or ["(empty)"]))
                for problem in verdict.problems:
                    print(f"  ! {problem}")
    finally:
        engine.unload()
    return info.file, answered


def answer_table(answered: Sequence[AnsweredQuestion]) -> list[str]:
    """Per corpus and in all: answers citing anything, citing the answer's passage, flagged, tokens/s."""
    groups: dict[str, list[AnsweredQuestion]] = {}
    for one in answered:
        groups.setdefault(one.item["corpus"], []).append(one)
    if len(groups) > 1:
        groups["all"] = list(answered)
    lines = [f"{'corpus':<14}{'answers':>8}{'cite any':>12}{'cite answer':>14}{'flagged':>12}{'tokens/s':>10}"]
    for name, group in groups.items():
        n = len(group)

        def share(count: int, n: int = n) -> str:
            return f"{count:>3} {count / n:4.0%}"

        lines.append(
            f"{name:<14}{n:>8}{share(sum(a.verdict.cites_anything for a in group)):>12}"
            f"{share(sum(a.verdict.cites_answer for a in group)):>14}"
            f"{share(sum(a.verdict.unsupported for a in group)):>12}"
            f"{statistics.fmean(a.tokens_per_s for a in group):>10.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--embedding-model", default=None)
    parser.add_argument("--reranker-model", default=None,
                        help="a local sentence-transformers CrossEncoder folder (none is packaged)")
    parser.add_argument("--eval-file", type=Path, default=EVAL_FILE)
    parser.add_argument("--sweep", action="store_true",
                        help="also try fusion and heading weights on the tuning half")
    parser.add_argument("--verbose", action="store_true", help="print every question's ranks")
    parser.add_argument("--cut-off-only", action="store_true",
                        help="skip the side-by-side modes; only choose and check the cut-off")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the ingested collections in this folder and reuse them next time")
    parser.add_argument("--answers", action="store_true",
                        help="also have a model answer the reported questions whose passage reaches it, "
                             "and count how its answers cite")
    parser.add_argument("--answer-model", type=Path, default=None,
                        help="the GGUF that answers (default: the app's offline fallback, SmolLM2 135M)")
    parser.add_argument("--answers-limit", type=int, default=None,
                        help="answer at most this many reported questions (default: all)")
    args = parser.parse_args(argv)
    if args.answers_limit is not None and args.answers_limit < 1:
        parser.error("--answers-limit must be at least 1")
    answer_model = args.answer_model
    if args.answers and answer_model is None:
        try:
            answer_model = embedded_model_path()
        except UserError as exc:
            parser.error(f"{exc}; pass --answer-model PATH")
    if answer_model is not None and not answer_model.is_file():
        parser.error(f"--answer-model: no file at {answer_model}")

    spec = json.loads(args.eval_file.read_text())
    split = spec.get("split", "hash")
    if split == "none" and args.sweep:
        parser.error(f"{args.eval_file.name} is never tuned on (split: none); --sweep needs a tuning half")
    reranker = None
    if args.reranker_model:
        from webui.rag.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(args.reranker_model)

    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        staged = stage_corpora(spec, Path(tmp) / "incoming")
        if not staged:
            print("No corpus available; nothing to evaluate.")
            return 2
        library = DocumentLibrary(args.keep or Path(tmp) / "data",
                                  embedding_model=args.embedding_model, reranker=reranker)
        chunks = 0
        start = time.perf_counter()
        for name, files in staged.items():
            if library.store.find("eval", name) is not None:  # kept from an earlier --keep run
                chunks += next(c.chunks for c in library.collections("eval") if c.name == name)
                continue
            library.create_collection("eval", name)
            outcomes = library.ingest("eval", name, files)
            failed = [o.message for o in outcomes if not o.ok]
            if failed:
                print("\n".join(failed))
                return 2
            chunks += sum(o.chunks for o in outcomes)
        ingest_seconds = time.perf_counter() - start

        questions = [q for q in spec["questions"] if q["corpus"] in staged]
        unanswerable = [q for q in spec["unanswerable"] if q["corpus"] in staged]
        unfindable = [
            q["question"] for q in questions
            if not any(contains_answer(p.text, q["answer"])
                       for p in library.passages("eval", q["corpus"], q["file"]))
        ]
        if unfindable:
            print("Answer phrases found in no chunk (fix the eval file):")
            print("\n".join(f"  {q}" for q in unfindable))

        modes: dict[str, Callable[[str, str, int], list[Passage]]] = {
            "vector": lambda q, c, k: library.retrieve("eval", q, [c], k=k, min_score=-1.0,
                                                       mode="vector", rerank=False),
            "keyword": lambda q, c, k: library.retrieve("eval", q, [c], k=k, min_score=-1.0,
                                                        mode="keyword", rerank=False),
            "hybrid": lambda q, c, k: library.retrieve("eval", q, [c], k=k, min_score=-1.0,
                                                       mode="hybrid", rerank=False),
        }
        if reranker is not None:
            modes["hybrid+rerank"] = lambda q, c, k: library.retrieve(
                "eval", q, [c], k=k, min_score=-1.0, mode="hybrid", rerank=True)
        keyword_only = modes["keyword"]  # the heading-weight sweep asks it even with --cut-off-only
        if args.cut_off_only:
            modes = {"hybrid": modes["hybrid"]}
        for warm in modes.values():  # load models and open indexes before any timing
            warm(questions[0]["question"], questions[0]["corpus"], args.k)

        # What the app gives the model with its defaults: each collection's own k and cut-off.
        reaching = [
            first_hit(library.retrieve("eval", item["question"], [item["corpus"]]), labelled(item)) is not None
            for item in questions
        ]
        default_k = max(c.settings.k for c in library.collections("eval"))
        # The same at other k (the cut-off stays the collection's): how many passages it takes.
        reaching_at = {
            k: [first_hit(library.retrieve("eval", item["question"], [item["corpus"]], k=k),
                          labelled(item)) is not None for item in questions]
            for k in K_STEPS if not args.cut_off_only
        }

        rows: dict[str, Row] = {}
        for mode, run in ({} if args.cut_off_only else modes).items():
            row = Row([], [])
            for item in questions:
                began = time.perf_counter()
                passages = run(item["question"], item["corpus"], args.k)
                row.millis.append((time.perf_counter() - began) * 1000)
                row.ranks.append(first_hit(passages, labelled(item)))
            rows[mode] = row

        # Best cosine among the hybrid candidates (what the cut-off compares) and whether the
        # collection lacks a name the question asks about (then no passage is given at any
        # cut-off above 0); a question is refused when no passage reaches the cut-off.
        def best_scores(item: dict) -> tuple[float, float]:
            stored = library.store.find("eval", item["corpus"])
            assert stored is not None
            found = search(library.store, [stored], item["question"],
                           library.embedder.embed_query(item["question"]), k=20, min_scores={})
            best = max((c.cosine for c in found), default=-1.0)
            lacking = bool(library.store.keyword_index(stored).missing_names(item["question"]))
            return (-1.0 if lacking else best), best

        answerable_pairs = [best_scores(q) for q in questions]
        unanswerable_pairs = [best_scores(q) for q in unanswerable]
        answerable_best = [r for r, _ in answerable_pairs]
        unanswerable_best = [r for r, _ in unanswerable_pairs]
        answerable_cos = [c for _, c in answerable_pairs]
        unanswerable_cos = [c for _, c in unanswerable_pairs]

        sweep_lines = []
        if args.sweep:
            tune = [q for q in questions if split_of(q["question"], split) == "tune"]
            # RRF k and the keyword weight at the chosen file-name weight, then the file-name
            # weight (0: off) at the chosen RRF k and keyword weight.
            grid = [(w, r, FILE_NAME_WEIGHT)
                    for r in (10, 30, 60) for w in (0.5, 1, 1.5, 2, 3, 4, 6)]
            grid += [(KEYWORD_WEIGHT, RRF_K, n) for n in (0, 0.5, 1, 2, 4)]
            for keyword_weight, rrf_k, file_name_weight in grid:
                vector_weight = 1
                ranks = []
                for item in tune:
                    stored = library.store.find("eval", item["corpus"])
                    assert stored is not None
                    found = search(
                        library.store, [stored], item["question"],
                        library.embedder.embed_query(item["question"]), k=args.k,
                        min_scores={}, vector_weight=vector_weight, keyword_weight=keyword_weight,
                        rrf_k=rrf_k, file_name_weight=file_name_weight,
                    )
                    ranks.append(answer_rank(
                        ((str(c.metadata.get("file_name", "")), c.text) for c in found), labelled(item)))
                hit1, hitk, mrr = metrics(ranks, args.k)
                sweep_lines.append(
                    f"  RRF k {rrf_k:>2}, vector {vector_weight} : keyword {keyword_weight:<4}"
                    f"file name {file_name_weight:<4}hit@1 {hit1:.3f}  hit@{args.k} {hitk:.3f}  "
                    f"MRR {mrr:.3f}")
            # The BM25 weight of a chunk's heading term against its text (keyword mode; the
            # module's constant is read at query time, so it is set here and put back after).
            chosen_weight = keyword_module.HEADING_WEIGHT
            try:
                for weight in (1.0, 2.0, 4.0, 8.0):
                    keyword_module.HEADING_WEIGHT = weight
                    ranks = [
                        first_hit(keyword_only(item["question"], item["corpus"], args.k), labelled(item))
                        for item in tune
                    ]
                    hit1, hitk, mrr = metrics(ranks, args.k)
                    sweep_lines.append(f"  keyword only, heading weight {weight:<4} hit@1 {hit1:.3f}  "
                                       f"hit@{args.k} {hitk:.3f}  MRR {mrr:.3f}")
            finally:
                keyword_module.HEADING_WEIGHT = chosen_weight

        answer_lines = []
        if args.answers:
            to_answer = [q for q, reached in zip(questions, reaching, strict=True)
                         if reached and split_of(q["question"], split) == "report"]
            asked = to_answer[:args.answers_limit]
            model_file, answered = answer_questions(library, asked, answer_model, Path(tmp),
                                                    verbose=args.verbose)
            answer_lines = [
                f"\nanswers by {model_file} (greedy, at most {ANSWER_MAX_TOKENS} tokens) to the reported "
                f"questions whose answering passage reaches it: {len(answered)} answered of {len(asked)} asked"
                + (f" (--answers-limit {args.answers_limit} of {len(to_answer)})"
                   if len(asked) < len(to_answer) else ""),
                *(answer_table(answered) if answered else ["  none answered"]),
            ]

    report = [i for i, q in enumerate(questions) if split_of(q["question"], split) == "report"]
    tune_idx = [i for i, q in enumerate(questions) if split_of(q["question"], split) == "tune"]
    identifiers = [i for i in report if questions[i].get("identifier")]
    print(f"model: {library.embedder.model_name}; corpora: {', '.join(staged)}; {chunks} chunks "
          f"ingested in {ingest_seconds:.0f} s; {len(questions)} answerable questions "
          f"({len(report)} reported, {len(tune_idx)} tuning), {len(unanswerable)} unanswerable")
    print(f"\n{'mode':<15}{'hit@1':>7}{f'hit@{args.k}':>8}{'MRR':>7}   {'all: hit@1':>10}"
          f"{f'hit@{args.k}':>8}{'MRR':>7}   {'identifiers: hit@1':>18}   {'median ms':>9}")
    for mode, row in rows.items():
        hit1, hitk, mrr = metrics([row.ranks[i] for i in report], args.k)
        all1, allk, allm = metrics(row.ranks, args.k)
        id1, _, _ = metrics([row.ranks[i] for i in identifiers], args.k)
        print(f"{mode:<15}{hit1:7.3f}{hitk:8.3f}{mrr:7.3f}   {all1:10.3f}{allk:8.3f}{allm:7.3f}"
              f"   {id1:18.3f}   {statistics.median(row.millis):9.1f}")
    reported_reaching = sum(reaching[i] for i in report)
    print(f"\nreaches the model with the defaults (hybrid, k {default_k}, cut-off "
          f"{DEFAULT_MIN_SCORE:.2f}): reported {reported_reaching}/{len(report)} "
          f"({reported_reaching / max(1, len(report)):.3f}), all {sum(reaching)}/{len(questions)}")
    for k, reached in reaching_at.items():
        by_half = [f"{half} {sum(reached[i] for i in idx)}/{len(idx)}"
                   for half, idx in (("tuning", tune_idx), ("reported", report)) if idx]
        print(f"  at k {k}: {', '.join(by_half)}")
    if "hybrid+rerank" not in rows and rows:
        print(f"{'hybrid+rerank':<15}   n/a: no cross-encoder is installed or packaged offline "
              "(pass --reranker-model PATH to measure one)")

    def halves(ans: Sequence[float], un: Sequence[float]) -> tuple[list[float], ...]:
        """(tuning answerable, tuning unanswerable, reported answerable, reported unanswerable)"""
        un_split = [split_of(q["question"], split) for q in unanswerable]
        return ([ans[i] for i in tune_idx], [s for s, h in zip(un, un_split, strict=True) if h == "tune"],
                [ans[i] for i in report], [s for s, h in zip(un, un_split, strict=True) if h == "report"])

    for signal, ans, un, default in (
        ("cosine, none where a name asked about is in no chunk (used; default in "
         "webui/rag/settings.py)", answerable_best, unanswerable_best, DEFAULT_MIN_SCORE),
        ("cosine alone (before)", answerable_cos, unanswerable_cos, DEFAULT_MIN_SCORE),
    ):
        tune_ans, tune_un, rep_ans, rep_un = halves(ans, un)
        if split == "none":  # nothing to choose on: the default, on every question
            print(f"\ncut-off on the best passage's {signal}: default {default:.2f}: "
                  f"{sum(s < default for s in ans)}/{len(ans)} answerable questions wrongly refused, "
                  f"{sum(s >= default for s in un)}/{len(un)} unanswerable ones given passages")
            continue
        chosen = choose_cut_off(tune_ans, tune_un)
        print(f"\ncut-off on the best passage's {signal}: chosen on the tuning half (at most "
              f"{MAX_WRONGLY_REFUSED:.0%} of its answerable questions refused): {chosen:.2f}"
              f" (default: {default:.2f})")
        cuts = [("chosen", chosen), ("default", default)]
        for label, cut in cuts:
            for half, a, u in (("tuning", tune_ans, tune_un), ("reported", rep_ans, rep_un)):
                print(f"  {half} half at {cut:.2f} ({label}): {sum(s < cut for s in a)}/{len(a)} "
                      f"answerable questions wrongly refused, {sum(s >= cut for s in u)}/{len(u)} "
                      "unanswerable ones given passages")
        print(f"  answerable median {statistics.median(ans):.3f} (min {min(ans):.3f}); "
              f"unanswerable median {statistics.median(un):.3f} (max {max(un):.3f}); "
              "-1 where a name asked about is in no chunk")
    if answer_lines:
        print("\n".join(answer_lines))
    if sweep_lines:
        print("\nfusion weights and heading weight on the tuning half:")
        print("\n".join(sweep_lines))
    if args.verbose:
        print("\nranks (vector keyword hybrid) per question:")
        for i, item in enumerate(questions):
            marks = " ".join(f"{rows[m].ranks[i] or '-':>2}" for m in rows)
            print(f"{marks}  [{split_of(item['question'], split)}] {item['question']}")
        for i, item in enumerate(questions):
            print(f"answerable used {answerable_best[i]:.3f} cosine {answerable_cos[i]:.3f}  "
                  f"[{split_of(item['question'], split)}] {item['question']}")
        for item, score, cos in zip(unanswerable, unanswerable_best, unanswerable_cos, strict=True):
            print(f"unanswerable used {score:.3f} cosine {cos:.3f}  "
                  f"[{split_of(item['question'], split)}] {item['question']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
