"""A process killed with SIGKILL while streaming messages or a reply to history loses nothing it committed."""

from __future__ import annotations

import ast
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from webui.history import HistoryStore

REPO_ROOT = Path(__file__).resolve().parents[2]
BODY_CHARS = 200_000  # large rows span many pages, so a kill is likely to land inside a write

# The child acknowledges each message on stdout only after append() has returned, that is after
# COMMIT: every acknowledged message must survive the kill.
CHILD = f"""
import sys
from pathlib import Path
from webui.history import HistoryStore

store = HistoryStore(Path(sys.argv[1]))
conversation_id, start = sys.argv[2], int(sys.argv[3])
body = "x" * {BODY_CHARS}
for i in range(start, start + 100_000):
    store.append("alice", conversation_id, "assistant", f"{{i:08d}}" + body, meta={{"i": i}})
    print(i, flush=True)
"""

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def stream_then_kill(db_path: Path, conversation_id: str, start: int, kill_after: int) -> list[int]:
    """Run the child until it acknowledged *kill_after* messages, SIGKILL it, return all acks."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path), conversation_id, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: list[int] = []
    try:
        while len(acked) < kill_after:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"child ended early: {child.wait()} {child.stderr.read()}")
            acked.append(int(line))
        time.sleep(random.uniform(0, 0.01))  # somewhere inside the next append
        os.kill(child.pid, signal.SIGKILL)
        # lines already in the pipe were printed after their commits: they count as acknowledged
        acked.extend(int(line) for line in child.stdout.read().split())
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
    return acked


def test_sigkill_mid_stream_keeps_every_committed_message(data_dir: Path) -> None:
    db_path = data_dir / "history.sqlite3"
    conversation = HistoryStore(db_path).create("alice", "crash test")
    committed: list[int] = []  # indices known to be in the database before this round

    for kill_after in (5, 12, 20):  # three crashes, each resuming where the last left off
        acked = stream_then_kill(db_path, conversation.id, len(committed), kill_after)
        must_survive = committed + acked
        assert must_survive == list(range(len(must_survive)))

        store = HistoryStore(db_path)  # reopening recovers the WAL left by the killed process
        messages = store.messages("alice", conversation.id)
        indices = [m.meta["i"] for m in messages]
        # everything acknowledged is there, in order; at most one more (committed, not yet
        # acknowledged when the kill came); nothing half-written
        assert indices[: len(must_survive)] == must_survive
        assert len(indices) - len(must_survive) in (0, 1)
        assert indices == list(range(len(indices)))
        for message in messages:
            assert message.content == f"{message.meta['i']:08d}" + "x" * BODY_CHARS
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        committed = indices

    # and the database still takes writes after the crashes
    store = HistoryStore(db_path)
    store.append("alice", conversation.id, "user", "still here?")
    assert store.messages("alice", conversation.id)[-1].content == "still here?"
    assert store.list("alice")[0].id == conversation.id


# A reply streamed by the real engine through ChatService, in a process killed mid-reply: what it
# had acknowledged as shown must be in the history afterwards, marked unfinished.
REPLY_CHILD = """
import sys
from pathlib import Path
from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.services import ChatService

engine = Engine()
engine.load(Path(sys.argv[2]), LoadSettings(n_ctx=1024, n_threads=1))
chat = ChatService(engine, HistoryStore(Path(sys.argv[1])))
conversation = chat.add_user_message("alice", None, "Tell me an extremely long story about a lighthouse.")
print("conversation", conversation, flush=True)
# The grammar lets the reply end only after an unlikely word, so it runs to its length limit (about 25 s
# here) and is still streaming at the kill: without it the story ended after 350 tokens, which the
# AVX-512 build wrote before the kill.
sampling = SamplingParams(max_tokens=2000, temperature=0.8, seed=5, grammar='root ::= [^|]* "ZQXJ"')
for update in chat.reply_in("alice", "s", conversation, system_prompt="", sampling=sampling):
    print("shown", repr(update.text), flush=True)
"""


def test_sigkill_mid_reply_keeps_the_reply_streamed_so_far(data_dir: Path, smollm_path: Path) -> None:
    from webui.services.chat import SAVE_INTERVAL_S

    db_path = data_dir / "history.sqlite3"
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen([sys.executable, "-c", REPLY_CHILD, str(db_path), str(smollm_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": pythonpath})
    try:
        conversation = child.stdout.readline().split()[1]
        shown = ""
        while len(shown) < 40:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the child ended early: {child.wait()} {child.stderr.read()[-2000:]}")
            shown = ast.literal_eval(line.split(" ", 1)[1])
        time.sleep(2 * SAVE_INTERVAL_S + 1)  # the next save comes within SAVE_INTERVAL_S and one token
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()

    [question, reply] = HistoryStore(db_path).messages("alice", conversation)
    assert question.role == "user" and reply.role == "assistant"
    assert reply.meta.get("incomplete") is True and "stats" not in reply.meta
    assert reply.content.startswith(shown), (shown, reply.content)
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
