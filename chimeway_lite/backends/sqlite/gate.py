"""The writer gate: an OS lock file taken around every ``BEGIN IMMEDIATE``, for fairness.

Why: SQLite's busy handler polls with growing sleeps (up to 100 ms), so a writer that has just
committed usually takes the lock again before a sleeping one wakes up; measured, competing
writers waited seconds while one kept winning. A blocking ``flock`` instead queues waiters in
the kernel and wakes them the moment the lock is released, so writers take turns.

``flock`` has no timeout, and a signal cannot interrupt it from a library (signal handlers
belong to the host's main thread). So a contended acquire hands its own open file
description to the gate's one waiting thread, which blocks in ``flock`` on it, and the caller
waits for that thread's answer with the store's busy timeout. The thread is started at the
gate's first contended acquire and serves every later one (no thread is started per wait);
it ends when the gate is closed or collected. A waiter that gives
up (timeout, ``KeyboardInterrupt``, any exception) is abandoned: if the thread has not begun its
``flock`` it never does; if it gets the lock later, it releases it at once; if it holds it
already, the caller releases it. The lock belongs to the open file description, so it is
released when the process dies, even by SIGKILL.

An uncontended acquire (the common case) takes the lock on a description the gate keeps
open, and a release unlocks it (``LOCK_UN``) rather than closing it: one system call each
way instead of open, fstat, flock and close (about 5 µs of every write unit). A contended
acquire opens a description of its own for the waiting thread, as above. A process forked
from this one never touches the kept description (its lock would be the parent's: an unlock
there would release the parent's lock); it opens its own.

A writer that keeps writing while others wait takes a few turns in a row (a *batch*).
Measured (``benchmarks/FAIRNESS.md``), a unit that starts right after another process's
holds the lock up to twice as long as one that follows this process's own, so strict
turn-taking left 4 writers together slower than one; batches gave them a quarter more
throughput, at the price of a longer tail (p99 wait 42 against 15 ms). At the end of a
unit (:meth:`WriteGate.release` with ``linger=True``) the gate keeps the lock for up to
:data:`LINGER` seconds when three things hold: one of this gate's acquires had to wait in
the last :data:`CONTENDED_WITHIN` seconds (others write too); this unit began within
:data:`LINGER` of the previous one ending (the host writes back to back, so it will likely
be back); and the batch is younger than :data:`BATCH_TIME` with fewer than
:data:`BATCH_TURNS` units. The next acquire within that moment takes the lock without a
system call; otherwise the gate's timer thread releases it. So a lone writer never lingers,
nor does one that does other work between its writes, and a waiter waits at most one batch
for each writer ahead of it.

The lock file is opened read-only (enough for ``flock``), so a store shared by several
users works once the file exists; a lock file that cannot be opened or locked at all raises
:class:`~chimeway_lite.errors.StorageError`. Writers that do not use the gate (the sqlite3
shell, another library) still serialise through ``BEGIN IMMEDIATE`` and the busy timeout;
they are merely not queued fairly. On platforms without ``fcntl`` (Windows) the gate does
nothing and SQLite's own busy handler is the only arbiter.

Measured in ``benchmarks/FAIRNESS.md`` (``benchmarks/fairness.py``, ``benchmarks/writers.py``):
N processes writing back to back, with and without the gate, against raw sqlite3.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import weakref
from collections import deque

from ...core.errors import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


#: How long (s) the gate keeps the lock after a unit when its writer is likely to write again
#: at once (see the module docstring): longer than the engine's own work between two units
#: of a host writing back to back, far shorter than a unit.
LINGER = 0.0003
#: A batch ends after this many units in a row ...
BATCH_TURNS = 32
#: ... or once it has held the gate this long (s), whichever comes first.
BATCH_TIME = 0.01
#: Lingering needs a wait at this gate within this many seconds: without others, no batch.
CONTENDED_WITHIN = 1.0


class _Wait:
    """One contended acquire: the description to lock and what became of it."""

    __slots__ = ("abandoned", "done", "error", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = threading.Event()
        self.abandoned = False
        self.error: OSError | None = None


class _Waiter:
    """The gate's waiting thread and its queue of waits (shared with no one else, so the
    thread ends when the gate is closed or garbage-collected)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.guard = threading.Lock()
        self.wake = threading.Condition(self.guard)
        self.queue: deque[_Wait] = deque()
        self.stopped = False
        self.current: _Wait | None = None  # the wait the thread is taking the lock for
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._serve, name="chimeway-write-gate", daemon=True)
        self.thread.start()

    def submit(self, wait: _Wait) -> None:
        """Queue a wait; the thread blocks in ``flock`` for it once the waits before it end."""
        with self.guard:
            self.queue.append(wait)
            self.wake.notify()

    def live_waits(self) -> int:
        """How many waits nobody has given up on are queued or being served (the thread
        blocked in ``flock`` for one, or about to be); abandoned ones are not counted."""
        with self.guard:
            waits = [*self.queue, *([self.current] if self.current is not None else [])]
            return sum(not wait.abandoned for wait in waits)

    def stop(self) -> None:
        """End the thread once it is idle (after the ``flock`` it may be blocked in);
        waits still queued are abandoned."""
        with self.guard:
            self.stopped = True
            for wait in self.queue:
                wait.abandoned = True
            self.wake.notify()

    def _serve(self) -> None:
        assert fcntl is not None
        while True:
            with self.guard:
                while not self.queue and not self.stopped:
                    self.wake.wait()
                if not self.queue:
                    return
                wait = self.queue.popleft()
                if wait.abandoned:  # gave up before its turn: never take the lock for it
                    os.close(wait.fd)
                    continue
                self.current = wait
            try:
                fcntl.flock(wait.fd, fcntl.LOCK_EX)
            except OSError as exc:  # pragma: no cover - a blocking flock on a valid fd
                with self.guard:
                    self.current = None
                    wait.error = exc
                    os.close(wait.fd)
                    wait.done.set()
                continue
            with self.guard:
                self.current = None
                if wait.abandoned:
                    os.close(wait.fd)  # closing the description releases the lock
                wait.done.set()


class _Kept:
    """The open description of a gate's uncontended acquires, and the process that opened
    it."""

    __slots__ = ("fd", "guard", "pid")

    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid = 0
        # closing and the timer thread's unlock exclude each other, so the thread never
        # unlocks a number that closing has just freed for another file
        self.guard = threading.Lock()

    def reopen(self, fd: int) -> None:
        """Make ``fd`` this process's kept description. A forked child also gets a guard of
        its own: the one it inherited may have been held by its parent's timer thread at
        the fork, and would then never be released here."""
        if self.pid != os.getpid():
            self.guard = threading.Lock()
        self.fd, self.pid = fd, os.getpid()

    def close(self) -> None:
        """Close it — only in the process that opened it: a forked child merely forgets the
        descriptor it inherited (an unlock there would release its parent's lock; the
        descriptor closes on exec or exit), without touching the inherited guard."""
        if self.pid != os.getpid():
            self.fd = None
            return
        with self.guard:
            fd, self.fd = self.fd, None
            if fd is not None:
                os.close(fd)

    def unlock(self, fd: int) -> bool:
        """Unlock ``fd`` if it is still this process's kept description; whether it was."""
        with self.guard:
            if fd != self.fd or self.pid != os.getpid():
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:  # pragma: no cover - unlocking a description we hold
                self.fd = None
                os.close(fd)  # closing it releases the lock
            return True


class _Lingerer:
    """The gate's timer thread: releases a lock kept after a unit (:meth:`WriteGate.release`
    with ``linger=True``) once its moment has passed without another acquire."""

    def __init__(self, kept: _Kept) -> None:
        self.guard = threading.Lock()
        self.wake = threading.Condition(self.guard)
        self.fd: int | None = None  # the description whose lock is kept, or None
        self.is_kept = False  # whether that is the gate's kept description
        self.deadline = 0.0
        self.stopped = False
        self.pid = os.getpid()
        self.kept = kept  # (not the gate: the thread must not keep it from being collected)
        self.thread = threading.Thread(target=self._serve, name="chimeway-write-gate", daemon=True)
        self.thread.start()

    def keep(self, fd: int, deadline: float) -> None:
        """Keep ``fd``'s lock until ``deadline`` (``time.monotonic``) unless taken first."""
        with self.guard:
            self.fd, self.deadline = fd, deadline
            self.is_kept = fd == self.kept.fd
            self.wake.notify()

    def take(self) -> int | None:
        """The kept description, now the caller's again; None when there is none (never
        kept, or released already)."""
        with self.guard:
            fd, self.fd = self.fd, None
            return fd

    def stop(self) -> None:
        """Release a kept lock now and end the thread."""
        with self.guard:
            self.stopped = True
            self.wake.notify()

    def _serve(self) -> None:
        with self.guard:
            while True:
                fd = self.fd
                if fd is not None:
                    left = self.deadline - time.monotonic()
                    if left <= 0 or self.stopped:
                        self.fd = None
                        if not self.is_kept:
                            os.close(fd)  # a waiting thread's description: ours alone
                        else:
                            # (not at all if the gate was collected and its kept
                            # description closed, which released the lock: the number
                            # may be another file's by now)
                            self.kept.unlock(fd)
                        continue
                    self.wake.wait(left)
                elif self.stopped:
                    return
                else:
                    self.wake.wait()


def _unlock(kept: _Kept, fd: int) -> None:
    """Give up the lock held on ``fd``: unlock the kept description (``kept``), close any
    other (a waiting thread's: closing it releases the lock)."""
    if not kept.unlock(fd):
        os.close(fd)


class WriteGate:
    """An exclusive, fair, process-crash-safe lock on ``<database>-lock``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held: int | None = None
        self._waiter: _Waiter | None = None
        self._started = threading.Lock()
        # The description uncontended acquires lock and releases unlock, closed with the
        # gate (or when it is collected).
        self._kept = _Kept()
        weakref.finalize(self, self._kept.close)
        # Batches (see the module docstring): the timer thread of a kept lock, once the gate
        # lingered; when one of its acquires last had to wait; when its last unit ended; the
        # gap before the current unit; the current batch's start and units.
        self._lingerer: _Lingerer | None = None
        self._contended_at = float("-inf")
        self._released_at = float("-inf")
        self._gap = float("inf")
        self._batch_started = 0.0
        self._turns = 0

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
        now = time.monotonic()
        self._gap = now - self._released_at
        lingerer = self._lingerer
        if lingerer is not None and lingerer.fd is not None and lingerer.pid == os.getpid():
            fd = lingerer.take()
            if fd is not None:  # kept since the last unit: the batch goes on
                self._held = fd
                self._turns += 1
                return True
        self._batch_started, self._turns = now, 1
        fd = self._kept_description()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        except OSError as exc:
            self._kept.close()
            raise StorageError(self.path, f"cannot lock the writer lock file: {exc}") from exc
        else:
            self._held = fd
            return True
        if timeout <= 0:
            return False
        acquired = self._wait(self._open(), timeout)
        if acquired:
            self._contended_at = self._batch_started = time.monotonic()
        return acquired

    def _kept_description(self) -> int:
        """The description uncontended acquires use, opened on first use (and again in a
        forked child, which must leave its parent's alone)."""
        kept = self._kept
        if kept.fd is None or kept.pid != os.getpid():
            kept.reopen(self._open())
        assert kept.fd is not None
        return kept.fd

    def _waiting_thread(self) -> _Waiter:
        with self._started:
            waiter = self._waiter
            if waiter is None or waiter.pid != os.getpid() or waiter.stopped:
                # (a forked child has none of its parent's threads: it starts its own)
                waiter = self._waiter = _Waiter(self.path)
                weakref.finalize(self, waiter.stop)
            return waiter

    def _wait(self, fd: int, timeout: float) -> bool:
        try:
            waiter = self._waiting_thread()
        except BaseException:
            os.close(fd)
            raise
        wait = _Wait(fd)
        waiter.submit(wait)
        try:
            acquired = wait.done.wait(timeout)
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt, OverflowError): give the lock
            # up, now if the thread holds it for us already, else as soon as it gets it (or
            # never take it) — never keep it.
            with waiter.guard:
                wait.abandoned = True
                if wait.done.is_set() and wait.error is None:
                    os.close(fd)
            raise
        with waiter.guard:
            if not acquired and not wait.done.is_set():
                wait.abandoned = True
                return False
        if wait.error is not None:  # pragma: no cover - a blocking flock on a valid fd
            raise StorageError(self.path, f"cannot lock the writer lock file: {wait.error}")
        self._held = fd
        return True

    def release(self, *, linger: bool = False) -> None:
        """Release the lock if this gate holds it. With ``linger`` (the end of a unit), keep
        it a moment instead when this writer is likely to be back at once while others wait
        (see the module docstring)."""
        fd, self._held = self._held, None
        if fd is None:
            return
        now = time.monotonic()
        self._released_at = now
        if (
            linger
            and self._gap < LINGER
            and now - self._contended_at < CONTENDED_WITHIN
            and self._turns < BATCH_TURNS
            and now - self._batch_started < BATCH_TIME
        ):
            lingerer = self._lingerer
            if lingerer is None or lingerer.pid != os.getpid() or lingerer.stopped:
                # (a forked child has none of its parent's threads: it starts its own)
                lingerer = self._lingerer = _Lingerer(self._kept)
                weakref.finalize(self, lingerer.stop)
            lingerer.keep(fd, now + LINGER)
            return
        _unlock(self._kept, fd)

    def close(self) -> None:
        """Release the lock if held and end the waiting thread (once any ``flock`` it is
        blocked in returns); the gate can still be used afterwards (it starts a new one)."""
        self.release()
        lingerer, self._lingerer = self._lingerer, None
        if lingerer is not None and lingerer.pid == os.getpid():
            fd = lingerer.take()
            if fd is not None:
                _unlock(self._kept, fd)
            lingerer.stop()
        self._kept.close()
        with self._started:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.stop()
