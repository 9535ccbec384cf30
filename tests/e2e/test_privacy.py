"""Privacy: from start-up through a chat, the app connects to nothing but loopback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.app_server import running_app

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# The app must keep itself private: none of these may be inherited from the test runner.
PRIVACY_VARIABLES = ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED", "ANONYMIZED_TELEMETRY",
                     "HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK")


def outside_connections(audit_lines: list[str]) -> list[str]:
    """Audit events whose address or looked-up host is not loopback (Unix sockets are local)."""
    outside = []
    for line in audit_lines:
        kind, _, raw = line.partition(" ")
        if kind not in ("connect", "getaddrinfo"):
            continue
        value = ast.literal_eval(raw)
        host = value[0] if kind == "connect" and isinstance(value, tuple) else value
        if kind == "connect" and not isinstance(value, tuple):
            continue  # a Unix socket path
        if host is not None and host not in LOOPBACK:
            outside.append(line)
    return outside


def test_outside_connections_flags_only_non_loopback_events() -> None:
    lines = ["hook-installed", "connect ('127.0.0.1', 7860)", "connect '/run/x.sock'", "getaddrinfo 'localhost'",
             "connect ('93.184.216.34', 443)", "getaddrinfo 'huggingface.co'"]
    assert outside_connections(lines) == ["connect ('93.184.216.34', 443)", "getaddrinfo 'huggingface.co'"]


@pytest.mark.e2e
@pytest.mark.parametrize("offline", [True, False], ids=["offline", "default-mode"])
def test_start_up_and_a_chat_connect_only_to_loopback(tmp_path: Path, smollm_path: Path, page, offline) -> None:
    audit_log = tmp_path / "audit.log"
    args = ["--model", str(smollm_path), "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models")]
    if offline:
        args.append("--offline")
    with running_app(tmp_path, args, audit_log=audit_log, drop_env=PRIVACY_VARIABLES) as app:
        page.goto(app.url)
        page.get_by_label("Message", exact=True).fill("Say hello in one short sentence.")
        page.get_by_role("button", name="Send").click()
        page.wait_for_function(
            "() => { const r = document.querySelectorAll(\"[data-testid='bot']\");"
            " return r.length && r[r.length-1].innerText.includes('tokens/s'); }"
        )
        assert app.status()["model"]["file"] == smollm_path.name
    lines = audit_log.read_text().splitlines()
    assert lines[0] == "hook-installed", "the audit hook must be active for this test to mean anything"
    assert outside_connections(lines) == []
