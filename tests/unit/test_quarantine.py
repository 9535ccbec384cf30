"""The one helper every store uses for a damaged file: kept aside with a timestamp, found again to report."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from webui.quarantine import (
    SQLITE_SIDECARS,
    aside_name,
    file_key,
    is_damaged_database,
    keep_aside,
    set_aside_files,
    set_aside_notice,
)

NOW = datetime(2026, 11, 29, 18, 5, 9, tzinfo=timezone.utc)


def test_the_aside_name_carries_the_utc_time_and_is_numbered_when_taken(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    first = aside_name(path, NOW)
    assert first.name == "users.json.corrupt-20261129-180509"
    first.write_text("earlier")
    assert aside_name(path, NOW).name == "users.json.corrupt-20261129-180509-1"


def test_keep_aside_moves_the_file_and_its_sidecars_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"garbage")
    Path(f"{path}-wal").write_bytes(b"wal")
    kept = keep_aside(path, "file is not a database", sidecars=SQLITE_SIDECARS, now=NOW)
    assert kept is not None and not path.exists() and kept.kept_as.read_bytes() == b"garbage"
    assert Path(f"{kept.kept_as}-wal").read_bytes() == b"wal" and not Path(f"{path}-wal").exists()
    assert "file is not a database" in kept.message() and kept.kept_as.name in kept.message()
    assert "kept aside as" in caplog.text and caplog.records[-1].levelname == "WARNING"
    assert set_aside_files(tmp_path) == [kept.kept_as]  # not its -wal


def test_a_file_rewritten_since_it_was_read_stays_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text("{broken")
    seen = file_key(path)
    path.write_text('{"keys": []}  ')  # another process wrote a good one meanwhile
    assert keep_aside(path, "broken", if_unchanged=seen) is None
    assert path.read_text() == '{"keys": []}  ' and set_aside_files(tmp_path) == []
    assert keep_aside(tmp_path / "gone.json", "broken") is None  # someone else already moved it


def test_only_damage_counts_as_damage_not_a_lock(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database " * 100)
    with closing(sqlite3.connect(garbage)) as db, pytest.raises(sqlite3.DatabaseError) as damaged:
        db.execute("SELECT * FROM sqlite_master")
    assert is_damaged_database(damaged.value)
    good = tmp_path / "good.sqlite3"
    with closing(sqlite3.connect(good, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        with closing(sqlite3.connect(good, timeout=0.05)) as db, pytest.raises(sqlite3.OperationalError) as locked:
            db.execute("SELECT * FROM t")
    assert not is_damaged_database(locked.value)
    assert not is_damaged_database(OSError("disk full"))


def test_set_aside_files_finds_files_and_folders_but_not_in_uploads_or_chroma(tmp_path: Path) -> None:
    (tmp_path / "presets" / "private" / "bob").mkdir(parents=True)
    (tmp_path / "presets" / "private" / "bob" / "x.yaml.corrupt-20261129-180509").write_text("x")
    (tmp_path / "chroma.corrupt-20261129-180509").mkdir()
    (tmp_path / "chroma.corrupt-20261129-180509" / "inside.corrupt-1").write_text("not listed: inside a kept folder")
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "notes.corrupt-1.txt").write_text("a user's own file")
    assert [p.name for p in set_aside_files(tmp_path)] == [
        "chroma.corrupt-20261129-180509", "x.yaml.corrupt-20261129-180509"]
    assert set_aside_files(tmp_path / "missing") == []


def test_the_notice_names_each_kept_file_relative_to_the_data_dir(tmp_path: Path) -> None:
    assert set_aside_notice(tmp_path) is None
    (tmp_path / "users.json").write_text("{")
    keep_aside(tmp_path / "users.json", "not JSON", now=NOW)
    (tmp_path / "keyword").mkdir()
    (tmp_path / "keyword" / "c.sqlite3").write_text("x")
    keep_aside(tmp_path / "keyword" / "c.sqlite3", "file is not a database", now=NOW)
    notice = set_aside_notice(tmp_path)
    assert notice is not None
    assert "keyword/c.sqlite3.corrupt-20261129-180509, users.json.corrupt-20261129-180509" in notice
