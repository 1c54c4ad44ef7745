"""WAL checkpoints taken after the writer gate is released, not inside it.

Why: SQLite runs its automatic checkpoint inside the ``COMMIT`` that takes the WAL past
``wal_autocheckpoint`` pages (1,000 by default), after it has released its own write lock, so
other writers of raw sqlite3 go on appending meanwhile. But that ``COMMIT`` returns only once
the checkpoint is done, and the writer gate (:mod:`.gate`) is released after ``COMMIT``, so
every other writer of the store waited for the checkpoint's copy and its two ``fsync``s
(measured with 4 writer processes: 20 to 75 ms, up to half a second on a loaded disk, once per ~50
triggers: half the time of a trigger). So the store's connections turn the automatic
checkpoint off and :class:`WalWatch` takes it over: after a write unit has committed and
released the gate, the backend asks :meth:`WalWatch.due` whether the WAL holds as many frames
as the connection's ``wal_autocheckpoint`` said before it was turned off, and if so runs
``PRAGMA wal_checkpoint(PASSIVE)`` — what SQLite's automatic checkpoint does, at the same
threshold, one step later. A passive
checkpoint never waits: while another process checkpoints it returns at once, and the next
commit tries again.

How the frames are counted (https://sqlite.org/fileformat2.html#walformat): every frame
carries the two salts of the WAL header it was written under, and the salts change whenever
the WAL starts over from its first frame; so the WAL holds at least N frames when frame N
exists with the header's salts — two ``pread``s of the ``-wal`` file. The ``-shm`` file would
say it in one, but SQLite holds POSIX locks on it, and closing any descriptor of a file drops
all of the process's POSIX locks on it; SQLite holds none on the ``-wal`` file. The count is
read without a lock, so it may be a moment old or include frames of a transaction still
being written: it only decides when to try a checkpoint.

When the ``-wal`` file cannot be opened as a regular file (a platform or VFS that keeps the
WAL elsewhere) nothing changes: the connection keeps SQLite's automatic checkpoint.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import struct

_WAL_HEADER = 32  # bytes: magic, version, page size (big-endian u32 at 8), ..., salts at 16
_FRAME_HEADER = 24  # bytes: page number, size after commit, salts at 8, checksums
_PAGE_SIZE = struct.Struct(">I")


class WalWatch:
    """Counts the WAL's frames from its ``-wal`` file and checkpoints when due."""

    def __init__(self, fd: int, frames: int) -> None:
        self._fd: int | None = fd
        self.frames = frames  # the WAL size (frames, i.e. pages) at which a checkpoint is due

    @classmethod
    def take_over(cls, conn: sqlite3.Connection, path: str) -> WalWatch | None:
        """Turn the connection's automatic checkpoint off and return the watch that replaces
        it at the same size; None (the automatic checkpoint kept) when ``path``'s ``-wal``
        cannot be read, or when the automatic checkpoint is off already. The connection must
        be in WAL mode already."""
        frames = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        if frames <= 0:
            return None
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens (makes) the WAL
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path + "-wal", flags)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return None
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, frames)

    def holds(self, frames: int) -> bool:
        """True when the WAL holds at least ``frames`` frames (``frames`` ≥ 1) since it last
        started over: frame ``frames`` is there, written under the header's salts."""
        if self._fd is None:
            return False
        try:
            header = os.pread(self._fd, _WAL_HEADER, 0)
            if len(header) < _WAL_HEADER:
                return False  # empty (truncated) or being started
            page_size = _PAGE_SIZE.unpack_from(header, 8)[0]
            at = _WAL_HEADER + (frames - 1) * (_FRAME_HEADER + page_size) + 8
            return os.pread(self._fd, 8, at) == header[16:24]
        except OSError:
            return False

    def due(self) -> bool:
        """True when the WAL has reached its checkpoint size (:attr:`frames`)."""
        return self.holds(self.frames)

    def checkpoint(self, conn: sqlite3.Connection, path: str) -> None:
        """A passive checkpoint: copy what no reader still needs into the database, without
        waiting for anyone. The unit before it is committed whatever happens here, so a
        failure is logged, not raised (the next commit tries again)."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            logging.getLogger("chimeway_lite").warning(
                "the WAL of %s could not be checkpointed (%s); the next write tries again",
                path,
                exc,
            )

    def close(self) -> None:
        """Close the ``-wal`` descriptor (SQLite holds no lock on that file, so this cannot
        drop one of its locks); closing twice is fine."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
