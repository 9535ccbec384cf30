"""Finding a model in the Models tab: the catalog's picks for this machine, and a hub search by name.

Nothing here contacts the hub until the user presses Search or a Download button: the recommendations
come from the built-in catalog. Picking a row only fills boxes; the download itself is the Models tab's
(one job, one progress bar, its errors), wired in :mod:`webui.ui.models`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.services import Services
from webui.services.models import HubModelFile, Recommendation
from webui.ui.feedback import handled

RECOMMENDED_HEADERS = ["Model", "Size", "Fits this machine", "Why", "Downloaded"]
FOUND_HEADERS = ["Repository", "File", "Size", "Quantization", "Fits this machine", "Downloaded"]
# Long sentences in "Fits" and "Why" wrap inside their share of a laptop's width.
RECOMMENDED_WIDTHS = ["22%", "8%", "28%", "32%", "10%"]
FOUND_WIDTHS = ["22%", "26%", "7%", "11%", "24%", "10%"]
BEST_MARK = "★ "


def human_size(size_bytes: int) -> str:
    if size_bytes >= 2**30:
        return f"{size_bytes / 2**30:.1f} GB"
    return f"{size_bytes / 2**20:.0f} MB"


def recommended_rows(recommendations: list[Recommendation]) -> list[list[Any]]:
    return [[(BEST_MARK if r.best else "") + r.label, human_size(r.size_bytes), f"{r.fit.label}: {r.fit.reason}",
             r.why, "yes" if r.downloaded else ""] for r in recommendations]


def found_rows(files: list[HubModelFile]) -> list[list[Any]]:
    return [[f.repo_id, f.filename, human_size(f.size_bytes), f.quant or "?", f"{f.fits}: {f.fit_reason}",
             "yes" if f.downloaded else ""] for f in files]


def selected_sentence(label: str) -> str:
    return f"Selected: **{label.removeprefix(BEST_MARK)}**. Press Download selected to get it."


NOTHING_SELECTED = "Pick a row, then press Download selected."


class FinderHandlers:
    """What the finder's events do, for a user name and plain values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.models = services.models

    @handled("Listing the recommended models", lambda message: ([], []))
    def recommended_table(self, username: str | None) -> tuple[list[list[Any]], list[list[str]]]:
        """The rows, and each row's [repository, file] for picking; every signed-in user may see them."""
        recommendations = self.models.recommendations(self.services.user(username))
        return recommended_rows(recommendations), [[r.repo_id, r.filename] for r in recommendations]

    @handled("Listing the recommended models", lambda message: [])
    def read_only_table(self, username: str | None) -> list[list[Any]]:
        """The rows alone, for a user who cannot download (the tab shows them without buttons)."""
        return recommended_rows(self.models.recommendations(self.services.user(username)))

    @handled("Listing the recommended models", lambda message: ([], [], None, None, f"⚠️ {message}"))
    def recommended_view(self, username: str | None) -> tuple[Any, ...]:
        """An admin's first view: the table with its best row already selected, so one click downloads it."""
        rows, files = self.recommended_table(username)
        if not files:
            return rows, files, None, None, ""
        return rows, files, files[0][0], files[0][1], selected_sentence(rows[0][0])

    @handled("Searching the hub", lambda message: ([], f"**Cannot search:** {message}"))
    def search(self, username: str | None, query: str) -> tuple[list[list[Any]], str]:
        """The GGUF files of the repositories whose name contains ``query``, and a sentence on what was found."""
        query = (query or "").strip()
        found = self.models.search_hub(self.services.user(username), query)
        if not found:
            return [], f"No GGUF models on the hub match '{query}'."
        repos = len({f.repo_id for f in found})
        return (found_rows(found), f"{len(found)} GGUF files in {repos} repositor{'y' if repos == 1 else 'ies'} "
                                   f"match '{query}'. Pick a row to fill the download below.")


def pick_recommendation(files: list[list[str]], rows: list[list[Any]], evt: gr.SelectData) -> tuple[Any, ...]:
    """The clicked row's repository and file, kept for Download selected (no hub call)."""
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if not isinstance(row, int) or not 0 <= row < len(files):
        return None, None, NOTHING_SELECTED
    return files[row][0], files[row][1], selected_sentence(str(rows[row][0]))


def pick_found(rows: list[list[Any]], evt: gr.SelectData) -> tuple[Any, ...]:
    """Fill the download boxes with the clicked search result: its repository, and its file among that repo's."""
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if not isinstance(row, int) or not 0 <= row < len(rows):
        return gr.update(), gr.update(), gr.update()
    repo_id, filename = str(rows[row][0]), str(rows[row][1])
    choices = [(f"{r[1]} · {r[2]} · {r[3]} · fits: {str(r[4]).split(':')[0]}", r[1]) for r in rows if r[0] == repo_id]
    return (repo_id, gr.update(choices=choices, value=filename),
            f"Picked {filename} from {repo_id}: press Download.")
