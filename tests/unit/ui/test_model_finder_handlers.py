"""The Models tab's finder with a fake Services: recommended rows, one-click selection, hub search and picking."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from webui.services.models import DownloadError, HubModelFile, Recommendation
from webui.ui.model_finder import FinderHandlers, pick_found, pick_recommendation
from webui.ui.models import ModelHandlers, build_models_tab

from tests.unit.ui.fake_models import model_services

GIB = 2**30


def recommendation(label: str, repo_id: str, filename: str, *, best: bool = False, downloaded: bool = False) -> Recommendation:
    from webui.models.fit import FitVerdict

    return Recommendation(label=label, repo_id=repo_id, filename=filename, size_bytes=GIB, best=best,
                          fit=FitVerdict("yes", "needs about 1.5 GiB; 12.0 GiB of RAM is free"),
                          why="Best for this machine." if best else "Smaller and faster.", downloaded=downloaded)


PICKS = [recommendation("Qwen3 4B", "ggml-org/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", best=True),
         recommendation("Qwen3 1.7B", "unsloth/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q4_K_M.gguf", downloaded=True)]
FOUND = [HubModelFile("org/Tiny-GGUF", "tiny-Q4_K_M.gguf", 1, 512 * 2**20, "Q4_K_M", "yes",
                      "needs about 0.9 GiB; 12.0 GiB of RAM is free", False),
         HubModelFile("org/Tiny-GGUF", "tiny-Q8_0.gguf", 1, GIB, "Q8_0", "yes", "needs about 1.5 GiB; 12.0 GiB of RAM is free", True),
         HubModelFile("other/Huge-GGUF", "huge-F16.gguf", 1, 200 * GIB, "F16", "no",
                      "needs about 240.2 GiB, more than this machine's 16.0 GiB of RAM", False)]


def selected(index: list[int] | int) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": ""})


def test_an_admin_sees_the_recommendations_with_the_best_already_selected() -> None:
    fake = model_services()
    fake.models.recommended = list(PICKS)
    rows, files, repo, filename, sentence = FinderHandlers(fake).recommended_view("alice")
    assert rows == [["★ Qwen3 4B", "1.0 GB", "yes: needs about 1.5 GiB; 12.0 GiB of RAM is free", "Best for this machine.", ""],
                    ["Qwen3 1.7B", "1.0 GB", "yes: needs about 1.5 GiB; 12.0 GiB of RAM is free", "Smaller and faster.", "yes"]]
    assert (repo, filename) == ("ggml-org/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf")
    assert sentence == "Selected: **Qwen3 4B**. Press Download selected to get it."
    assert fake.models.calls == [], "nothing was asked of the hub"


def test_a_plain_user_sees_the_same_rows_read_only() -> None:
    fake = model_services()
    fake.models.recommended = list(PICKS)
    rows = FinderHandlers(fake).read_only_table("bob")
    assert [row[0] for row in rows] == ["★ Qwen3 4B", "Qwen3 1.7B"]
    assert rows == FinderHandlers(fake).recommended_table("alice")[0]


def test_clicking_a_row_selects_it_and_download_selected_starts_that_download() -> None:
    fake = model_services()
    fake.models.recommended = list(PICKS)
    rows, files, *_ = FinderHandlers(fake).recommended_view("alice")
    repo, filename, sentence = pick_recommendation(files, rows, selected([1, 3]))
    assert (repo, filename) == ("unsloth/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q4_K_M.gguf")
    assert sentence == "Selected: **Qwen3 1.7B**. Press Download selected to get it."
    job_id, progress, status, timer = ModelHandlers(fake).do_download("alice", repo, filename)
    assert fake.models.jobs[job_id].filename == "Qwen3-1.7B-Q4_K_M.gguf" and timer == gr.update(active=True)
    assert pick_recommendation(files, rows, selected([5, 0]))[2] == "Pick a row, then press Download selected."


def test_a_search_lists_each_file_with_its_size_quant_and_fit() -> None:
    fake = model_services()
    fake.models.found = list(FOUND)
    rows, status = FinderHandlers(fake).search("alice", "  tiny ")
    assert status == "3 GGUF files in 2 repositories match 'tiny'. Pick a row to fill the download below."
    assert rows[0] == ["org/Tiny-GGUF", "tiny-Q4_K_M.gguf", "512 MB", "Q4_K_M",
                       "yes: needs about 0.9 GiB; 12.0 GiB of RAM is free", ""]
    assert rows[2][4] == "no: needs about 240.2 GiB, more than this machine's 16.0 GiB of RAM"
    assert fake.models.calls == ["search tiny"]
    fake.models.found = []
    assert FinderHandlers(fake).search("alice", "nothing") == ([], "No GGUF models on the hub match 'nothing'.")


def test_an_unreachable_hub_is_one_sentence_and_the_results_are_emptied() -> None:
    fake = model_services()
    fake.models.search_error = DownloadError("The hub at https://huggingface.co cannot be reached (this machine looks "
                                             "offline), so search is not available; the models already here work as before.")
    with pytest.warns(UserWarning, match="cannot be reached"):
        rows, status = FinderHandlers(fake).search("alice", "qwen")
    assert rows == [] and status == f"**Cannot search:** {fake.models.search_error}"


def test_a_plain_user_cannot_search_the_hub() -> None:
    fake = model_services()
    with pytest.warns(UserWarning):
        rows, status = FinderHandlers(fake).search("bob", "qwen")
    assert (rows, status) == ([], "**Cannot search:** Only an admin can manage models.")
    assert fake.models.calls == []


def test_picking_a_search_result_fills_the_repository_and_that_repos_files() -> None:
    rows, _ = FinderHandlers(SimpleNamespace(models=SimpleNamespace(search_hub=lambda user, q: FOUND),
                                             user=lambda name: name)).search("alice", "tiny")
    repo, files, status = pick_found(rows, selected([1, 0]))
    assert repo == "org/Tiny-GGUF"
    assert files["value"] == "tiny-Q8_0.gguf"
    assert files["choices"] == [("tiny-Q4_K_M.gguf · 512 MB · Q4_K_M · fits: yes", "tiny-Q4_K_M.gguf"),
                                ("tiny-Q8_0.gguf · 1.0 GB · Q8_0 · fits: yes", "tiny-Q8_0.gguf")]
    assert status == "Picked tiny-Q8_0.gguf from org/Tiny-GGUF: press Download."


def test_the_finder_is_wired_into_the_models_tab() -> None:
    with gr.Blocks() as blocks:
        build_models_tab(model_services("a.gguf"))
    events = {fn.name: fn for fn in blocks.fns.values()}
    assert [c.elem_id for c in events["search"].outputs] == ["models-search-results", "models-search-status"]
    assert [c.elem_id for c in events["recommended_view"].outputs][0] == "models-recommended"
    assert {"pick_recommendation", "pick_found", "recommended_table"} <= events.keys()


def test_the_read_only_view_fills_its_recommendations_when_the_tab_is_opened() -> None:
    with gr.Blocks() as blocks, gr.Tabs(), gr.Tab("Models") as tab:
        build_models_tab(model_services("a.gguf"), tab)
    [read_only] = [fn for fn in blocks.fns.values() if fn.name == "read_only_table"]
    assert [c.elem_id for c in read_only.outputs] == ["models-shared-recommended"]
