"""The benchmark's writer and worker processes: start them, gather what each reports, clean up.

Each child puts ``(index, "ok", value)`` or ``(index, "error", traceback)`` on ``out`` once;
:func:`gather` starts the children, waits for one report from each (or ``timeout``), always
joins them (killing one that does not end), and raises with every child's traceback when any
failed, so a benchmark never prints a figure measured on a broken run.
"""

from __future__ import annotations

import os
import queue
import sqlite3
from typing import Any


def gather(
    children: list[Any], out: Any, timeout: float, what: str, barrier: Any = None
) -> dict[int, Any]:
    """Start ``children`` and return each one's value by index; a failure raises
    ``RuntimeError`` (``what`` names the children in its message; ``barrier``, when given, is
    aborted at the first failure so the others stop waiting on it)."""
    for child in children:
        child.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in children:
            index, status, value = out.get(timeout=timeout)
            if status == "ok":
                results[index] = value
            else:
                errors.append(f"{what} {index}:\n{value}")
                if barrier is not None:
                    barrier.abort()  # release the others if they still wait
    except queue.Empty:
        errors.append(f"the {what}s did not finish within {timeout:.0f} s")
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
                child.join()
    if errors:
        raise RuntimeError("\n".join(errors))
    return results


def count_notifications_and_remove(path: str) -> int:
    """How many notifications the file at ``path`` holds, leaving out the warm-up writes
    (recipients ``warm-…``); then the file, its WAL, shared memory and lock file are removed."""
    conn = sqlite3.connect(path)
    try:
        made: int = conn.execute(
            "SELECT count(*) FROM notifications WHERE recipient NOT LIKE 'warm-%'"
        ).fetchone()[0]
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    return made
