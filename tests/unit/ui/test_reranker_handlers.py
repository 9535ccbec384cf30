"""The Models tab's reranker panel handlers with a fake Services: sentences, the Use list, refusals."""

from __future__ import annotations

import gradio as gr
import pytest

from webui.models.download import RepoNotFound
from webui.ui.rerankers import OFF, RerankerHandlers, progress_sentence

from tests.unit.ui.fake_models import model_services


def test_an_admin_sees_what_is_installed_and_in_use() -> None:
    services = model_services()
    handlers = RerankerHandlers(services)
    status, use = handlers.on_load("alice")
    assert "no reranker is downloaded" in status and use["choices"] == [OFF] and use["value"] == OFF

    services.rerankers.installed = ["org--ce"]
    status, use = handlers.on_load("alice")
    assert status.startswith("Off: document searches are not reranked") and use["choices"] == [OFF, "org--ce"]

    status, use = handlers.do_use("alice", "org--ce")
    assert "In use: **org--ce**" in status and use["value"] == "org--ce"
    status, use = handlers.do_use("alice", OFF)
    assert services.rerankers.in_use is None and use["value"] == OFF


def test_a_reranker_set_at_start_up_cannot_be_changed_from_the_panel() -> None:
    services = model_services()
    services.rerankers.flag = "/srv/ce"
    status, use = RerankerHandlers(services).on_load("alice")
    assert "--reranker-model" in status and use["interactive"] is False
    RerankerHandlers(services).do_use("alice", OFF)
    assert services.rerankers.flag == "/srv/ce"


def test_a_download_reports_its_bytes_then_uses_the_reranker() -> None:
    services = model_services()
    steps = list(RerankerHandlers(services).do_download("alice", " org/ce "))
    progress = [step[2] for step in steps]
    assert progress[0] == "Downloading org/ce…"
    assert progress[-1] == "Downloaded org/ce."
    assert "In use: **org--ce**" in steps[-1][0] and steps[-1][1]["choices"] == [OFF, "org--ce"]
    assert progress_sentence(1_000_000, 2_000_000).endswith("(50%)")


def test_a_failed_download_says_why_and_changes_nothing() -> None:
    services = model_services()
    services.rerankers.download_error = RepoNotFound("The repository org/none does not exist on the hub (or is private).")
    *_, last = RerankerHandlers(services).do_download("alice", "org/none")
    assert last[0] == "**Not downloaded:** The repository org/none does not exist on the hub (or is private)."
    assert last[1] == gr.update() and services.rerankers.installed == []


@pytest.mark.parametrize("call", [
    lambda h: h.do_use("bob", OFF),
    lambda h: list(h.do_download("bob", "org/ce")),
    lambda h: h.do_cancel("bob"),
    lambda h: h.do_delete("bob", "org--ce"),
])
def test_a_plain_user_is_refused_with_a_sentence(call) -> None:
    services = model_services()
    services.rerankers.installed = ["org--ce"]
    result = call(RerankerHandlers(services))
    text = result[-1][0] if isinstance(result, list) else result if isinstance(result, str) else result[0]
    assert "Only an admin can change the reranker." in text
    assert services.rerankers.installed == ["org--ce"]
    assert RerankerHandlers(services).on_load("bob") == ("", gr.update(choices=[OFF], value=OFF))
