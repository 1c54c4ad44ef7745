"""The writer gate: an OS lock file taken around every ``BEGIN IMMEDIATE``, for fairness.

Why: SQLite's busy handler polls with growing sleeps (up to 100 ms), so a writer that has just
committed usually takes the lock again before a sleeping one wakes up; measured, competing
writers waited seconds while one kept winning. A blocking ``flock`` instead queues waiters in
the kernel and wakes them the moment the lock is released, so writers take turns.

``flock`` has no timeout, so a contended acquire waits in a helper thread on its own open file
description and the caller waits on that thread with the store's busy timeout. A waiter that
gives up is abandoned: when it gets the lock later, it releases it at once. The lock belongs to
the open file description, so it is released when the process dies, even by SIGKILL.

The lock file is opened read-only (enough for ``flock``), so a store shared by several
users works once the file exists; a lock file that cannot be opened or locked at all raises
:class:`~chimeway_lite.errors.StorageError`. Writers that do not use the gate (the sqlite3
shell, another library) still serialise through ``BEGIN IMMEDIATE`` and the busy timeout;
they are merely not queued fairly. On platforms without ``fcntl`` (Windows) the gate does
nothing and SQLite's own busy handler is the only arbiter.

Measured in ``benchmarks/FAIRNESS.md`` (``benchmarks/fairness.py``): 4 processes writing
back to back, with and without the gate.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

from ...core.errors import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class WriteGate:
    """An exclusive, fair, process-crash-safe lock on ``<database>-lock``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held: int | None = None
        self._guard = threading.Lock()

    def _open(self) -> int:
        # Read-only is enough for flock, so a lock file another user created (0644) still
        # opens; the descriptor is never inherited by programs the host executes. A symlink
        # is not followed (a dangling one would make us create its target) and a FIFO or
        # device does not block the open: only a regular file is a lock file.
        flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
            if os.path.islink(self.path):
                problem = "it is a symbolic link"
            raise StorageError(self.path, f"cannot open the writer lock file: {problem}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(self.path, "the writer lock file is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; return False if it was not obtained.

        Raises :class:`~chimeway_lite.errors.StorageError` when the lock file cannot be
        opened or locked (read-only directory, a file system without ``flock``).
        """
        if fcntl is None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        except OSError as exc:
            os.close(fd)
            raise StorageError(self.path, f"cannot lock the writer lock file: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        else:
            self._held = fd
            return True
        if timeout <= 0:
            os.close(fd)
            return False
        return self._wait(fd, timeout)

    def _wait(self, fd: int, timeout: float) -> bool:
        assert fcntl is not None
        done = threading.Event()
        state: dict[str, Any] = {"abandoned": False, "error": None}

        def block() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException as exc:  # pragma: no cover - flock on a valid fd
                state["error"] = exc
                os.close(fd)
                done.set()
                return
            with self._guard:
                if state["abandoned"]:
                    os.close(fd)  # closing the description releases the lock
                done.set()

        threading.Thread(target=block, name="chimeway-write-gate", daemon=True).start()
        try:
            acquired = done.wait(timeout)
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): give the lock up, now if the
            # helper holds it already, else as soon as it gets it — never keep it.
            with self._guard:
                state["abandoned"] = True
                if done.is_set() and state["error"] is None:
                    os.close(fd)
            raise
        with self._guard:
            if not acquired and not done.is_set():
                state["abandoned"] = True
                return False
        if state["error"] is not None:
            raise state["error"]
        self._held = fd
        return True

    def release(self) -> None:
        """Release the lock if this gate holds it."""
        fd, self._held = self._held, None
        if fd is not None:
            os.close(fd)
