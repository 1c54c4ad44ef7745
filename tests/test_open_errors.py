"""Opening a store: files that are not ours, newer schemas, read-only files and directories,
missing directories, directory paths, locked databases — each a clear ChimewayError that
names the problem, and the file left as it was (issue 4).

Permissions are checked in a forked child that drops to ``nobody`` when the tests run as
root (root may write a mode-0444 file, so a read-only file is only read-only for others).
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import proc_worker
import pytest
from backends import sql
from proc_worker import JOURNEY, SPAWN

from chimeway_lite import (
    ChimewayError,
    InvalidArgument,
    SchemaMismatch,
    StorageError,
    Store,
    StoreBusy,
)
from chimeway_lite.backends.sqlite.connection import APPLICATION_ID, SCHEMA_VERSION


def _bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _raw(path: str, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


# -- files that are not ours ---------------------------------------------------------------


def test_a_database_of_another_application_is_refused_untouched(db_path: str) -> None:
    _raw(
        db_path,
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY)",
        "INSERT INTO invoices DEFAULT VALUES",
    )
    before = _bytes(db_path)
    with pytest.raises(SchemaMismatch) as caught:
        Store(db_path)
    assert "not a chimeway_lite store" in caught.value.problem
    assert caught.value.path == db_path
    assert _bytes(db_path) == before


def test_a_file_stamped_by_another_application_is_refused(db_path: str) -> None:
    _raw(db_path, "PRAGMA application_id = 1234")
    with pytest.raises(SchemaMismatch, match="not a chimeway_lite store"):
        Store(db_path)


def test_a_file_that_is_not_sqlite_is_refused_untouched(db_path: str) -> None:
    Path(db_path).write_bytes(b"%PDF-1.7 certainly not a database\n" * 200)
    before = _bytes(db_path)
    with pytest.raises(SchemaMismatch) as caught:
        Store(db_path)
    assert "not an SQLite database" in str(caught.value)
    assert _bytes(db_path) == before


def test_an_empty_file_becomes_a_store(db_path: str) -> None:
    Path(db_path).touch()
    with Store(db_path) as store:
        assert sql(store).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert store.upsert_definition("n", JOURNEY).workflow_key == "escalation"


def test_an_empty_file_of_another_page_size_becomes_a_store_that_keeps_it(db_path: str) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("VACUUM")  # an empty database, its header written with that page size
    conn.close()
    with Store(db_path) as store:
        assert sql(store).execute("PRAGMA page_size").fetchone()[0] == 1024
        store.upsert_definition("n", JOURNEY)
    with Store(db_path) as store:
        assert sql(store).execute("PRAGMA page_size").fetchone()[0] == 1024
        assert store.verify() == []


def test_a_newer_schema_version_is_refused_with_both_versions(db_path: str) -> None:
    Store(db_path).close()
    _raw(db_path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaMismatch) as caught:
        Store(db_path)
    assert "newer chimeway_lite" in caught.value.problem
    assert f"schema version {SCHEMA_VERSION + 1}" in caught.value.problem
    assert f"knows {SCHEMA_VERSION}" in caught.value.problem


def test_an_unknown_older_schema_version_is_refused(db_path: str) -> None:
    Store(db_path).close()
    _raw(db_path, "PRAGMA user_version = 0")
    with pytest.raises(SchemaMismatch, match="unknown chimeway_lite schema version 0"):
        Store(db_path)


# -- paths ----------------------------------------------------------------------------------


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "absent" / "store.db")
    with pytest.raises(StorageError) as caught:
        Store(path)
    assert "does not exist" in caught.value.problem
    assert str(tmp_path / "absent") in caught.value.problem
    assert not (tmp_path / "absent").exists()


def test_a_directory_is_not_a_database_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        Store(str(tmp_path))


@pytest.mark.parametrize("bad", [None, 42, b"bytes.db", ["x.db"]])
def test_a_path_must_be_a_path(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        Store(bad)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
def test_busy_timeout_must_be_a_number_at_least_zero(db_path: str, timeout: Any) -> None:
    with pytest.raises(InvalidArgument):
        Store(db_path, busy_timeout=timeout)


def test_a_closed_store_says_so(db_path: str) -> None:
    store = Store(db_path)
    store.close()
    store.close()
    with pytest.raises(ChimewayError, match="closed"):
        store.get_run("x")


# -- permissions (a child process without root's privileges) -------------------------------


def _unprivileged(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child as ``nobody`` (when we are root); return its result,
    or re-raise the exception it raised."""
    nobody = pwd.getpwnam("nobody")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(reader)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                outcome: tuple[str, Any] = ("ok", work())
            except BaseException as exc:
                outcome = ("raised", exc)
            with os.fdopen(writer, "wb") as out:
                pickle.dump(outcome, out)
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as source:
        data = source.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "raised":
        raise value
    return value


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged child can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="chimeway-perm-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def _open_and_write(path: str) -> str:
    with Store(path) as store:
        return store.upsert_definition("n", JOURNEY).id


def test_a_read_only_file_is_refused_with_the_reason(shared_dir: Path) -> None:
    path = str(shared_dir / "store.db")
    Store(path).close()
    os.chmod(path, 0o444)
    before = _bytes(path)
    with pytest.raises(StorageError) as caught:
        _unprivileged(lambda: _open_and_write(path))
    assert "read-only" in caught.value.problem
    assert _bytes(path) == before


def test_the_unprivileged_child_can_use_a_store_it_may_write(shared_dir: Path) -> None:
    # The control for the test above: the same child succeeds where it has permission.
    shared_dir.chmod(0o777)
    path = str(shared_dir / "store.db")
    Store(path).close()
    for name in os.listdir(shared_dir):
        os.chmod(shared_dir / name, 0o666)
    assert _unprivileged(lambda: _open_and_write(path))


def test_a_new_file_in_a_read_only_directory_is_refused(shared_dir: Path) -> None:
    shared_dir.chmod(0o555)
    path = str(shared_dir / "store.db")
    with pytest.raises(StorageError) as caught:
        _unprivileged(lambda: _open_and_write(path))
    assert "is not writable" in caught.value.problem
    assert os.listdir(shared_dir) == []


def test_an_existing_file_in_a_read_only_directory_names_the_missing_companions(
    shared_dir: Path,
) -> None:
    path = str(shared_dir / "store.db")
    Store(path).close()
    for name in os.listdir(shared_dir):
        if name != "store.db":
            os.unlink(shared_dir / name)
    os.chmod(path, 0o666)
    shared_dir.chmod(0o555)
    with pytest.raises(StorageError) as caught:
        _unprivileged(lambda: _open_and_write(path))
    assert "store.db-wal" in caught.value.problem
    assert "store.db-lock" in caught.value.problem
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666


# -- locked databases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "prepare, statements",
    [
        # A brand-new file another program is writing (rollback journal: readers wait too).
        (None, ["CREATE TABLE IF NOT EXISTS t (x)", "BEGIN EXCLUSIVE", "INSERT INTO t VALUES (1)"]),
        # Our store, held by a program that took it in exclusive locking mode.
        (
            "store",
            [
                "PRAGMA locking_mode = EXCLUSIVE",
                "BEGIN EXCLUSIVE",
                "UPDATE workflow_definitions SET updated_at = updated_at",
            ],
        ),
    ],
    ids=["new file mid-write", "store in exclusive locking mode"],
)
@pytest.mark.slow
def test_a_locked_database_is_store_busy_after_the_timeout(
    db_path: str, prepare: str | None, statements: list[str]
) -> None:
    if prepare == "store":
        _open_and_write(db_path)
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(
        target=proc_worker.hold_statements, args=(db_path, statements, ready, release), daemon=True
    )
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(StoreBusy) as caught:
            Store(db_path, busy_timeout=0.2)
        assert caught.value.timeout == 0.2
    finally:
        release.set()
        holder.join(30)
    assert holder.exitcode == 0
