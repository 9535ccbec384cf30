"""How a document answer shows its sources: [n] chips in the answer that open the passage they cite,
each passage trimmed around the sentences that share words with the answer (highlighted), a warning
under an answer whose citations the passages do not support, and a note when it cites none."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from webui.services.citations import check_answer, citation_markers, passage_excerpt, words_cited_for

NO_CITATION_NOTE = "The answer cites no passage; these were retrieved, best match first."
_FENCE = "```"


def answer_with_chips(answer: str, given: set[int]) -> str:
    """The answer with each "[n]" of a passage it was given turned into a chip that opens that passage
    (chat_script.py; Gradio keeps classes, not data- attributes); numbers it was not given, and
    markers inside code blocks, stay as written."""
    parts = answer.split(_FENCE)
    for index in range(0, len(parts), 2):  # outside code fences only
        text, pieces, at = parts[index], [], 0
        for marker in citation_markers(text):
            if not any(n in given for n in marker.numbers):
                continue
            pieces.append(text[at:marker.start])
            pieces.append("".join(
                f'<a class="cite-chip cite-{n}" href="#" title="Open passage {n}">{n}</a>'
                if n in given else f"[{n}]" for n in marker.numbers))
            at = marker.end
        parts[index] = "".join(pieces) + text[at:]
    return _FENCE.join(parts)


def passage_view(source: dict[str, Any], answer_words: set[str]) -> str:
    """One passage, folded under its file and page: its matching sentences highlighted, trimmed around them."""
    excerpt = passage_excerpt(str(source.get("text", "")), answer_words)
    sentences = [f"<mark>{html.escape(text)}</mark>" if matches else html.escape(text)
                 for text, matches in excerpt.sentences]
    body = ("… " if excerpt.cut_before else "") + " ".join(sentences) + (" …" if excerpt.cut_after else "")
    heading = html.escape(str(source.get("citation") or source.get("file_name", "")))
    number = int(source.get("number") or 0)
    return (f'<details class="passage passage-{number}"><summary><b>[{number}]</b> {heading}</summary>'
            f'<p class="passage-text">{body}</p></details>')


def sources_view(sources: Sequence[dict[str, Any]], answer: str = "", *, checked: bool = False) -> str:
    """The answer's sources, folded: each passage under its file and page. ``checked`` (a finished answer)
    adds the citation check: a warning under the answer when the passages do not support its citations,
    and, when it cites none, the sources ranked with a note saying so."""
    check = check_answer(answer, sources)
    warning = ""
    ordered = list(sources)
    note = ""
    if checked and answer.strip():
        warning = "".join(f'<p class="citation-warning">⚠ {html.escape(problem)}</p>' for problem in check.problems)
        if check.cites_nothing:
            ordered.sort(key=lambda s: -float(s.get("score") or 0.0))
            note = f'<p class="sources-note">{NO_CITATION_NOTE}</p>'
    items = [passage_view(s, words_cited_for(check, int(s.get("number") or 0), answer)) for s in ordered]
    files = ", ".join(dict.fromkeys(html.escape(str(s.get("file_name", ""))) for s in ordered))
    opened = " open" if note else ""  # uncited sources are the only way to check the answer: shown at once
    return (f"{warning}<details class=\"sources\"{opened}><summary>Sources: {files}</summary>\n{note}"
            + "\n".join(items) + "\n</details>")
