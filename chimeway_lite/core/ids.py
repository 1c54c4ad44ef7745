"""The ids the engine issues: canonical, lower-case, 36-character UUID text, time-ordered.

Ids are UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then a 12-bit
counter (the RFC's "method 3"), then 62 random bits. Ids made later in a process sort after
earlier ones — also within one millisecond, and when the wall clock steps back — so they
tie-break "oldest first" orderings as creation order, and inserts append to the indexes
instead of scattering across them (a random id touches a random leaf page of every index
it is in).
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last = 0  # the last (milliseconds << 12 | counter) handed out


def new_id() -> str:
    """A fresh time-ordered id (UUID version 7)."""
    global _last
    stamp = (time.time_ns() // 1_000_000) << 12
    with _lock:
        if stamp <= _last:
            stamp = _last + 1  # same millisecond (or the clock stepped back): count on
        _last = stamp
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (stamp >> 12) << 80 | 0x7 << 76 | (stamp & 0xFFF) << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
